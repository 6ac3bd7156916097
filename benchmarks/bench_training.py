"""Training and inference speed: ichprog's pipeline against the authors' recipe.

Reference (the authors' recipe): float32 eager training, every NIfTI file read, windowed and
resized again for every step (``CTDataset(cache_dir=False)``).

ichprog: volumes pre-processed once into the cache (``VolumeCache``), bfloat16 autocast (on a
CPU) with the float32 fallback of ``Bf16SafeConv3d``, optionally the ``channels_last_3d`` memory
format (``--channels-last``) and ``torch.compile`` (``--compile``).

Both run in the same process on the same synthetic scans (512 x 512 x 32 int16 NIfTI files,
the public cohort's typical size) at the paper's network input (1, 40, 301, 301) by default.
Each measurement does ``--warmup`` untimed steps, then ``--steps`` timed steps of one batch of
``--samples`` scans: forward, backward and the AdamW step for training; a forward pass without
gradients for inference. The script prints seconds per sample and the speed-up ratios (goal on
a CPU: training at least 2x, inference at least 1.5x).

Examples
--------
    python benchmarks/bench_training.py
    python benchmarks/bench_training.py --shape 40 128 128 --samples 2 --steps 2
    python benchmarks/bench_training.py --trunk densenet_tiny --shape 32 64 64
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _write_scans(folder: Path, n: int, size: tuple[int, int, int], seed: int) -> list[Path]:
    from ichprog.data import save_volume

    rng = np.random.default_rng(seed)
    x, y, z = size
    paths = []
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, x), np.linspace(-1, 1, y), indexing="ij"))
    head = (grid**2).sum(axis=0) < 0.8
    for i in range(n):
        vol = np.full(size, -1000, dtype=np.int16)
        brain = rng.normal(35, 6, size=size).astype(np.int16)
        vol[head] = brain[head]
        ring = ((grid**2).sum(axis=0) >= 0.8) & ((grid**2).sum(axis=0) < 0.9)
        vol[ring] = 900
        affine = np.diag([0.45, 0.45, 4.5, 1.0])
        p = folder / f"scan{i}.nii.gz"
        save_volume(vol, affine, p)
        paths.append(p)
    return paths


def _batch(ds, n: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    items = [ds[i] for i in range(n)]
    x = torch.stack([it["image"] for it in items])
    targets = {k: torch.stack([it["targets"][k] for it in items]) for k in items[0]["targets"]}
    return x, targets


def _train_time(model, ds, samples: int, steps: int, warmup: int, amp: torch.dtype | None,
                channels_last: bool, compiled: bool) -> float:
    from ichprog.models import multitask_loss

    model.train()
    fwd = torch.compile(model) if compiled else model
    if channels_last:
        model.to(memory_format=torch.channels_last_3d)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4, amsgrad=True)
    times = []
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        x, targets = _batch(ds, samples)  # data loading is part of the step
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            out = fwd(x)
        loss, _ = multitask_loss(out, targets, model.tasks)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) / samples


@torch.no_grad()
def _infer_time(model, ds, samples: int, steps: int, warmup: int, amp: torch.dtype | None,
                channels_last: bool) -> float:
    model.eval()
    times = []
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        x, _ = _batch(ds, samples)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            model(x)
        if step >= warmup:
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) / samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(40, 301, 301), metavar=("D", "H", "W"))
    ap.add_argument("--scan", type=int, nargs=3, default=(512, 512, 32), metavar=("X", "Y", "Z"),
                    help="size of the synthetic NIfTI scans")
    ap.add_argument("--trunk", default="densenet121")
    ap.add_argument("--samples", type=int, default=2, help="scans per batch")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per measurement")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from ichprog.data import Cohort, CTDataset, PreprocessConfig
    from ichprog.models import MultiTaskNet
    from ichprog.tasks import MT_ORD_GCS_BIN_AGE

    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()}")
    print(f"input (1, {', '.join(map(str, args.shape))}), trunk {args.trunk}, batch "
          f"{args.samples}, {args.warmup} warm-up + {args.steps} timed steps")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = _write_scans(folder, args.samples, tuple(args.scan), seed=0)
        import pandas as pd

        table = pd.DataFrame({"PatientID": [str(i) for i in range(args.samples)],
                              "Label (poor_prognosis)": [i % 2 for i in range(args.samples)],
                              "GCS": [6, 14] * (args.samples // 2) + [9] * (args.samples % 2),
                              "Age": [85, 60] * (args.samples // 2) + [70] * (args.samples % 2)})
        cohort = Cohort(table, {str(i): p for i, p in enumerate(paths)})
        classes = cohort.targets(MT_ORD_GCS_BIN_AGE)
        targets = {t.name: t.loss_targets(classes[t.name]) for t in MT_ORD_GCS_BIN_AGE}
        ids = cohort.ids
        ref_pre = PreprocessConfig(shape=tuple(args.shape), window="bandpass", skull_strip=False)
        our_pre = PreprocessConfig(shape=tuple(args.shape), skull_strip=False)
        ref_ds = CTDataset(cohort, ids, ref_pre, targets=targets, cache_dir=False)
        our_ds = CTDataset(cohort, ids, our_pre, targets=targets, cache_dir=folder / "cache")
        t0 = time.perf_counter()
        our_ds.cache.warm(our_ds.paths, progress=False)  # type: ignore[union-attr]
        print(f"one-off cache fill: {(time.perf_counter() - t0) / args.samples:.2f} s per scan")

        def fresh() -> MultiTaskNet:
            torch.manual_seed(0)
            return MultiTaskNet(MT_ORD_GCS_BIN_AGE, trunk=args.trunk)

        kw = {"samples": args.samples, "steps": args.steps, "warmup": args.warmup}
        ref_train = _train_time(fresh(), ref_ds, amp=None, channels_last=False, compiled=False,
                                **kw)
        our_train = _train_time(fresh(), our_ds, amp=torch.bfloat16,
                                channels_last=args.channels_last, compiled=args.compile, **kw)
        bf16_only = _train_time(fresh(), ref_ds, amp=torch.bfloat16, channels_last=False,
                                compiled=False, **kw)
        ref_inf = _infer_time(fresh(), ref_ds, amp=None, channels_last=False, **kw)
        our_inf = _infer_time(fresh(), our_ds, amp=torch.bfloat16,
                              channels_last=args.channels_last, **kw)

    print("\nseconds per sample             reference   ichprog   ratio")
    print(f"training step (incl. data)      {ref_train:9.2f} {our_train:9.2f} "
          f"{ref_train / our_train:7.2f}x  (goal >= 2x)")
    print(f"  bf16 autocast alone (no cache) {bf16_only:8.2f}           "
          f"{ref_train / bf16_only:7.2f}x")
    print(f"inference (incl. data)          {ref_inf:9.2f} {our_inf:9.2f} "
          f"{ref_inf / our_inf:7.2f}x  (goal >= 1.5x)")
    print(f"load average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
