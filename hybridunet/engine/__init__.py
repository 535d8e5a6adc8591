"""Training, evaluation and prediction, one concern per module:

- training.py: `fit(config)`, a run's story;      - loops.py: a training epoch, `evaluate`;
- build.py: data splits, model and loss;          - optim.py: optimiser and LR schedule;
- device.py: device, precision, memory format;    - rundir.py: the run folder and resume rules;
- run.py: the `Run` record and `Callback`;        - inference.py: checkpoints on data and files.
"""

from hybridunet.engine.build import build_loss, build_model, class_names, open_split
from hybridunet.engine.device import Precision, pick_device, resolve_precision
from hybridunet.engine.training import fit, seed_everything
from hybridunet.engine.inference import evaluate_checkpoint, predict, predict_files
from hybridunet.engine.loops import NonFiniteLossError, evaluate
from hybridunet.engine.optim import build_optimizer, build_scheduler
from hybridunet.engine.run import Callback, Run, json_safe

__all__ = [
    "Callback", "NonFiniteLossError", "Precision", "Run", "build_loss", "build_model", "build_optimizer",
    "build_scheduler", "class_names", "evaluate", "evaluate_checkpoint", "fit", "json_safe", "pick_device",
    "predict", "predict_files", "resolve_precision", "seed_everything",
]
