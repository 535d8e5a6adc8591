"""Multi-seed comparison of configs: is a difference in Dice real or noise?

Every config trains with the same seeds (so the same data order and augmentation per
seed); the second config is compared with the first by a paired difference per seed,
its 95% t confidence interval and a paired t-test.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats

from hybridunet.config import ExperimentConfig
from hybridunet.engine import fit
from hybridunet.errors import DataError, UsageError


@dataclass
class Arm:
    """One config's results over the seeds."""

    label: str
    seeds: list[int]
    dice: list[float]
    miou: list[float]
    per_class_dice: list[dict[str, float | None]] = field(default_factory=list)
    run_ids: list[str | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    test_dice: list[float] = field(default_factory=list)  # on a held-out split, where one was asked for
    test_miou: list[float] = field(default_factory=list)


@dataclass
class Paired:
    """``b - a`` over the seeds both arms share."""

    a: str
    b: str
    metric: str
    diffs: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.diffs))

    @property
    def ci95(self) -> tuple[float, float]:
        n = len(self.diffs)
        if n < 2:
            return (math.nan, math.nan)
        half = stats.t.ppf(0.975, n - 1) * np.std(self.diffs, ddof=1) / math.sqrt(n)
        return (self.mean - half, self.mean + half)

    @property
    def detectable(self) -> float:
        """The smallest true mean difference this many seeds detect with 80% power (paired
        two-sided t-test at the 5% level, noncentral t), given the spread of the differences."""
        n = len(self.diffs)
        if n < 2:
            return math.nan
        from scipy.optimize import brentq

        critical = stats.t.ppf(0.975, n - 1)

        def power(effect: float) -> float:
            shift = effect * math.sqrt(n)
            lower = stats.nct.cdf(-critical, n - 1, shift)  # NaN where it underflows
            return stats.nct.sf(critical, n - 1, shift) + (0.0 if math.isnan(lower) else lower)

        effect = brentq(lambda e: power(e) - 0.8, 1e-6, 50.0)
        return effect * float(np.std(self.diffs, ddof=1))

    @property
    def effect_size(self) -> float:
        """Cohen's d_z: the mean difference over the differences' standard deviation."""
        if len(self.diffs) < 2 or np.std(self.diffs) == 0:
            return math.nan
        return self.mean / float(np.std(self.diffs, ddof=1))

    @property
    def p_value(self) -> float:
        if len(self.diffs) < 2 or np.std(self.diffs) == 0:
            return math.nan
        return float(stats.ttest_1samp(self.diffs, 0.0).pvalue)  # = paired t-test of b against a


def _mean_std(values: Sequence[float]) -> str:
    if not values:
        return "-"
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):.4f} ± {std:.4f}"


def paired(a: Arm, b: Arm, metric: str = "dice") -> Paired:
    for arm in (a, b):
        if len(set(arm.seeds)) != len(arm.seeds):
            raise UsageError(f"arm {arm.label!r} holds seed(s) more than once ({arm.seeds}): pairing needs each once")
    by_seed = {s: v for s, v in zip(a.seeds, getattr(a, metric))}
    diffs = [v - by_seed[s] for s, v in zip(b.seeds, getattr(b, metric)) if s in by_seed]
    return Paired(a.label, b.label, metric, diffs)


def table(arms: Sequence[Arm]) -> str:
    """The comparison as plain text: mean ± std per arm, paired differences, per-class Dice."""
    lines = [f"{'config':<24} {'seeds':>5} {'Dice':>17} {'mIoU':>17} {'s/run':>7}"]
    for arm in arms:
        seconds = f"{np.mean(arm.seconds):.0f}" if arm.seconds else "-"
        lines.append(f"{arm.label:<24} {len(arm.dice):>5} {_mean_std(arm.dice):>17} {_mean_std(arm.miou):>17} {seconds:>7}")
    for other in arms[1:]:
        for metric in ("dice", "miou"):
            d = paired(arms[0], other, metric)
            lo, hi = d.ci95
            lines.append(
                f"{metric} {other.label} - {arms[0].label}: {d.mean:+.4f} "
                f"(95% CI {lo:+.4f} .. {hi:+.4f}, paired t-test p = {d.p_value:.3g}, n = {len(d.diffs)}; "
                f"detectable at 80% power: {d.detectable:.4f})"
            )
    classes = [c for c in (arms[0].per_class_dice[0] if arms and arms[0].per_class_dice else {})]
    if classes:
        lines.append("")
        lines.append(f"{'per-class Dice':<16}" + "".join(f"{a.label[:14]:>16}" for a in arms))
        for name in classes:
            cells = []
            for arm in arms:
                values = [r[name] for r in arm.per_class_dice if r.get(name) is not None]
                cells.append(f"{np.mean(values):>16.3f}" if values else f"{'-':>16}")
            lines.append(f"{name:<16}" + "".join(cells))
    return "\n".join(lines)


