"""The run folder: its name, its files, when it may be reused, and what may change on resume."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from hybridunet import distributed
from hybridunet.config import ExperimentConfig, parse_config, resumable_keys
from hybridunet.errors import ConfigError, MissingFileError, OutputExistsError, UserError

CHECKPOINT_FILES = ("best.safetensors", "best.json", "last.safetensors", "last.json", "config.yaml", "metrics.json")


@dataclass(frozen=True)
class RunDir:
    path: Path
    created: bool  # made by this run: removed again if the run fails before its first checkpoint

    def discard_if_empty_of_results(self) -> None:
        """Remove a folder this run created when no checkpoint made it into it."""
        if self.created and not (self.path / "last.safetensors").exists():
            shutil.rmtree(self.path, ignore_errors=True)


def run_name(config: ExperimentConfig) -> str:
    return config.name or f"{config.model.name}-s{config.seed}-{datetime.now():%Y%m%d-%H%M%S}"


def prepare_out_dir(config: ExperimentConfig, resume: bool) -> RunDir:
    """The run's folder. An existing one is used only to resume, or replaced with overwrite."""
    if config.train.out_dir:
        out = Path(config.train.out_dir)
    elif resume and not config.name:
        raise ConfigError("--resume needs the run's folder: set train.out_dir=... (or name=... for outputs/<name>)")
    else:
        out = Path("outputs") / run_name(config)
    if resume:
        if not (out / "last.safetensors").is_file():
            raise MissingFileError(f"cannot resume: no complete checkpoint {out / 'last.safetensors'}")
        return RunDir(out, created=False)
    if out.exists() and any(out.iterdir()):
        if not config.train.overwrite:
            raise OutputExistsError(
                f"output folder {out} already exists; pass --overwrite to replace it or --resume to continue")
        for name in CHECKPOINT_FILES:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "predictions", ignore_errors=True)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    return RunDir(out, created)


def shared_out_dir(config: ExperimentConfig, resume: bool, world: distributed.World) -> RunDir:
    """Rank 0 prepares the run folder and tells the others its name (or its error)."""
    answer: tuple[str, bool, str | None]
    if world.is_main:
        try:
            made = prepare_out_dir(config, resume)
            answer = (str(made.path), made.created, None)
        except (OSError, UserError) as err:
            distributed.broadcast(("", False, f"{type(err).__name__}: {err}"))
            raise
    answer = distributed.broadcast(answer if world.is_main else ("", False, None))
    if answer[2] is not None:
        raise RuntimeError(f"rank 0 could not prepare the run folder: {answer[2]}")
    return RunDir(Path(answer[0]), answer[1] and world.is_main)


def config_changes(saved: dict[str, Any], config: ExperimentConfig) -> list[str]:
    """The result-changing keys that differ between a stored config and `config`."""
    old, new = parse_config(saved).flat(), config.flat()
    allowed = resumable_keys()
    return [
        f"{k}: {old.get(k)!r} -> {new.get(k)!r}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k) and not k.startswith(allowed)
    ]
