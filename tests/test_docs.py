"""The docs site's pages: their Python examples run as written, the generated tables cover
what the code holds, and the README stays a front page. (`make test` also builds the site
with `mkdocs build --strict`: a broken link, page or docstring fails there.)"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import re
from pathlib import Path

import pytest

from hybridunet.models import MODELS
from hybridunet.nn import BLOCKS, BOTTLENECKS, SKIPS, UPSAMPLERS

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.DOTALL)
NOT_RUN = "<!-- not run:"


def examples(page: str) -> tuple[list[str], list[str]]:
    """The page's Python blocks: those to run, in order, and the reasons given for the others."""
    run, skipped = [], []
    for found in BLOCK.finditer((DOCS / page).read_text()):
        if found["before"].startswith(NOT_RUN):
            skipped.append(found["before"])
        else:
            run.append(found["code"])
    return run, skipped


@functools.cache
def hooks():
    """docs/hooks.py, loaded once (it is not a package module)."""
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def own_registries(monkeypatch):
    """The models page registers a block and a preset of its own: into copies, put back after."""
    for registry in (MODELS, BLOCKS, SKIPS, BOTTLENECKS, UPSAMPLERS):
        monkeypatch.setattr(registry, "_builders", dict(registry._builders))
        monkeypatch.setattr(registry, "_info", dict(registry._info))


@pytest.mark.parametrize("page", ["getting-started.md", "data.md", "models.md"])
def test_page_examples_run_as_written(page, tiny_data, tmp_path, own_registries):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synthetic").symlink_to(tiny_data)  # where the pages' commands write it
    run, skipped = examples(page)
    assert run, f"{page} has no Python example"
    assert all("needs" in reason for reason in skipped), skipped  # a block left out says what it needs
    namespace: dict = {}
    for code in run:
        exec(compile(code, f"{page} example", "exec"), namespace)
    if page == "getting-started.md":  # a tiny hybrid_unet trained and its checkpoint loaded back
        assert namespace["meta"]["config"]["model"]["name"] == "hybrid_unet"
        assert Path(namespace["result"]["checkpoint"]).resolve().is_relative_to(tmp_path.resolve())
    if page == "models.md":
        assert "my_unet" in MODELS and "conv_gn" in BLOCKS


def test_the_examples_left_out_are_few():
    for page in ("getting-started.md", "models.md", "data.md"):
        run, skipped = examples(page)
        assert len(skipped) <= 1 and len(run) >= 1, (page, skipped)


def test_generated_tables_cover_the_code():
    from hybridunet.cli import build_parser
    from hybridunet.models import PRESETS
    from hybridunet.models.presets import PART_KEYS

    module = hooks()
    presets = module.presets_table()
    assert all(f"`{preset.name}`" in presets.splitlines()[0] for preset in PRESETS)
    assert all(f"| `{key}` |" in presets for key in PART_KEYS)
    parts = module.parts_table()
    for registry in (BLOCKS, SKIPS, BOTTLENECKS, UPSAMPLERS):
        assert all(f"| `{name}` |" in parts for name in registry.names())
    cli = module.cli_reference()
    commands = build_parser()._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        assert f"## `hybridunet {name}`" in cli
        assert all(f"`{flag}`" in cli for action in sub._actions for flag in action.option_strings
                   if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction))
    assert "## `hybridunet data synth`" in cli and "`--overwrite`" in cli


def test_pages_ask_for_their_generated_tables():
    """A marker typed wrong would stay an invisible comment and the table would vanish."""
    marker = hooks().MARKER
    asked = {page.name: set(marker.findall(page.read_text())) for page in DOCS.glob("*.md")}
    assert asked["models.md"] == {"presets", "parts"}
    assert asked["cli.md"] == {"cli"} and asked["comparing.md"] == {"plan"}
    near_misses = [line for page in DOCS.glob("*.md") for line in page.read_text().splitlines()
                   if "generated:" in line and not marker.fullmatch(line)]
    assert not near_misses


def test_an_unknown_generated_table_fails_the_build():
    class Page:
        class file:
            src_uri = "models.md"

    with pytest.raises(ValueError, match="models.md: unknown generated table 'presetz'"):
        hooks().on_page_markdown("a\n<!-- generated: presetz -->\n", page=Page)


