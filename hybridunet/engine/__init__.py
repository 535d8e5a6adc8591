"""Training, evaluation and prediction, one concern per module:

- training.py: `fit(config)`, a run's story;      - loops.py: a training epoch, `evaluate`;
- build.py: data splits, model and loss;          - optim.py: optimiser and LR schedule;
- rundir.py: the run folder and resume rules;     - run.py: the `Run` record and `Callback`;
- result.py: `FitResult`, what `fit` returns;
- inference.py: a checkpoint on a split, `predict` for one image (through `hybridunet.prediction`).

Devices and precision are `hybridunet.device`'s; `Precision`, `pick_device` and
`resolve_precision` are re-exported here.
"""

from hybridunet.device import Precision, pick_device, resolve_precision
from hybridunet.engine.build import build_loss, build_model, class_names, open_split
from hybridunet.engine.inference import evaluate_checkpoint, predict
from hybridunet.engine.loops import NonFiniteLossError, evaluate
from hybridunet.engine.optim import build_optimizer, build_scheduler
from hybridunet.engine.result import FitResult
from hybridunet.engine.run import Callback, Run
from hybridunet.engine.training import fit, seed_everything

__all__ = [
    "Callback", "FitResult", "NonFiniteLossError", "Precision", "Run", "build_loss", "build_model", "build_optimizer",
    "build_scheduler", "class_names", "evaluate", "open_split", "evaluate_checkpoint", "fit", "pick_device",
    "predict", "resolve_precision", "seed_everything",
]