def summary(arms: Sequence[Arm]) -> dict[str, Any]:
    """The comparison as JSON-ready data."""
    out: dict[str, Any] = {"arms": {}, "paired": []}
    for arm in arms:
        out["arms"][arm.label] = {
            "seeds": arm.seeds, "dice": arm.dice, "miou": arm.miou, "run_ids": arm.run_ids,
            "dice_mean": float(np.mean(arm.dice)), "miou_mean": float(np.mean(arm.miou)),
        }
    for other in arms[1:]:
        for metric in ("dice", "miou"):
            d = paired(arms[0], other, metric)
            out["paired"].append({
                "a": d.a, "b": d.b, "metric": metric, "mean_diff": d.mean,
                "ci95": list(d.ci95), "p_value": d.p_value, "diffs": d.diffs, "detectable": d.detectable,
            })
    return out


def run_comparison(
    configs: Sequence[tuple[str, ExperimentConfig]],
    seeds: Sequence[int],
    out_dir: str | Path | None = None,
    tracking: bool = True,
    progress: Callable[[str], None] | None = None,
    journal: str | Path | None = None,
    test_split: str | None = None,
) -> list[Arm]:
    """Train every (label, config) with every seed; with `tracking`, one parent MLflow run
    holds every training as a nested run, and the table and a bar plot as artifacts.
    `progress` receives one line per finished run.

    With `test_split`, each run's best checkpoint (chosen on val) is also scored on that
    held-out split, which never takes part in the choice. With `journal` (a JSONL file),
    every finished run appends one line, and a run already there (same label, seed and
    config hash) is read back instead of trained: a stopped comparison continues.
    Runs go seed by seed, every arm within a seed, so a cut-off comparison still pairs.
    """
    check_seeds(seeds)
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    out_dir = Path(out_dir or Path("outputs") / f"compare-{stamp}")
    arms = [Arm(label, [], [], []) for label, _ in configs]
    labels = [label for label, _ in configs]
    finished = read_journal(journal) if journal else {}
    with _parent(configs[0][1], tracking, f"compare-{'-vs-'.join(labels)}-{stamp}",
                 {"compare": "parent", "compare.labels": ",".join(labels)}) as parent:
        if parent is not None:
            parent.log_params({"configs": ",".join(labels), "seeds": ",".join(map(str, seeds))})
        total, done = len(configs) * len(seeds), 0
        for seed in seeds:
            for (label, config), arm in zip(configs, arms):
                key = (label, seed, config.result_hash())
                record = finished.get(key)
                if record is None:
                    record = _train(label, config, seed, out_dir, parent, test_split)
                    if journal:
                        _append_journal(journal, key, record)
                    how = f"in {record['seconds']:.0f} s"
                else:
                    how = f"(from {journal})"
                _add(arm, seed, record)
                done += 1
                if progress is not None:
                    test = f", test Dice {record['test_dice']:.4f}" if record.get("test_dice") is not None else ""
                    progress(f"[{done}/{total}] {label} seed {seed}: Dice {record['dice']:.4f}, "
                             f"mIoU {record['miou']:.4f}{test} {how}")
        if parent is not None:
            _log_summary(parent, arms)
    return arms


def _train(label: str, config: ExperimentConfig, seed: int, out_dir: Path, parent, test_split: str | None) -> dict:
    import time

    run_config = config.model_copy(deep=True)
    run_config.seed = seed
    run_config.train.out_dir = str(out_dir / f"{label}-s{seed}")
    run_config.tracking.run_name = f"{label}-s{seed}"
    callbacks = []
    if parent is not None:
        from hybridunet.tracking import MLflowCallback

        callbacks.append(MLflowCallback(run_config.tracking, parent_run_id=parent.run_id,
                                        tags={"compare.label": label}))
    start = time.perf_counter()
    result = fit(run_config, callbacks=callbacks)
    record = {"dice": result["dice"], "miou": result["miou"], "per_class_dice": result["per_class_dice"],
              "run_id": result.get("run_id"), "seconds": time.perf_counter() - start}
    if test_split:
        from hybridunet.engine import evaluate_checkpoint

        test = evaluate_checkpoint(result["checkpoint"], data=run_config.data.root, split=test_split)
        record.update(test_dice=test["dice"], test_miou=test["miou"])
    return record


