"""Multi-seed comparisons: is a difference in Dice real or noise?

Every config trains with the same seeds (so the same data order and augmentation per seed);
each is compared with the first by the paired difference per seed. Over fixed seeds that is
the 95% t interval and the paired t-test; with a `Rule`, seeds are added until the stopping
rule (`hybridunet.sequential`) decides each pair. One concern a module:

- stats.py: paired differences, Holm, the deciding metric;  - outcome.py: `PairOutcome`;
- rule.py: the rule applied to a family of pairs, the level split over them;
- report.py: the table, the summary JSON, the one interval line, progress as text;
- runner.py: the one loop over seeds (`run`, `run_comparison`, `run_sequential`);
- events.py: what the runner tells as it goes;  - tracked.py: the parent run in MLflow;
- experiment.py: an MLflow experiment's finished runs as arms (`compare --experiment`).
"""

from hybridunet.comparison.events import BudgetStop, Event, Looked, OldRule, RunDone
from hybridunet.comparison.experiment import arms_from_mlflow
from hybridunet.comparison.outcome import PairOutcome
from hybridunet.comparison.report import describe, interval, line, mean_std, summary, table, verdict
from hybridunet.comparison.rule import Rule, look
from hybridunet.comparison.runner import Comparison, run, run_comparison, run_sequential
from hybridunet.comparison.stats import COST_KEYS, Paired, cost_means, deciding_metric, holm, paired

__all__ = [
    "COST_KEYS", "BudgetStop", "Comparison", "Event", "Looked", "OldRule", "PairOutcome", "Paired", "Rule", "RunDone",
    "arms_from_mlflow", "cost_means", "deciding_metric", "describe", "holm", "interval", "line", "look", "mean_std",
    "paired", "run", "run_comparison", "run_sequential", "summary", "table", "verdict",
]
