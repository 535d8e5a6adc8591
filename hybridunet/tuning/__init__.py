"""Optuna tuning: a YAML search space over config keys, TPE sampling, pruning on
validation Dice per epoch, one nested MLflow run per trial, resumable RDB studies.

- space.py: the search-space schema (`load_search_space`), each entry checked against the config;
- storage.py: the RDB storage (`open_storage`), with heartbeats and start-up races handled;
- objective.py: one trial (`Objective`) and per-epoch pruning (`PruneOnDice`);
- study.py: `tune`, which runs or resumes a study, and `study_report`.

Search space file::

    sampler: {seed: 0}                         # TPE
    pruner: {name: median, n_startup_trials: 2, n_warmup_steps: 1}   # or hyperband, wilcoxon, none
    params:
      optim.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      train.batch_size: {type: int, low: 4, high: 16, step: 4}
      model.bottleneck: {type: categorical, choices: [identity, aspp, transformer]}
      model.widths: {type: categorical, choices: [[16, 32, 64], [32, 64, 128]]}

With ``tune --seeds-per-trial K`` a trial scores the mean of K seeds, pruned seed by seed
(``wilcoxon`` is Optuna's pruner for that; it needs K >= 4 to ever prune).

Running the same command again resumes the study: ``trials`` counts finished trials
(complete or pruned) in total. Several processes or machines may share one storage.
"""

from hybridunet.tuning.objective import Objective, PruneOnDice
from hybridunet.tuning.space import ParamSpec, PrunerSpec, SamplerSpec, SearchSpace, load_search_space
from hybridunet.tuning.storage import open_storage
from hybridunet.tuning.study import FINISHED, confirm_best, study_dir, study_report, tune

__all__ = [
    "FINISHED", "Objective", "confirm_best", "ParamSpec", "PruneOnDice", "PrunerSpec", "SamplerSpec", "SearchSpace",
    "load_search_space", "open_storage", "study_dir", "study_report", "tune",
]
