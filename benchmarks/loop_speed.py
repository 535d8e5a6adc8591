"""Does the training loop keep up with its model? A real `fit` epoch's training images/s
over train_speed's bare step images/s, for the same model, precision, batch and size.

    python benchmarks/loop_speed.py [--models unet hybrid_unet] [--batch 8] [--size 256] [--images 48]
        [--loaders dataloader in_memory] [--workers 0]

The epoch is `hybridunet.engine.fit` on synthetic pairs (decoding, colour-mask lookup,
augmentation, loss, metrics and progress included; tracking off), with the precision and
memory format `auto` picks here, fed by the DataLoader (`--workers` processes decoding and
augmenting with albumentations) or by `data.in_memory` (decoded once, augmented on the
device with torch ops). The step is train_speed.py's forward + loss + backward +
AdamW update on random tensors already in memory, in the same mode. The ratio is 1.0 when
the loop costs nothing beyond the step. Prints a table, then a JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from common import machine, print_json, print_table
from train_speed import measure


def fit_epoch_rate(name: str, loader: str, data: Path, out: Path, args: argparse.Namespace) -> tuple[float, str]:
    """Training images/s of the second epoch of a real fit (the first warms caches up)."""
    from hybridunet.config import parse_config
    from hybridunet.engine import fit, resolve_precision

    tree = {"model": {"name": name}, "data": {"root": str(data), "size": args.size, "limit_val": 2,
                                              "in_memory": loader == "in_memory", "num_workers": args.workers},
            "train": {"epochs": 2, "batch_size": args.batch, "progress": False, "out_dir": str(out),
                      "device": args.device},
            "tracking": {"enabled": False}}
    config = parse_config(tree, "loop_speed")
    fit(config)
    history = json.loads((out / "last.json").read_text())["history"]
    precision = resolve_precision(torch.device(args.device), config.train.amp, config.train.channels_last)
    return history[-1]["images_per_s"], precision


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["unet", "hybrid_unet"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--images", type=int, default=48, help="training images per epoch")
    parser.add_argument("--steps", type=int, default=3, help="timed bare steps")
    parser.add_argument("--loaders", nargs="+", choices=["dataloader", "in_memory"], default=["dataloader", "in_memory"])
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    from hybridunet.data.synthetic import write_split

    rows, figures = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_split(data, "train", args.images, size=args.size)
        write_split(data, "val", 2, size=args.size)
        for name in args.models:
            step, mode = None, None
            for loader in args.loaders:
                loop, precision = fit_epoch_rate(name, loader, data, Path(tmp) / f"{name}-{loader}", args)
                if step is None:  # the bare step once per model, in the mode the fit ran
                    mode = "+".join(["eager", *(["channels_last"] if precision.channels_last else []),
                                     *(["bf16"] if precision.amp == "bf16" else [])]).replace("eager+", "")
                    step = measure(name, mode, args.batch, args.size, args.steps,
                                   torch.device(args.device))["images_per_s"]
                ratio = round(loop / step, 3)  # one value for the table and the JSON line
                rows.append([name, loader, str(precision), f"{loop:.2f}", f"{step:.2f}", f"{ratio:.2f}"])
                figures[f"{name}_{loader}_loop_over_step"] = ratio
                figures[f"{name}_{loader}_loop_images_per_s"] = round(loop, 3)
            figures[f"{name}_step_images_per_s"] = round(step, 3)
    print_table(f"loop_speed: batch {args.batch}, 3x{args.size}x{args.size}, {args.images} images per epoch, "
                f"{args.workers} DataLoader workers, {machine(torch.device(args.device))}",
                ["model", "training data", "precision (auto)", "fit epoch images/s", "bare step images/s", "loop / step"], rows)
    print_json({"device": args.device, **figures})


if __name__ == "__main__":
    main()
