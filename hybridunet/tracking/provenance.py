"""Tags that say where a run's numbers come from: data, precision, hardware, versions, config."""

from __future__ import annotations

import subprocess
from importlib import metadata
from typing import Any

from hybridunet import __version__


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance_tags(run: Any) -> dict[str, str]:
    """The tags of a training run (a `hybridunet.engine.Run`)."""
    from hybridunet.device import hardware_name

    cfg = run.config
    tags = {
        "model": cfg.model.name,
        "label": cfg.model.label,
        "seed": str(cfg.seed),
        "data.fingerprint": run.data_fingerprint,
        "precision.amp": run.precision.amp,
        "precision.channels_last": str(run.precision.channels_last).lower(),
        "hardware": hardware_name(run.device),
        "config.hash": cfg.result_hash(),
        "hybridunet_version": __version__,
        **{f"version.{name}": package_version(name) for name in ("torch", "timm", "segmentation-models-pytorch")},
        "out_dir": str(run.out_dir),
    }
    commit = git_commit()
    if commit:
        tags["git_commit"] = tags["mlflow.source.git.commit"] = commit
    return tags
