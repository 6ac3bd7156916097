"""Training and inference speed: ichprog's pipeline against the authors' recipe.

Reference (the authors' recipe): float32 eager training, every NIfTI file read, windowed and
resized again for every step (``CTDataset(cache_dir=False)``).

ichprog (the defaults of ``TrainConfig`` on a CPU): volumes pre-processed once into the cache
(``VolumeCache``), bfloat16 autocast with the float32 fallback of ``Bf16SafeConv3d`` and the
``channels_last_3d`` memory format; ``--compile`` adds ``torch.compile``. A row without
``channels_last_3d`` and one with bfloat16 alone show where the gain comes from.

Both run in the same process on the same synthetic scans (512 x 512 x 32 int16 NIfTI files,
the public cohort's typical size) at the paper's network input (1, 40, 301, 301) by default.
Each measurement does ``--warmup`` untimed steps, then ``--steps`` timed steps of one batch of
``--samples`` scans: forward, backward and the AdamW step for training; a forward pass without
gradients for inference. The script prints seconds per sample and the speed-up ratios (goal on
a CPU: training at least 2x, inference at least 1.5x), both as wall-clock time and as the
process's CPU time; on a machine shared with other jobs, run with ``--threads 1`` and read the
CPU time.

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
                channels_last: bool, compiled: bool) -> tuple[float, float]:
    from ichprog.models import multitask_loss

    model.train()
    fwd = torch.compile(model) if compiled else model
    if channels_last:
        model.to(memory_format=torch.channels_last_3d)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4, amsgrad=True)
    times = []
    for step in range(warmup + steps):
        t0 = (time.perf_counter(), time.process_time())
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
            times.append((time.perf_counter() - t0[0], time.process_time() - t0[1]))
    return _per_sample(times, samples)


@torch.no_grad()
def _infer_time(model, ds, samples: int, steps: int, warmup: int, amp: torch.dtype | None,
                channels_last: bool) -> tuple[float, float]:
    model.eval()
    if channels_last:
        model.to(memory_format=torch.channels_last_3d)
    times = []
    for step in range(warmup + steps):
        t0 = (time.perf_counter(), time.process_time())
        x, _ = _batch(ds, samples)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast("cpu", dtype=amp or torch.float32, enabled=amp is not None):
            model(x)
        if step >= warmup:
            times.append((time.perf_counter() - t0[0], time.process_time() - t0[1]))
    return _per_sample(times, samples)


def _per_sample(times: list[tuple[float, float]], samples: int) -> tuple[float, float]:
    """Median wall-clock and process CPU seconds per sample."""
    arr = np.asarray(times)
    return float(np.median(arr[:, 0])) / samples, float(np.median(arr[:, 1])) / samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", type=int, nargs=3, default=(40, 301, 301), metavar=("D", "H", "W"))
    ap.add_argument("--scan", type=int, nargs=3, default=(512, 512, 32), metavar=("X", "Y", "Z"),
                    help="size of the synthetic NIfTI scans")
    ap.add_argument("--trunk", default="densenet121")
    ap.add_argument("--samples", type=int, default=2, help="scans per batch")
    ap.add_argument("--steps", type=int, default=2, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per measurement")
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
        rows = {
            "training: reference (fp32, NIfTI every step)":
                _train_time(fresh(), ref_ds, amp=None, channels_last=False, compiled=False, **kw),
            "training: bf16 autocast alone (no cache)":
                _train_time(fresh(), ref_ds, amp=torch.bfloat16, channels_last=False,
                            compiled=False, **kw),
            "training: cache + bf16, contiguous":
                _train_time(fresh(), our_ds, amp=torch.bfloat16, channels_last=False,
                            compiled=args.compile, **kw),
            "training: ichprog (cache + bf16 + channels_last)":
                _train_time(fresh(), our_ds, amp=torch.bfloat16, channels_last=True,
                            compiled=args.compile, **kw),
            "inference: reference (fp32, NIfTI every scan)":
                _infer_time(fresh(), ref_ds, amp=None, channels_last=False, **kw),
            "inference: ichprog (cache + bf16 + channels_last)":
                _infer_time(fresh(), our_ds, amp=torch.bfloat16, channels_last=True, **kw),
        }

    print(f"\n{'seconds per sample':48s} {'wall':>8s} {'CPU':>8s}   speed-up (wall, CPU)")
    ref_t = rows["training: reference (fp32, NIfTI every step)"]
    ref_i = rows["inference: reference (fp32, NIfTI every scan)"]
    for name, (wall, cpu) in rows.items():
        ref = ref_t if name.startswith("training") else ref_i
        goal = "" if "reference" in name else (
            "  goal >= 2x" if name.startswith("training: ichprog (") else
            "  goal >= 1.5x" if name.startswith("inference: ichprog") else "")
        print(f"{name:48s} {wall:8.2f} {cpu:8.2f}   {ref[0] / wall:5.2f}x {ref[1] / cpu:5.2f}x"
              f"{goal}")
    print(f"load average at the end: {os.getloadavg()}")
    print("CPU time is the reliable figure on a shared machine when run with --threads 1 "
          "(with more threads, waiting OpenMP workers spin and count as CPU time).")


if __name__ == "__main__":
    main()
