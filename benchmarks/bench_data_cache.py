"""Per-sample data time: cached volumes against re-loading and re-resizing every NIfTI each epoch.

The authors' scripts decoded every ``.nii.gz`` and resized it again in every epoch. ichprog keeps
the deterministic part (decode, reorient, skull strip, window, pad, resize) in a
:class:`ichprog.data.VolumeCache` and reads a ``.npy`` per sample afterwards. This script writes a
handful of phantom-like head CTs at a realistic size (512 x 512 x 32 int16 Hounsfield units,
0.45 x 0.45 x 5 mm), pre-processes them to the paper's input (40 x 301 x 301), and times

* ``reload``: :func:`~ichprog.data.load_volume` + :func:`~ichprog.data.preprocess_volume` per
  sample (what an uncached epoch costs, ``CTDataset(..., cache_dir=False)``),
* ``cached``: ``CTDataset`` items served from a warm cache (a cached epoch),
* ``preload``: ``CTDataset(..., preload=True)`` items served from memory,

for two pipelines: ichprog's default (with skull stripping) and the authors' work per epoch (no
skull stripping: their scans were stripped beforehand). It prints seconds per sample and the
speed-up, and can write them as JSON.

Usage::

    python benchmarks/bench_data_cache.py [--files 6] [--epochs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ichprog.data import Cohort, CTDataset, PreprocessConfig, VolumeCache, save_volume
from ichprog.data.cache import load_preprocessed


def phantom_head(shape: tuple[int, int, int] = (512, 512, 32), seed: int = 0) -> np.ndarray:
    """An int16 head CT in Hounsfield units, voxel order (x, y, z): air, scalp, skull, brain
    with grey/white texture and noise, ventricles and a hematoma whose size depends on seed."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = shape
    x = (np.arange(nx) - nx / 2) / (nx * 0.36)
    y = (np.arange(ny) - ny / 2) / (ny * 0.44)
    r2d = np.hypot(x[:, None], y[None, :])
    vol = np.full(shape, -1000, dtype=np.int16)
    for k in range(nz):
        shrink = 1.0 - 0.5 * (abs(k - nz * 0.45) / nz) ** 2 * 4
        r = r2d / max(shrink, 0.3)
        sl = np.full((nx, ny), -1000.0)
        sl[r < 1.0] = 45.0
        sl[r < 0.95] = 900.0
        texture = 33.0 + 6.0 * np.sin(12 * x[:, None] + 3 * k) * np.cos(9 * y[None, :])
        sl[r < 0.88] = texture[r < 0.88]
        sl[(r < 0.15)] = 8.0
        vol[:, :, k] = np.round(sl + rng.normal(0, 4, (nx, ny))).astype(np.int16)
    cx, cy, cz = int(nx * 0.62), int(ny * 0.45), nz // 2
    rad = 20 + 4 * (seed % 5)
    xx, yy, zz = np.ogrid[:nx, :ny, :nz]
    bleed = ((xx - cx) ** 2 + (yy - cy) ** 2) / rad**2 + ((zz - cz) * 5.0) ** 2 / (rad * 0.45) ** 2 < 1
    vol[bleed] = 70
    return vol


def _time_epoch(ds: CTDataset, epochs: int) -> float:
    """Seconds per sample, averaged over ``epochs`` passes over the dataset."""
    start = time.perf_counter()
    for e in range(epochs):
        ds.set_epoch(e)
        for i in range(len(ds)):
            item = ds[i]
            assert item["image"].shape[1:] == ds.config.shape
    return (time.perf_counter() - start) / (epochs * len(ds))


def run(files: int, epochs: int, workdir: Path) -> dict:
    affine = np.diag([-0.45, -0.45, 5.0, 1.0])
    ids = [f"B{i:02d}" for i in range(files)]
    t0 = time.perf_counter()
    paths = {}
    for i, pid in enumerate(ids):
        paths[pid] = workdir / f"{pid}.nii.gz"
        save_volume(phantom_head(seed=i), affine, paths[pid])
    write_s = time.perf_counter() - t0
    table = pd.DataFrame({"PatientID": ids, "Label (poor_prognosis)": [i % 2 for i in range(files)],
                          "GCS": 10, "Age": 70})
    cohort = Cohort(table, paths)
    results: dict = {
        "files": files, "epochs": epochs, "input_shape_xyz": [512, 512, 32],
        "file_mb": round(float(np.mean([p.stat().st_size for p in paths.values()])) / 1e6, 2),
        "write_s": round(write_s, 2), "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(), "pipelines": {},
    }
    for name, cfg in (("ichprog default (skull strip)", PreprocessConfig()),
                      ("authors' per-epoch work (no strip)", PreprocessConfig(skull_strip=False))):
        reload_ds = CTDataset(cohort, ids, cfg, cache_dir=False)
        reload_s = _time_epoch(reload_ds, epochs)
        cache_root = workdir / "cache"
        t0 = time.perf_counter()
        VolumeCache(cache_root, cfg).warm(paths.values(), progress=False)
        warm_s = (time.perf_counter() - t0) / files
        cached_ds = CTDataset(cohort, ids, cfg, cache_dir=cache_root)
        cached_s = _time_epoch(cached_ds, epochs)
        pre_ds = CTDataset(cohort, ids, cfg, cache_dir=cache_root, preload=True)
        preload_s = _time_epoch(pre_ds, epochs)
        # the cached volume is the freshly computed one
        np.testing.assert_array_equal(cached_ds.volume(0), load_preprocessed(paths[ids[0]], cfg))
        results["pipelines"][name] = {
            "reload_s_per_sample": reload_s, "first_fill_s_per_sample": warm_s,
            "cached_s_per_sample": cached_s, "preload_s_per_sample": preload_s,
            "speedup_cached": reload_s / cached_s, "speedup_preload": reload_s / preload_s,
        }
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=6, help="number of NIfTI files (default 6)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed per recipe (default 2)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if os.environ.get("ICHPROG_EXAMPLE_SMALL") == "1":
        args.files, args.epochs = min(args.files, 3), 1
    with tempfile.TemporaryDirectory(prefix="ichprog-bench-") as tmp:
        res = run(args.files, args.epochs, Path(tmp))
    print(f"{res['files']} files of 512x512x32 int16 ({res['file_mb']} MB .nii.gz each) -> "
          f"(1, 40, 301, 301) float32; {res['epochs']} epoch(s) timed; "
          f"{res['torch_threads']} torch threads")
    print(f"{'pipeline':38s} {'reload s/sample':>16s} {'cached s/sample':>16s} "
          f"{'preload s/sample':>17s} {'cached speed-up':>16s}")
    for name, r in res["pipelines"].items():
        print(f"{name:38s} {r['reload_s_per_sample']:16.4f} {r['cached_s_per_sample']:16.4f} "
              f"{r['preload_s_per_sample']:17.5f} {r['speedup_cached']:15.1f}x")
    goal = min(r["speedup_cached"] for r in res["pipelines"].values())
    print(f"goal: cached epoch >= 10x faster than re-loading -> {'met' if goal >= 10 else 'NOT met'}"
          f" (smallest speed-up {goal:.1f}x)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
