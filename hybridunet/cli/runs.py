"""Commands on one run: train, eval, predict, export, sync."""

from __future__ import annotations

import argparse
import os

from hybridunet.cli.args import Subcommands, positive, print_json


def cmd_train(args: argparse.Namespace) -> int:
    """Train from a YAML config; the last stdout line is the metrics JSON."""
    from hybridunet.config import load_config
    from hybridunet.engine import fit

    overrides = list(args.overrides) + (["train.overwrite=true"] if args.overwrite else [])
    config = load_config(args.config, overrides)
    result = fit(config, callbacks=_callbacks(config), resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one metrics line
        print_json(result)
    return 0


def _callbacks(config) -> list:
    if not config.tracking.enabled or int(os.environ.get("RANK", "0")) != 0:  # under torchrun, rank 0 logs
        return []
    from hybridunet.tracking import MLflowCallback

    return [MLflowCallback(config.tracking)]


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint on a split; the last stdout line is the metrics JSON."""
    from hybridunet.engine import evaluate_checkpoint

    if args.official:
        return _official_eval(args)
    metrics = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.batch_size, args.device)
    print_json(metrics)
    return 0


def _official_eval(args: argparse.Namespace) -> int:
    from hybridunet import cityscapes_eval as official
    from hybridunet.errors import UsageError

    if not args.data:
        raise UsageError("--official needs --data: the official Cityscapes root (leftImg8bit/ and gtFine/)")
    pairs = official.write_predictions(args.checkpoint, args.data, args.split, args.official, args.device,
                                       args.overwrite)
    result = official.official_scores(pairs, args.official)
    print(official.report(result))
    ours = official.own_miou(pairs)
    print(f"\nour mIoU on the same {len(pairs)} labelId PNGs: {ours:.6f} (cityscapesscripts: "
          f"{result['averageScoreClasses']:.6f})")
    print_json({"images": len(pairs), "miou_official": result["averageScoreClasses"],
                                "category_iou": result["averageScoreCategories"],
                                "iiou": result["averageScoreInstClasses"] if result["instance_level"] else None,
                                "miou_ours": ours, "predictions": args.official})
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Write colour masks and overlays for an image or a folder of images."""
    from hybridunet.prediction import open_predictor, predict_files, prediction_targets

    prediction_targets(args.input, args.out, args.overwrite)  # a bad input or output fails before the model loads
    predictor = open_predictor(checkpoint=args.checkpoint, onnx_model=args.model, device=args.device)
    written = predict_files(predictor, args.input, args.out, args.size, args.overwrite, args.tile, args.overlap,
                            args.blend)
    print(f"wrote masks and overlays of {len(written)} images to {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the checkpoint's fp32 eval model as ONNX with its sidecar JSON."""
    from hybridunet.export import export_onnx, sidecar_path

    out = export_onnx(args.checkpoint, args.out, args.opset, args.overwrite)
    print(f"wrote {out} and {sidecar_path(out).name} (opset {args.opset}; dynamic batch, height and width)")
    if args.mlflow_run:
        from hybridunet.tracking.models import log_onnx_model
        from hybridunet.tracking.store import tracking_uri

        model = log_onnx_model(args.mlflow_run, out, args.registered_model, tracking_uri())
        print(f"logged it to MLflow run {args.mlflow_run} as {model.model_uri} (ONNX flavour)")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Send the MLflow calls a run folder's outbox holds (and its subfolders': a comparison's seeds)."""
    from hybridunet.tracking.sync import sync

    for done in sync(args.run_dir, args.wait, args.skip_refused):
        ended = "; its process had died, so the run is marked KILLED" if done.killed else ""
        print(f"{done.folder}: sent {done.sent} calls to MLflow run {done.run_id}{ended}")
    return 0


def add_commands(commands: Subcommands) -> None:
    train = commands.add_parser("train", help="train from a YAML config (last line: metrics JSON)")
    train.add_argument("--config", required=True,
                       help="a recipe name (`hybridunet recipes`: unet, tiny, ...) or an experiment YAML")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the output folder")
    train.add_argument("--overwrite", action="store_true", help="replace an existing output folder's checkpoints")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. train.epochs=2")
    train.set_defaults(func=cmd_train)

    evaluate = commands.add_parser("eval", help="evaluate a checkpoint (last line: metrics JSON)")
    evaluate.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint (e.g. outputs/RUN/best.safetensors)")
    evaluate.add_argument("--data", help="data folder (default: the one it was trained on)")
    evaluate.add_argument("--split", default="val")
    evaluate.add_argument("--batch-size", type=positive, help="default: the training run's validation batch size")
    evaluate.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    evaluate.add_argument("--official", metavar="OUT",
                          help="official Cityscapes data: write labelId PNGs to OUT and score them with cityscapesscripts")
    evaluate.add_argument("--overwrite", action="store_true", help="with --official: replace predictions in OUT")
    evaluate.set_defaults(func=cmd_eval)

    pred = commands.add_parser("predict", help="write colour masks and overlays for images")
    which = pred.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="a .safetensors checkpoint (PyTorch)")
    which.add_argument("--model", help="a .onnx file from `hybridunet export` (onnxruntime; its .onnx.json beside it)")
    pred.add_argument("--input", required=True, help="an image or a folder of images")
    pred.add_argument("--out", required=True, help="output folder")
    pred.add_argument("--size", type=positive, help="run the model at SIZE x SIZE and resize back (default: as is)")
    pred.add_argument("--tile", type=positive, help="predict in TILE x TILE windows (after resizing as training did)")
    pred.add_argument("--overlap", type=float, default=0.25, help="tiles' overlap, a fraction in [0, 1) (default 0.25)")
    pred.add_argument("--blend", default="gaussian", choices=["gaussian", "linear"],
                      help="how overlapping tiles are weighted (default gaussian)")
    pred.add_argument("--overwrite", action="store_true", help="replace existing output files")
    pred.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    pred.set_defaults(func=cmd_predict)

    export = commands.add_parser("export", help="write a trained model as ONNX (dynamic batch, height, width)")
    export.add_argument("--checkpoint", required=True)
    export.add_argument("--format", default="onnx", choices=["onnx"])
    export.add_argument("--out", help="the .onnx file (default: beside the checkpoint); a .onnx.json sidecar goes beside it")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing export")
    export.add_argument("--mlflow-run", metavar="RUN_ID", help="also log it to this MLflow run (ONNX flavour)")
    export.add_argument("--registered-model", metavar="NAME", help="with --mlflow-run: register it under NAME")
    export.set_defaults(func=cmd_export)

    sync = commands.add_parser("sync", help="send a run folder's outbox: what an away tracking server did not take")
    sync.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (or a comparison's or a study's, with its runs)")
    sync.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                      help="while the server is away, try again for this long (default: one attempt)")
    sync.add_argument("--skip-refused", action="store_true",
                      help="drop a call the server refuses (a 4xx answer, a file that is gone) instead of stopping")
    sync.set_defaults(func=cmd_sync)
