"""Ray's cost and gain for the experiments: the per-task overhead of :class:`RayExecutor`, and the
wall time of a cross-validation on a local 2-worker Ray against the serial loop, in one run.

1. Start a local Ray (``ray.init(num_cpus=--workers)``) and time it.
2. Overhead: ``--tasks`` empty jobs through ``RayExecutor.map`` (after a warm-up that starts the
   workers), against the same jobs through ``SerialExecutor.map``: milliseconds per task.
3. Wall time: the same cross-validation (a tiny DenseNet on a phantom cohort, ``--folds`` folds
   of ``--epochs`` epochs, one PyTorch thread per fold) serially and with one Ray task per fold,
   each in a fresh output folder; the predictions are compared, and the ratio serial / Ray is the
   speed-up, with fresh Ray workers (which import PyTorch and ichprog first) and with warm ones
   (a second Ray run). On a machine with fewer free cores than ``--workers`` (or shared with other jobs)
   the ratio falls towards 1: read it with the machine's load in mind.

Not run in CI (``make bench`` runs every benchmark).

Examples
--------
    python benchmarks/bench_ray.py
    python benchmarks/bench_ray.py --workers 4 --folds 4 --epochs 3 --patients 48
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def _noop(x: int) -> int:
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray (default 2)")
    ap.add_argument("--tasks", type=int, default=200, help="empty tasks timed (default 200)")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--patients", type=int, default=24)
    ap.add_argument("--shape", type=int, nargs=3, default=(32, 48, 48), metavar=("D", "H", "W"))
    args = ap.parse_args()

    import numpy as np
    import ray
    import torch

    from ichprog.data import PreprocessConfig, make_phantom_cohort
    from ichprog.experiment import RayExecutor, SerialExecutor, cross_validate
    from ichprog.training import TrainConfig

    load = f", load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs{load}; "
          f"torch {torch.__version__}, ray {ray.__version__}")
    t0 = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    start = time.perf_counter() - t0
    print(f"ray.init (local, {args.workers} CPUs): {start:.1f} s")
    try:
        ex = RayExecutor(num_cpus=1)
        ex.map(_noop, list(range(2 * args.workers)))  # start the workers
        t0 = time.perf_counter()
        ex.map(_noop, list(range(args.tasks)))
        per_task = (time.perf_counter() - t0) / args.tasks
        t0 = time.perf_counter()
        SerialExecutor().map(_noop, list(range(args.tasks)))
        serial_task = (time.perf_counter() - t0) / args.tasks
        print(f"per-task overhead: Ray {1e3 * per_task:.2f} ms, serial {1e3 * serial_task:.4f} ms "
              f"({args.tasks} empty tasks, {args.workers} workers)")

        with tempfile.TemporaryDirectory() as tmp:
            cohort = make_phantom_cohort(args.patients, seed=0, out_dir=Path(tmp) / "phantom",
                                         shape=(16, 64, 64), progress=False)
            kwargs = {"trunk": "densenet_tiny", "folds": args.folds, "seed": 0,
                      "val_fraction": 0.25, "progress": False,
                      "preprocess": PreprocessConfig(shape=tuple(args.shape), skull_strip=False),
                      "config": TrainConfig(max_epochs=args.epochs, batch_size=4,
                                            progress=False),
                      "model_kwargs": {"trunk_kwargs": {"block_config": (1, 1, 1, 1)}},
                      "cache_dir": Path(tmp) / "cache"}
            # fill the volume cache once, so that neither timed run pre-processes the scans
            cross_validate(cohort, only_folds=[0], out_dir=None,
                           **{**kwargs, "config": TrainConfig(max_epochs=1, batch_size=4,
                                                              progress=False)})
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            t0 = time.perf_counter()
            serial = cross_validate(cohort, out_dir=Path(tmp) / "serial", **kwargs)
            t_serial = time.perf_counter() - t0
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            distributed = cross_validate(cohort, out_dir=Path(tmp) / "ray", executor=ex,
                                         **kwargs)
            t_cold = time.perf_counter() - t0
            # the same again in a new folder: the workers have imported torch and ichprog
            t0 = time.perf_counter()
            cross_validate(cohort, out_dir=Path(tmp) / "ray-warm", executor=ex, **kwargs)
            t_ray = time.perf_counter() - t0
        probs = [c for c in serial.predictions.columns if "_prob" in c]
        diff = float(np.abs(serial.predictions[probs].to_numpy()
                            - distributed.predictions[probs].to_numpy()).max())
        print(f"cross-validation, {args.folds} folds x {args.epochs} epochs, "
              f"{args.patients} patients at {tuple(args.shape)}:")
        print(f"  serial {t_serial:.1f} s; Ray ({args.workers} workers) {t_cold:.1f} s with "
              f"fresh workers (they import torch and ichprog first), {t_ray:.1f} s warm")
        print(f"  speed-up serial / Ray: {t_serial / t_cold:.2f}x cold, {t_serial / t_ray:.2f}x "
              f"warm (ray.init's {start:.1f} s not included)")
        print(f"  largest probability difference Ray vs serial: {diff:.3g}")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
