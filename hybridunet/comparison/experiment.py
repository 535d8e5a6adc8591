"""Finished training runs of an MLflow experiment as arms, for `compare --experiment`."""

from __future__ import annotations

import sys
from collections.abc import Callable

from hybridunet.errors import UsageError
from hybridunet.results import Arm, RunRecord, group


def arms_from_mlflow(experiment: str, uri: str | None = None,
                     notes: Callable[[str], None] | None = None) -> list[Arm]:
    """Finished training runs of an MLflow experiment, grouped by their label (preset plus
    part overrides). Per (label, seed) the newest run counts; `notes` is told how many
    older ones were skipped, and when one label mixes configs or data."""
    from hybridunet.tracking import finished_runs

    notes = notes or (lambda line: print(line, file=sys.stderr))
    newest: dict[tuple[str, int], RunRecord] = {}
    skipped: dict[str, int] = {}
    order: list[str] = []
    for record in finished_runs(experiment, uri):  # newest first
        if (record.label, record.seed) in newest:
            skipped[record.label] = skipped.get(record.label, 0) + 1
            continue
        newest[(record.label, record.seed)] = record
        if record.label not in order:
            order.append(record.label)
    if not newest:
        raise UsageError(f"experiment {experiment!r} holds no finished training runs")
    for label, count in sorted(skipped.items()):
        notes(f"{label}: skipped {count} older run(s) of a seed that has a newer one")
    records = sorted(newest.values(), key=lambda r: r.seed)
    for label in sorted(order):
        for what, noun, kinds in (("config_hash", "result-changing config", "recipes"),
                                  ("data_fingerprint", "data", "data sets")):
            values = {getattr(r, what) for r in records if r.label == label} - {None}
            if len(values) > 1:
                notes(f"warning: runs labelled {label} differ in their {noun} ({len(values)} kinds): "
                      f"their comparison mixes {kinds}")
    # the label whose newest run is the oldest comes first: a comparison's baseline, trained first
    return group(records, list(reversed(order)))
