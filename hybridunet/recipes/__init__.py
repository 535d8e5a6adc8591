"""The recipes that ship inside the package, addressable by name: ``--config tiny`` works from
any folder once the package is installed, as timm's model names do. A config YAML may start
from one with ``base: NAME`` (or ``base: other.yaml``, relative to the file) and change keys."""

from __future__ import annotations

from pathlib import Path

from hybridunet.errors import ConfigError

FOLDER = Path(__file__).resolve().parent


def names() -> list[str]:
    """Every shipped recipe's name."""
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def description(name: str) -> str:
    """The recipe's leading comment, as one line."""
    lines = []
    for line in recipe_path(name).read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").strip())
    return " ".join(lines)


def recipe_path(name: str) -> Path:
    """The YAML file of the recipe `name`."""
    path = FOLDER / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no recipe is named {name!r} (recipes: {', '.join(names())}; `hybridunet recipes` lists them)")
    return path


def is_name(spec: str | Path) -> bool:
    """A bare name (no folder, no .yaml/.yml), which names a recipe rather than a file."""
    text = str(spec)
    return "/" not in text and "\\" not in text and not text.endswith((".yaml", ".yml"))


def resolve(spec: str | Path, relative_to: Path | None = None) -> Path:
    """The file a ``--config`` value (or a ``base:``) means: an existing path first, then a recipe
    name; a path ``base:`` names is relative to the file that names it."""
    path = Path(spec).expanduser()
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if path.is_file() or not is_name(spec):
        return path  # reading a missing path fails there, naming it
    if (FOLDER / f"{spec}.yaml").is_file():
        return FOLDER / f"{spec}.yaml"
    raise ConfigError(f"config {spec!r} is neither a file nor a recipe name (recipes: {', '.join(names())})")