def test_make_test_builds_the_docs_strictly():
    """`make test` runs docs-check, whose build is --strict and not --quiet (--quiet drops the
    warnings --strict counts: a broken link would pass)."""
    makefile = (REPO / "Makefile").read_text()
    test_recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "$(MAKE) docs-check" in test_recipe
    check = makefile.split("\ndocs-check:", 1)[1].split("\n\n", 1)[0]
    assert "build --strict" in check and "-q" not in check.split() and "--quiet" not in check


def test_readme_is_a_front_page():
    readme = (REPO / "README.md").read_text().splitlines()
    assert len(readme) <= 200
    opening = "\n".join(readme[:8])
    assert "make demo" in opening and "make test" in opening
    links = {m for line in readme for m in re.findall(r"^\[[a-z-]+\]: (\S+)$", line)}
    assert links and all((REPO / link.split("#")[0]).is_file() for link in links), links


# The package face and the entry points the API reference leads with: each says what it does
# with `Args:` (where it takes any) and `Returns:`, in the order their examples can run.
ENTRY_POINTS = [
    "hybridunet.models.create_model", "hybridunet.models.list_models", "hybridunet.models.register_model",
    "hybridunet.registry.Registry", "hybridunet.registry.Registry.register", "hybridunet.registry.Registry.get",
    "hybridunet.registry.Registry.build", "hybridunet.models.UNet", "hybridunet.models.SmpModel",
    "hybridunet.config.load_config", "hybridunet.data.CityscapesPairs", "hybridunet.data.make_loader",
    "hybridunet.engine.fit", "hybridunet.checkpoint.load_model", "hybridunet.engine.evaluate_checkpoint",
    "hybridunet.engine.predict", "hybridunet.export.export_onnx", "hybridunet.prediction.open_predictor",
    "hybridunet.prediction.predict_files", "hybridunet.metrics.ConfusionMatrix", "hybridunet.comparison.run_comparison",
    "hybridunet.comparison.paired", "hybridunet.comparison.table", "hybridunet.sequential.decide",
    "hybridunet.tuning.load_search_space", "hybridunet.tuning.tune", "hybridunet.tracking.sync.sync",
]
NOT_RUN_HERE = {"hybridunet.tuning.tune": "a 20-trial study at the recipe's full size"}
DOC_EXAMPLE = re.compile(r"^\s*```python\n(?P<code>.*?)^\s*```", re.DOTALL | re.MULTILINE)


def entry_point(path: str):
    import importlib
    import inspect

    module, _, name = path.rpartition(".")
    try:
        return inspect.getdoc(getattr(importlib.import_module(module), name))
    except ModuleNotFoundError:  # a method: Class.method
        module, _, owner = module.rpartition(".")
        return inspect.getdoc(getattr(getattr(importlib.import_module(module), owner), name))


def test_entry_points_document_args_returns_and_an_example():
    with_example = 0
    for path in ENTRY_POINTS:
        doc = entry_point(path)
        assert doc and "Args:" in doc, path
        is_class = path.rsplit(".", 1)[1][0].isupper()
        assert is_class or "Returns:" in doc, path
        with_example += bool(DOC_EXAMPLE.search(doc))
    assert with_example >= 15


def test_docstring_examples_run(tiny_data, tmp_path, tiny_config, own_registries):
    """Each example runs as written, in a folder that holds what it names: the synthetic
    data and a trained run in outputs/u1."""
    import textwrap

    from hybridunet.engine import fit

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synthetic").symlink_to(tiny_data)
    fit(tiny_config(tiny_data, tmp_path / "outputs" / "u1", "train.epochs=1"))
    ran = []
    for path in ENTRY_POINTS:
        found = DOC_EXAMPLE.search(entry_point(path))
        if found and path not in NOT_RUN_HERE:
            exec(compile(textwrap.dedent(found["code"]), f"{path} example", "exec"), {})
            ran.append(path)
    assert "hybridunet.comparison.run_comparison" in ran and "hybridunet.prediction.open_predictor" in ran
