"""The official Cityscapes numbers: labelId predictions at the ground truth's size, scored by
cityscapesscripts' own evaluator (class IoU, category IoU, and iIoU where instanceIds exist).

cityscapesscripts is the optional extra `[cityscapes]`; it reads its environment at import
and ends the process on an error, so both are handled here.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hybridunet.errors import DataError, OutputExistsError, UsageError

PREDICTION_SUFFIX = "_pred_labelIds.png"


def _evaluator():
    try:
        from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as evaluator
    except ImportError:
        raise UsageError("--official needs cityscapesscripts: pip install 'hybridunet[cityscapes]'") from None
    return evaluator


def write_predictions(checkpoint: str | Path, root: str | Path, split: str, out: str | Path, device: str = "auto",
                      overwrite: bool = False, progress: bool = True) -> list[tuple[Path, Path]]:
    """One labelId PNG per ground-truth file of ROOT/gtFine/SPLIT, at its size, named
    ``<city>_<seq>_<frame>_pred_labelIds.png`` under OUT/<city>/ as cityscapesscripts finds
    them; returns (prediction, ground truth) pairs."""
    import cv2
    from tqdm import tqdm

    from hybridunet.data.base import read_image
    from hybridunet.data.cityscapes import IMAGE_SUFFIX, Cityscapes
    from hybridunet.prediction import TorchPredictor

    _evaluator()  # fail at once, before any prediction, where the extra is missing
    from cityscapesscripts.helpers.labels import trainId2label

    dataset = Cityscapes(root, split)
    out = Path(out)
    targets = [(out / image.parent.name / image.name.replace(IMAGE_SUFFIX, PREDICTION_SUFFIX), truth)
               for image, truth in dataset.samples]
    existing = [p for p, _ in targets if p.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f"{len(existing)} predictions exist already in {out} (e.g. {existing[0]}); "
                                "pass --overwrite to replace them")
    predictor = TorchPredictor.from_checkpoint(checkpoint, device)
    to_label_id = np.zeros(256, np.uint8)
    for train_id, label in trainId2label.items():
        if 0 <= train_id < 255:
            to_label_id[train_id] = label.id
    for (image_path, _), (target, truth) in tqdm(list(zip(dataset.samples, targets)), desc="official predictions",
                                                 disable=not progress, file=sys.stderr, leave=False):
        image = read_image(image_path)
        h, w = cv2.imread(str(truth), cv2.IMREAD_UNCHANGED).shape[:2]
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        train_ids = predictor.predict(image, predictor.input_size)
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), to_label_id[train_ids])
    return targets


def official_scores(pairs: list[tuple[Path, Path]], out: str | Path) -> dict[str, Any]:
    """cityscapesscripts' evaluateImgLists over (prediction, ground truth) pairs: its result
    dict (classScores, categoryScores, their instance-level forms where instanceIds exist)."""
    out = Path(out)
    os.environ["CITYSCAPES_RESULTS"] = str(out)  # read at import and at the first prediction look-up
    os.environ["CITYSCAPES_EXPORT_DIR"] = str(out)
    evaluator = _evaluator()
    args = evaluator.args
    args.predictionPath, args.predictionWalk = str(out), None
    args.exportFile = str(out / "resultPixelLevelSemanticLabeling.json")
    args.evalInstLevelScore = all(Path(str(t).replace("labelIds", "instanceIds")).is_file() for _, t in pairs)
    args.quiet, args.JSONOutput, args.colorized = True, True, False
    args.bold = args.nocol = ""
    printed = io.StringIO()
    # Its instance-level score calls np.in1d, which NumPy 2.4 removed: lend np.isin's
    # equivalent for the call, where it is missing.
    lent = not hasattr(np, "in1d")
    if lent:
        np.in1d = lambda a, b, **kw: np.isin(np.asarray(a).ravel(), b, **kw)
    try:
        with contextlib.redirect_stdout(printed):
            result = evaluator.evaluateImgLists([str(p) for p, _ in pairs], [str(t) for _, t in pairs], args)
    except SystemExit:  # its printError ends the process; say what it printed instead
        message = printed.getvalue().strip().splitlines()
        raise DataError(f"cityscapesscripts: {message[-1] if message else 'evaluation failed'}") from None
    finally:
        if lent:
            del np.in1d
    result["instance_level"] = args.evalInstLevelScore
    return result


def own_miou(pairs: list[tuple[Path, Path]]) -> float:
    """Our mIoU over the same full-size labelId PNGs, from our confusion matrix."""
    import cv2
    import torch

    from hybridunet.data.labels import label_id_to_train_id
    from hybridunet.metrics import ConfusionMatrix

    to_train = label_id_to_train_id()
    cm = ConfusionMatrix(19)
    for prediction, truth in pairs:
        pred = to_train[cv2.imread(str(prediction), cv2.IMREAD_UNCHANGED)]
        target = to_train[cv2.imread(str(truth), cv2.IMREAD_UNCHANGED)]
        if (pred == 255).any():
            raise DataError(f"{prediction}: holds labelIds outside the 19 evaluated classes")
        cm.update(torch.from_numpy(pred[None]).long(), torch.from_numpy(target[None]).long())
    return cm.compute()["miou"]


def report(result: dict[str, Any]) -> str:
    """Class IoU, category IoU and, where instanceIds exist, iIoU, as a plain table."""
    inst = result["instance_level"]
    lines = [f"{'class':<16} {'IoU':>7}" + (f" {'iIoU':>7}" if inst else "")]
    for name, score in result["classScores"].items():
        i_score = result["classInstScores"].get(name, float("nan"))
        lines.append(f"{name:<16} {score:>7.4f}" + (f" {i_score:>7.4f}" if inst else ""))
    lines.append(f"{'mean (classes)':<16} {result['averageScoreClasses']:>7.4f}"
                 + (f" {result['averageScoreInstClasses']:>7.4f}" if inst else ""))
    lines.append("")
    lines.append(f"{'category':<16} {'IoU':>7}" + (f" {'iIoU':>7}" if inst else ""))
    for name, score in result["categoryScores"].items():
        i_score = result["categoryInstScores"].get(name, float("nan"))
        lines.append(f"{name:<16} {score:>7.4f}" + (f" {i_score:>7.4f}" if inst else ""))
    lines.append(f"{'mean (categories)':<16} {result['averageScoreCategories']:>7.4f}"
                 + (f" {result['averageScoreInstCategories']:>7.4f}" if inst else ""))
    return "\n".join(lines)
