"""Recipes ship inside the package and are named on the command line; a YAML may start from
one (`base:`). The wheel test builds the package from the tracked files and runs a recipe by
name from an empty folder, outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hybridunet.cli import main
from hybridunet.config import config_tree, load_config
from hybridunet.errors import ConfigError
from hybridunet.recipes import names

REPO = Path(__file__).resolve().parents[1]


def test_every_recipe_is_named_by_its_experiments_path_and_by_its_name_alike():
    shipped = sorted(p.stem for p in (REPO / "experiments/configs").glob("*.yaml"))
    assert shipped == names() and len(names()) == 7
    for name in names():
        assert load_config(REPO / f"experiments/configs/{name}.yaml") == load_config(name)
        assert "base" not in config_tree(name)
    assert load_config("hybrid_unet_resdec").optim == load_config("unet").optim  # one definition, by base:


def test_a_yaml_extends_a_recipe_or_a_file_section_by_section(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: tiny\ntrain:\n  epochs: 5\nmodel:\n  name: hybrid_unet\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub/more.yaml").write_text("base: ../mine.yaml\noptim:\n  lr: 0.01\n")
    config, tiny = load_config(tmp_path / "sub/more.yaml", ["train.batch_size=2"]), load_config("tiny")
    assert (config.train.epochs, config.train.batch_size, config.optim.lr) == (5, 2, 0.01)
    assert config.model.name == "hybrid_unet" and config.model.widths == tiny.model.widths  # merged, not replaced
    assert config.data == tiny.data and config.optim.name == tiny.optim.name


@pytest.mark.parametrize(("text", "message"), [
    ("base: nope\n", "neither a file nor a recipe name"),
    ("base: [tiny]\n", "base: expected a recipe name or a YAML path"),
    ("base: loop.yaml\n", "base: makes a cycle"),
    ("base: missing.yaml\n", "missing.yaml not found"),
])
def test_a_bad_base_fails_in_one_line_naming_the_file(tmp_path, text, message):
    (tmp_path / "loop.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(tmp_path / "loop.yaml")
    assert "\n" not in str(err.value)


def test_recipes_lists_every_recipe_with_its_description_and_shows_one(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in names():
        assert any(line.startswith(f"{name} ") and len(line.split()) > 3 for line in out.splitlines())
    assert main(["recipes", "--show", "tiny"]) == 0
    assert capsys.readouterr().out == (REPO / "hybridunet/recipes/tiny.yaml").read_text()
    assert main(["recipes", "--show", "nope"]) == 2
    assert "no recipe is named 'nope'" in capsys.readouterr().err


def test_a_listing_piped_into_a_reader_that_stops_ends_quietly(tmp_path):
    """`hybridunet recipes | head -1`: the closed pipe ends the command with 141 (as SIGPIPE
    would), no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "hybridunet", "recipes"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    proc.stdout.close()  # the reader is gone before the first line
    assert proc.wait(timeout=60) == 141
    assert proc.stderr.read() == b""


def test_the_wheel_ships_the_recipes_and_a_name_resolves_from_an_empty_folder(tmp_path, tiny_data):
    """Built from a copy of the tracked files (nothing is written into the checkout), without
    build isolation (it would need the internet), installed beside the test environment."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard"],
                            check=True, capture_output=True, text=True).stdout.split("\n")
    source = tmp_path / "source"
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-build-isolation", "--no-deps", "--no-index", "-w", str(tmp_path / "dist"),
                    str(source)], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("hybridunet-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True,
                   capture_output=True)
    assert (site / "hybridunet" / "py.typed").is_file()  # the package is typed for its users' checkers
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = ("import hybridunet.recipes as r, sys; from hybridunet.config import load_config\n"
            "print(r.FOLDER); print(load_config('tiny').model.widths)\n"
            "from hybridunet.cli import main; sys.exit(main(sys.argv[1:]))")
    out = subprocess.run([sys.executable, "-c", code, "train", "--config", "tiny", f"data.root={tiny_data}",
                          "train.epochs=1", "data.limit_train=4", "data.limit_val=2", "train.out_dir=run"],
                         cwd=empty, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    folder, widths = out.stdout.splitlines()[:2]
    assert Path(folder) == site / "hybridunet/recipes" and widths == "[8, 16, 32, 64, 128]"
    assert (empty / "run").is_dir() and not (empty / "experiments").exists()
