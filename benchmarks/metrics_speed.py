"""ConfusionMatrix against torchmetrics on the same tensors: equal values, and the time of
update + compute for a 16x19x256x256 batch of logits.

    python benchmarks/metrics_speed.py [--batch 16] [--size 256] [--repeats 5]

torchmetrics computes mIoU (MulticlassJaccardIndex) and Dice (MulticlassF1Score, which
is Dice per class) as two metrics; ours derives both, and pixel accuracy, from one
confusion matrix. 10% of target pixels are ignore (255). Prints a table, then a JSON line.
"""

from __future__ import annotations

import argparse
import math

import torch
from common import machine, print_json, print_table, timed
from torchmetrics.classification import MulticlassF1Score, MulticlassJaccardIndex

from hybridunet.metrics import ConfusionMatrix


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--classes", type=int, default=19)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    device, c = torch.device(args.device), args.classes

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(args.batch, c, args.size, args.size, generator=g).to(device)
    target = torch.randint(0, c, (args.batch, args.size, args.size), generator=g)
    target[torch.rand(target.shape, generator=g) < 0.1] = 255
    target = target.to(device)

    def ours() -> dict:
        cm = ConfusionMatrix(c, device=device)
        cm.update(logits, target)
        return cm.compute()

    def theirs() -> dict:
        miou = MulticlassJaccardIndex(c, average="macro", ignore_index=255).to(device)
        dice = MulticlassF1Score(c, average="macro", ignore_index=255).to(device)
        miou.update(logits, target)
        dice.update(logits, target)
        return {"miou": float(miou.compute()), "dice": float(dice.compute())}

    a, b = ours(), theirs()  # also the warm-up
    for key in ("dice", "miou"):
        if not math.isclose(a[key], b[key], rel_tol=0, abs_tol=1e-6):
            raise SystemExit(f"{key} differs: ours {a[key]!r}, torchmetrics {b[key]!r}")
    t_ours, t_theirs = timed(ours, device, args.repeats), timed(theirs, device, args.repeats)
    print_table(
        f"metrics_speed: update + compute on {args.batch}x{c}x{args.size}x{args.size} logits, {machine(device)}",
        ["implementation", "ms", "dice", "miou"],
        [["hybridunet ConfusionMatrix", f"{t_ours * 1e3:.1f}", f"{a['dice']:.6f}", f"{a['miou']:.6f}"],
         ["torchmetrics Jaccard + F1", f"{t_theirs * 1e3:.1f}", f"{b['dice']:.6f}", f"{b['miou']:.6f}"]],
    )
    print(f"  speed-up {t_theirs / t_ours:.2f}x; values equal within 1e-6")
    print_json({"ours_ms": round(t_ours * 1e3, 2), "torchmetrics_ms": round(t_theirs * 1e3, 2),
                "speedup_vs_torchmetrics": round(t_theirs / t_ours, 2), "values_equal": True})


if __name__ == "__main__":
    main()
