"""The main job on the embedded synthetic data: UNet against the best Hybrid UNet preset,
seeds added until the stopping rule decides (hybridunet.sequential) or its cap in seeds; a clock
stops it only when a budget is asked for."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybridunet.comparison import (
    Event,
    Looked,
    PairOutcome,
    Rule,
    RunDone,
    describe,
    run_comparison,
    run_sequential,
    summary,
    table,
)
from hybridunet.config import ExperimentConfig, parse_config
from hybridunet.data.synthetic import ensure_synthetic
from hybridunet.results import Arm

DATA = Path("data/synthetic")
ARMS = ("unet", "hybrid_unet_resdec")  # the baseline and the best hybrid preset (BENCHMARKS.md's ablation)
SYNTHETIC = {"train": 200, "val": 50, "size": 256, "seed": 0}  # what DATA holds (synthetic.json checks it)
# Chosen on held-out seeds 100-107 (benchmarks/demo_recipe.py, BENCHMARKS.md): the 200 scenes
# resized to 48x48 and held in memory, quarter-width models, 16 epochs, Dice + cross entropy
# with square-root inverse-frequency class weights. There resdec - unet had a standardised
# effect of 2.7 (8 of 8 seeds ahead) at 58 s a seed pair on an AMD EPYC's two cores. The cap of
# 5 seeds (first look at 3) has power 0.96 at a d_z of 2.5 (`hybridunet plan --max-seeds 5`).
RECIPE: dict[str, Any] = {
    "model": {"widths": [8, 16, 32, 64, 128]},
    "data": {"root": str(DATA), "size": 48, "limit_val": 48, "in_memory": True,
             "augment": {"scale": [0.8, 1.25], "hflip": 0.5, "color_jitter": 0.1}},
    "train": {"epochs": 16, "batch_size": 8},
    "loss": {"name": "dice_ce", "class_weights": "sqrt_inverse"},
    "optim": {"name": "adamw", "lr": 0.003},
    "sched": {"name": "cosine"},
    "tracking": {"experiment": "hybridunet-demo"},
}


def run_demo(seeds: Sequence[int] | None = None, tracking: bool = True, max_seeds: int = 5,
             budget_minutes: float | None = None, match_cost: str = "none") -> dict[str, Any]:
    """Generate the synthetic data if missing, compare the two presets, print the table and
    the decision. Seeds 0, 1, 2, ... are added until the stopping rule decides, at most
    `max_seeds` (so the answer depends on no clock); with `budget_minutes`, also starting none
    that would pass that much training (which can stop it undecided); with `seeds`, exactly
    those seeds (no decision). `match_cost` (`flops`, `time`): unet trains longer, so both
    arms spend the same (`comparison.cost`)."""
    from hybridunet.comparison.cost import check_match_cost

    mode = check_match_cost(match_cost)
    if not any((DATA / "train").glob("*.jpg")):
        print(f"generating synthetic street scenes in {DATA} ...", flush=True)
    ensure_synthetic(DATA, **SYNTHETIC, workers=os.cpu_count() or 1)
    configs: list[tuple[str, ExperimentConfig]] = []
    for name in ARMS:
        tree = {**RECIPE, "model": {**RECIPE["model"], "name": name}}
        configs.append((name, parse_config(tree, "the demo recipe")))
    start = time.perf_counter()
    outcomes: list[PairOutcome] = []
    if seeds is not None:
        print(f"training {' and '.join(ARMS)} with seeds {', '.join(map(str, seeds))} ...", flush=True)
        arms = run_comparison(configs, seeds, tracking=tracking, on_event=_Progress(len(seeds)), match_cost=mode)
    else:
        budget = f", at most {budget_minutes:g} minutes of training" if budget_minutes is not None else ""
        print(f"training {' and '.join(ARMS)} with seeds 0, 1, 2, ... until the stopping rule decides (at most "
              f"{max_seeds} seeds{budget}) ...", flush=True)
        if mode == "time":
            print("--match-cost time: unet's extra steps are timed on this machine before the first seed, so the "
                  "multiplier, and with it the answer, depends on the machine", flush=True)
        rule = Rule(max_seeds=max_seeds, metric="dice", budget_minutes=budget_minutes)
        arms, outcomes = run_sequential(configs, rule, tracking=tracking, on_event=_Progress(max_seeds), match_cost=mode)
    print()
    print(table(arms, outcomes))
    print(f"\n{len(arms[0].seeds)} seeds in {(time.perf_counter() - start) / 60:.1f} minutes")
    if tracking:
        _say_where(arms)
    return summary(arms, outcomes)


def _say_where(arms: Sequence[Arm]) -> None:
    """How to see the comparison in `mlflow ui`, and where each arm's model is; with a
    tracking server that is away, that the runs wait in their outboxes (`hybridunet sync`)."""
    from hybridunet.tracking import ui_links
    from hybridunet.tracking.outage import is_outage

    last = arms[0].records[-1].run_id
    try:
        if last is None:
            raise ConnectionError("the runs were not created")
        charts, page = ui_links(last)
    except Exception as error:  # noqa: BLE001
        if not is_outage(error):
            raise
        print("\nThe tracking server is away: the runs wait in their folders' outboxes (the line above says how "
              "to send them: hybridunet sync).")
        return
    experiment = RECIPE["tracking"]["experiment"]
    print(f"\nEvery run is in MLflow (experiment {experiment}). To see the comparison:  mlflow ui   then open\n"
          f"  {charts}\n    (the chart view: each arm's learning curve, the difference and the decision)\n"
          f"  {page}\n    (this comparison's own page; its seeds are nested runs under it)\n"
          f"To compare them again:  hybridunet compare --experiment {experiment}")
    _say_models(arms)


def _say_models(arms: Sequence[Arm]) -> None:
    """Where each arm's model is: its best seed logged it (the Models tab)."""
    from hybridunet.tracking import tracking_uri
    from hybridunet.tracking.models import logged_model

    uri = tracking_uri()
    best = [(arm.label, max(arm.records, key=lambda r: r.val.dice).run_id) for arm in arms]
    found = [(label, logged_model(run_id, uri)) for label, run_id in best if run_id is not None]
    if any(model for _, model in found):
        print("Each arm's best seed logged its model (ONNX; MLflow's Models tab). To predict with one "
              "(x: normalised float32, N x 3 x H x W):")
        for label, model in found:
            if model is not None:
                print(f"  mlflow.pyfunc.load_model('{model.model_uri}').predict(x)['logits']   # {label}")


class _Progress:
    """Prints the comparison's events (the rule's outcome once, in the table) and, after the
    first seed pair, how long the rest can take."""

    def __init__(self, seeds: int) -> None:
        self.seeds, self.first_pair = seeds, 0.0

    def __call__(self, event: Event) -> None:
        if isinstance(event, Looked):
            return
        print(describe(event), flush=True)
        if isinstance(event, RunDone) and event.done <= len(ARMS):
            self.first_pair += event.record.seconds or 0.0
            if event.done == len(ARMS) and self.seeds > 1:
                rest = self.first_pair * (self.seeds - 1) / 60
                print(f"a seed pair took {self.first_pair:.0f} s: the other {self.seeds - 1} seeds take about "
                      f"{rest:.1f} minutes at most (the rule may decide sooner)", flush=True)
