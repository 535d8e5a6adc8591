"""Prediction with a trained model, one pipeline for every kind of model file.

- predictors.py: `Predictor` (logits for a batch, with its normalisation, stride and input
  size), `TorchPredictor` (a checkpoint), `OnnxPredictor` (an export, in onnxruntime), and
  `open_predictor`, where `predict --checkpoint` and `predict --model` meet;
- tiling.py: resizing, normalising and tiling an image for any predictor (knows no model);
- files.py: masks and overlays for image files.
"""

from hybridunet.prediction.files import PredictionFiles, predict_files, prediction_targets
from hybridunet.prediction.predictors import OnnxPredictor, Predictor, TorchPredictor, open_predictor
from hybridunet.prediction.tiling import blend_window, check_tiling, segment, tile_starts, tiled_logits

__all__ = [
    "OnnxPredictor", "PredictionFiles", "Predictor", "TorchPredictor", "blend_window", "check_tiling",
    "open_predictor", "predict_files", "prediction_targets", "segment", "tile_starts", "tiled_logits",
]