def _add(arm: Arm, seed: int, record: dict) -> None:
    arm.seeds.append(seed)
    arm.dice.append(record["dice"])
    arm.miou.append(record["miou"])
    arm.per_class_dice.append(record["per_class_dice"])
    arm.run_ids.append(record.get("run_id"))
    arm.seconds.append(record["seconds"])
    if record.get("test_dice") is not None:
        arm.test_dice.append(record["test_dice"])
        arm.test_miou.append(record["test_miou"])


def read_journal(path: str | Path) -> dict[tuple, dict]:
    """Finished runs of a journal by (label, seed, config hash); the last line of a key wins."""
    path = Path(path)
    if not path.exists():
        return {}
    runs = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            runs[(record["label"], record["seed"], record["config_hash"])] = record
        except (ValueError, KeyError) as err:
            raise DataError(f"{path}, line {number}: not a run of this journal ({err}); "
                            "expected a JSON object with label, seed and config_hash") from None
    return runs


def _append_journal(path: str | Path, key: tuple, record: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    label, seed, config_hash = key
    with path.open("a") as f:
        f.write(json.dumps({"label": label, "seed": seed, "config_hash": config_hash, **record}) + "\n")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (family-wise error over the comparisons); NaN stays NaN."""
    order = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted


def check_seeds(seeds: Sequence[int]) -> None:
    repeated = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if repeated:
        raise UsageError(f"seed(s) {repeated} listed more than once: a paired comparison needs each seed once")


def _parent(config: ExperimentConfig, tracking: bool, name: str, tags: dict[str, str]):
    if not tracking:
        return contextlib.nullcontext(None)
    from hybridunet.tracking import parent_run

    return parent_run(config.tracking, name, tags)


def _log_summary(parent, arms: Sequence[Arm]) -> None:
    from hybridunet.viz import comparison_figure

    parent.log_text(table(arms), "compare/table.txt")
    parent.log_json(summary(arms), "compare/summary.json")
    parent.log_figure(comparison_figure({a.label: a.dice for a in arms}, "Dice"), "compare/dice.png")
    metrics = {}
    for arm in arms:
        key = re.sub(r"[^\w\-. /]", "_", arm.label)
        metrics.update({f"{key}/dice_mean": float(np.mean(arm.dice)), f"{key}/miou_mean": float(np.mean(arm.miou))})
    parent.log_metrics(metrics)


def arms_from_mlflow(experiment: str, uri: str | None = None,
                     notes: Callable[[str], None] | None = None) -> list[Arm]:
    """Finished training runs of an MLflow experiment, grouped by their label (preset plus
    part overrides). Per (label, seed) the newest run counts; `notes` is told how many
    older ones were skipped, and when one label mixes configs or data."""
    from hybridunet.tracking import finished_runs

    notes = notes or (lambda line: print(line, file=sys.stderr))
    arms: dict[str, Arm] = {}
    seen: set[tuple[str, int]] = set()
    skipped: dict[str, int] = {}
    kinds: dict[str, dict[str, set]] = {}
    for r in finished_runs(experiment, uri):  # newest first
        if (r.label, r.seed) in seen:
            skipped[r.label] = skipped.get(r.label, 0) + 1
            continue
        seen.add((r.label, r.seed))
        arm = arms.setdefault(r.label, Arm(r.label, [], [], []))
        arm.seeds.append(r.seed)
        arm.dice.append(r.dice)
        arm.miou.append(r.miou)
        arm.run_ids.append(r.run_id)
        found = kinds.setdefault(r.label, {"config": set(), "data": set()})
        found["config"].add(r.config_hash)
        found["data"].add(r.data_fingerprint)
    if not arms:
        raise UsageError(f"experiment {experiment!r} holds no finished training runs")
    for label, count in sorted(skipped.items()):
        notes(f"{label}: skipped {count} older run(s) of a seed that has a newer one")
    for label, found in sorted(kinds.items()):
        for what, values in found.items():
            if len(values - {None}) > 1:
                notes(f"warning: runs labelled {label} differ in their {'result-changing config' if what == 'config' else 'data'} "
                      f"({len(values - {None})} kinds): their comparison mixes {'recipes' if what == 'config' else 'data sets'}")
    for arm in arms.values():  # seeds in ascending order
        order = sorted(range(len(arm.seeds)), key=arm.seeds.__getitem__)
        arm.seeds, arm.dice, arm.miou, arm.run_ids = ([getattr(arm, f)[i] for i in order]
                                                      for f in ("seeds", "dice", "miou", "run_ids"))
    # the label whose newest run is the oldest comes first: a comparison's baseline, trained first
    return list(reversed(arms.values()))
