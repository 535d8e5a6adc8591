"""Data path speed: synthetic generation, colour-mask mapping, and the pairs loader
(decode + map + augment) with 0 and 2 workers at 256x256, against the training step's
images/s of the fastest model (the loader must outrun it at least 3x to never starve it).

    python benchmarks/data_speed.py [--images 384] [--batch 16] [--models unet smp_unet]

Prints a table, then a JSON line with the headline figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from train_speed import measure

from hybridunet.data import CityscapesPairs, ColorMapper, make_loader, train_transform
from hybridunet.data.base import read_image
from hybridunet.data.synthetic import write_split


def loader_speed(data: CityscapesPairs, workers: int, batch: int, images: int) -> float:
    loader = make_loader(data, batch_size=batch, shuffle=True, num_workers=workers, seed=0)
    epochs, seen = 0, 0
    it = iter(loader)
    next(it)  # start-up (worker spawn) is not throughput
    start = time.perf_counter()
    while seen < images:
        try:
            x, _ = next(it)
        except StopIteration:
            epochs += 1
            loader.sampler.set_epoch(epochs)
            it = iter(loader)
            continue
        seen += len(x)
    return seen / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=384)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--models", nargs="+", default=["unet", "smp_unet"], help="whose training step to outrun")
    parser.add_argument("--train-batch", type=int, default=8)
    args = parser.parse_args(argv)
    train_rates = {
        name: measure(name, "eager", args.train_batch, args.size, 2, torch.device("cpu"))["images_per_s"]
        for name in args.models
    }
    fastest = max(train_rates, key=train_rates.get)
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        n = 96
        start = time.perf_counter()
        write_split(tmp, "train", n, size=args.size, seed=0)
        synth_rate = n / (time.perf_counter() - start)

        mapper = ColorMapper.cityscapes()
        pairs = [read_image(p) for p in sorted(Path(tmp, "train").glob("*.jpg"))[:32]]
        masks = [np.ascontiguousarray(p[:, args.size :]) for p in pairs]
        start = time.perf_counter()
        for mask in masks:
            mapper(mask)
        map_ms = (time.perf_counter() - start) / len(masks) * 1e3

        data = CityscapesPairs(tmp, "train", transform=train_transform(args.size))
        rates = {w: loader_speed(data, w, args.batch, args.images) for w in (0, 2)}

    rows = [
        ("synthetic generation (1 core)", f"{synth_rate:.0f} pairs/s"),
        ("colour mask -> trainId (LUT)", f"{map_ms:.2f} ms/mask"),
        ("pairs loader, 0 workers", f"{rates[0]:.0f} images/s"),
        ("pairs loader, 2 workers", f"{rates[2]:.0f} images/s"),
        *((f"train step {name} (batch {args.train_batch}, 2 threads)", f"{rate:.2f} images/s")
          for name, rate in train_rates.items()),
        (f"loader (0 workers) / {fastest} train step", f"{rates[0] / train_rates[fastest]:.0f}x"),
    ]
    cpu = platform.processor() or platform.machine()
    print(f"data_speed at {args.size}x{args.size}, batch {args.batch}, {cpu}, torch {torch.__version__}")
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>14}")
    print(json.dumps({
        "synth_pairs_per_s": round(synth_rate, 1),
        "map_ms_per_mask": round(map_ms, 3),
        "loader_images_per_s_0_workers": round(rates[0], 1),
        "loader_images_per_s_2_workers": round(rates[2], 1),
        **{f"train_step_images_per_s_{name}": round(rate, 2) for name, rate in train_rates.items()},
        "loader_over_fastest_train_step": round(rates[0] / train_rates[fastest], 1),
    }))


if __name__ == "__main__":
    main()
