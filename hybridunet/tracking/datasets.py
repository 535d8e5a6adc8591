"""A run's training and validation data as MLflow datasets (`log_inputs`), so the UI groups
and filters runs by the data they saw. Each is a `MetaDataset` (nothing is copied): its
source is the data folder, its digest the split's data fingerprint
(`hybridunet.data.fingerprint`, equal for the same files), its context training or validation."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from mlflow.entities import DatasetInput, InputTag
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

if TYPE_CHECKING:
    from hybridunet.data.base import SegmentationDataset
    from hybridunet.engine import Run

TRAINING, VALIDATION = "training", "validation"  # MLflow's contexts


def split_dataset(data: SegmentationDataset, root: str | Path, split: str):
    """One split as an MLflow `MetaDataset`: named ``<root folder>-<split>``, its digest the
    split's fingerprint, its schema the photo and mask tensors a sample holds."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import Schema, TensorSpec

    from hybridunet.data.fingerprint import data_fingerprint

    root = Path(root).resolve()
    with warnings.catch_warnings():  # file paths match two registrations of the same local source
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(root / split if (root / split).is_dir() else root))
    schema = Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3), "image"),
                     TensorSpec(np.dtype(np.uint8), (-1, -1, -1), "mask")])
    return MetaDataset(source, name=f"{root.name}-{split}", digest=data_fingerprint([data], root), schema=schema)


def run_datasets(run: Run) -> dict[str, object]:
    """Context -> MetaDataset of the data `run` trains and validates on."""
    data = run.config.data
    found = {VALIDATION: split_dataset(run.val_data, data.root, data.val_split)}
    if run.train_data is not None:
        found = {TRAINING: split_dataset(run.train_data, data.root, data.train_split), **found}
    return found


def dataset_rows(datasets: dict[str, object]) -> list[dict[str, object]]:
    """Datasets (context -> MetaDataset) as JSON rows: what a tracking call stores."""
    rows = []
    for context, dataset in datasets.items():
        entity = dataset._to_mlflow_entity()
        rows.append({"context": context, "name": entity.name, "digest": entity.digest, "source_type":
                     entity.source_type, "source": entity.source, "schema": entity.schema, "profile": entity.profile})
    return rows


def log_datasets(client: MlflowClient, run_id: str, datasets: dict[str, object], attempts: int = 3) -> None:
    """Log `datasets` (context -> MetaDataset) as the run's inputs."""
    log_dataset_rows(client, run_id, dataset_rows(datasets), attempts)


def log_dataset_rows(client: MlflowClient, run_id: str, rows: list[dict], attempts: int = 3) -> None:
    """Log datasets stored as `dataset_rows` as the run's inputs. MLflow's store adds a
    dataset it has not seen in a check-then-insert, so two processes logging the same new
    dataset at once (a study's workers) can collide; the next attempt finds it there."""
    from mlflow.entities import Dataset
    from mlflow.exceptions import MlflowException

    inputs = [DatasetInput(Dataset(r["name"], r["digest"], r["source_type"], r["source"], r["schema"], r["profile"]),
                           [InputTag(MLFLOW_DATASET_CONTEXT, r["context"])]) for r in rows]
    for attempt in range(attempts):
        try:
            client.log_inputs(run_id, datasets=inputs)
            return
        except MlflowException:
            if attempt + 1 == attempts:
                raise
            time.sleep(0.2 * (attempt + 1))


def logged_dataset(client: MlflowClient, run_id: str, context: str = VALIDATION) -> tuple[str, str] | None:
    """(name, digest) of the dataset run `run_id` logged with `context`, if any."""
    for item in client.get_run(run_id).inputs.dataset_inputs:
        if any(t.key == MLFLOW_DATASET_CONTEXT and t.value == context for t in item.tags):
            return item.dataset.name, item.dataset.digest
    return None
