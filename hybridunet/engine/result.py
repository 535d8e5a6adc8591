"""What `fit` returns: the best epoch's metrics as a mapping (train's JSON line), with the
run's record, data fingerprint and history beside it as typed attributes."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hybridunet.config import ExperimentConfig
from hybridunet.results import RunRecord, scores_of


class FitResult(dict[str, Any]):
    """The best epoch's validation metrics plus `checkpoint`, `cost` and what callbacks add
    (`run_id`, `model_uri`): a dict, so `result["dice"]` and train's JSON line stay as they were.

    Attributes:
        history: one dict of metrics per epoch, in order (every epoch of a resumed run too).
        data_fingerprint: 12 hex digits over the files the run trained and validated on.
        seconds: wall-clock seconds `fit` took in this process.
    """

    def __init__(self, metrics: dict[str, Any], config: ExperimentConfig, history: list[dict[str, Any]],
                 data_fingerprint: str | Callable[[], str] | None, seconds: float) -> None:
        super().__init__(metrics)
        self.config, self.history, self.seconds = config, history, seconds
        self._fingerprint = data_fingerprint  # a callable is asked once, when first wanted (it stats every file)

    @property
    def data_fingerprint(self) -> str | None:
        if callable(self._fingerprint):
            self._fingerprint = self._fingerprint()
        return self._fingerprint

    @property
    def record(self) -> RunRecord:
        """The run as a comparison keeps it, labelled by its model (a comparison relabels it)."""
        return RunRecord(self.config.model.label, self.config.seed, scores_of(self), config_hash=self.config.result_hash(),
                         data_fingerprint=self.data_fingerprint, seconds=self.seconds, run_id=self.get("run_id"),
                         checkpoint=self.get("checkpoint"), cost=self.get("cost") or {})

    def curve(self, key: str = "val_dice") -> list[float]:
        """One metric over the epochs (NaN where an epoch had no finite value)."""
        return [math.nan if row.get(key) is None else float(row[key]) for row in self.history]
