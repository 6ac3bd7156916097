"""CTDataset: the item contract, cache and preload, and the paper's random augmentations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ichprog.data import (
    Augment,
    CTDataset,
    PreprocessConfig,
    VolumeCache,
    load_cohort,
    oversample,
)
from ichprog.tasks import MT_ORD_GCS_BIN_AGE

CFG = PreprocessConfig(shape=(6, 16, 16))


@pytest.fixture
def cohort(cohort_dir: Path):
    return load_cohort(cohort_dir / "clinical.csv")


def _targets(cohort, ids):
    classes = cohort.targets(MT_ORD_GCS_BIN_AGE, ids=ids)
    return {t.name: t.loss_targets(classes[t.name]) for t in MT_ORD_GCS_BIN_AGE}


def test_item_contract(cohort, tmp_path: Path) -> None:
    ids = cohort.ids[3:9]
    ds = CTDataset(cohort, ids, CFG, targets=_targets(cohort, ids), cache_dir=tmp_path / "c")
    assert len(ds) == 6
    item = ds[2]
    assert set(item) == {"image", "id", "index", "targets"}
    assert item["id"] == ids[2] and item["index"] == 2
    assert item["image"].dtype == torch.float32 and tuple(item["image"].shape) == (1, *CFG.shape)
    assert type(item["image"]) is torch.Tensor
    gcs = int(cohort.table.loc[ids[2], "GCS"])
    expected = [0.0, 0.0] if gcs >= 13 else [1.0, 0.0] if gcs >= 9 else [1.0, 1.0]
    assert item["targets"]["gcs"].tolist() == expected
    assert item["targets"]["prognosis"].tolist() == [float(cohort.table.loc[ids[2], "Label (poor_prognosis)"])]
    assert item["targets"]["age"].dtype == torch.float32
    assert "targets" not in CTDataset(cohort, ids, CFG, cache_dir=tmp_path / "c")[0]
    ds[-1]  # negative indices work like a list
    with pytest.raises(IndexError):
        ds[6]


def test_images_come_from_the_cache(cohort, tmp_path: Path) -> None:
    ds = CTDataset(cohort, cohort.ids, CFG, cache_dir=tmp_path / "c")
    cache = VolumeCache(tmp_path / "c", CFG)
    for i in (0, 5):
        np.testing.assert_array_equal(ds[i]["image"][0].numpy(),
                                      cache.get(cohort.image_path(cohort.ids[i])))
    assert cache.misses == 0  # the dataset filled it
    uncached = CTDataset(cohort, cohort.ids[:2], CFG, cache_dir=False)
    np.testing.assert_array_equal(uncached[1]["image"].numpy(), ds[1]["image"].numpy())
    pre = CTDataset(cohort, cohort.ids[:3], CFG, cache_dir=tmp_path / "c", preload=True)
    assert pre._memory is not None and len(pre._memory) == 3
    np.testing.assert_array_equal(pre[2]["image"].numpy(), ds[2]["image"].numpy())


def test_oversampled_ids_and_dataloader(cohort, tmp_path: Path) -> None:
    ids = oversample(cohort.ids[:5], cohort.labels[:5], seed=0)
    assert len(ids) == 6  # 3 good / 2 poor -> one extra draw
    ds = CTDataset(cohort, ids, CFG, targets=_targets(cohort, ids), cache_dir=tmp_path / "c")
    batch = next(iter(DataLoader(ds, batch_size=6)))
    assert batch["image"].shape == (6, 1, *CFG.shape)
    assert batch["targets"]["gcs"].shape == (6, 2)
    assert batch["id"] == ids
    np.testing.assert_array_equal(batch["image"][5].numpy(),
                                  batch["image"][ids.index(ids[5])].numpy())


def test_augmentation_reproducible_and_new_each_epoch(cohort, tmp_path: Path) -> None:
    ids = cohort.ids[:6]
    a = CTDataset(cohort, ids, CFG, augment=True, cache_dir=tmp_path / "c", seed=0)
    b = CTDataset(cohort, ids, CFG, augment=True, cache_dir=tmp_path / "c", seed=0)
    c = CTDataset(cohort, ids, CFG, augment=True, cache_dir=tmp_path / "c", seed=1)
    first = [a[i]["image"] for i in range(6)]
    assert all(torch.equal(x, b[i]["image"]) for i, x in enumerate(first))
    assert all(torch.equal(x, a[i]["image"]) for i, x in enumerate(first))  # same epoch again
    assert not all(torch.equal(x, c[i]["image"]) for i, x in enumerate(first))
    a.set_epoch(1)
    assert not all(torch.equal(x, a[i]["image"]) for i, x in enumerate(first))
    a.set_epoch(0)
    assert all(torch.equal(x, a[i]["image"]) for i, x in enumerate(first))
    plain = CTDataset(cohort, ids, CFG, cache_dir=tmp_path / "c")
    plain.set_epoch(5)
    assert torch.equal(plain[0]["image"], CTDataset(cohort, ids, CFG, cache_dir=tmp_path / "c")[0]["image"])
    with pytest.raises(ValueError, match="epoch"):
        a.set_epoch(-1)


def _fraction_changed(aug: Augment, volume: np.ndarray, n: int = 100) -> tuple[float, list]:
    x = torch.from_numpy(volume)[None]
    outs = [aug(x.clone(), seed=s) for s in range(n)]
    changed = [not torch.allclose(o, x, atol=1e-6) for o in outs]
    return float(np.mean(changed)), outs


def test_each_transform_fires_with_probability_one_half() -> None:
    """100 draws: the share of changed volumes is Binomial(100, 0.5)/100 (SD 0.05); the bounds
    below are 3 SD wide."""
    blob = np.zeros((6, 16, 16), np.float32)
    blob[2:4, 4:9, 6:12] = 1.0
    noise_only = Augment(rotate_deg=0.0, zoom=0.0)
    frac, outs = _fraction_changed(noise_only, np.zeros((6, 16, 16), np.float32))
    assert 0.35 <= frac <= 0.65
    noisy = torch.cat([o.flatten() for o in outs if o.abs().max() > 0])
    assert abs(float(noisy.std()) - 0.01) < 0.0005 and abs(float(noisy.mean())) < 0.0005
    zoom_only = Augment(rotate_deg=0.0, noise_std=0.0)
    frac, outs = _fraction_changed(zoom_only, blob)
    assert 0.35 <= frac <= 0.65  # a real random zoom, not one applied to every volume
    rotate_only = Augment(zoom=0.0, noise_std=0.0)
    frac, outs = _fraction_changed(rotate_only, blob)
    assert 0.35 <= frac <= 0.65
    # axial rotation: slices without signal stay empty, the depth profile is unchanged
    for o in outs:
        assert float(o[0, :2].abs().max()) == 0.0 and float(o[0, 4:].abs().max()) == 0.0


def test_rotation_and_zoom_stay_within_bounds() -> None:
    """Rotation <= 5 degrees and an isotropic zoom <= 10 %: a blob's volume changes by a factor
    within [0.9^3, 1.1^3] (up to interpolation at the blob's edges) and stays centred."""
    blob = np.zeros((16, 32, 32), np.float32)
    blob[4:12, 8:24, 12:20] = 1.0
    volume = float(blob.sum())
    ratios = []
    for s in range(20):
        out = Augment(noise_std=0.0, prob=1.0)(torch.from_numpy(blob)[None], seed=s)[0].numpy()
        ratios.append(float(out.sum()) / volume)
        centre = np.array(np.nonzero(out > 0.5)).mean(axis=1)
        np.testing.assert_allclose(centre, [7.5, 15.5, 15.5], atol=0.75)
    assert 0.9**3 - 0.1 <= min(ratios) and max(ratios) <= 1.1**3 + 0.1
    assert max(ratios) - min(ratios) > 0.2  # the zoom factor really varies


def test_augment_validation_and_bad_targets(cohort, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prob"):
        Augment(prob=1.5)
    with pytest.raises(ValueError, match="zoom"):
        Augment(zoom=1.0)
    with pytest.raises(ValueError, match=r"targets\['gcs'\] has shape \(3, 2\), expected \(4"):
        CTDataset(cohort, cohort.ids[:4], CFG, targets={"gcs": np.zeros((3, 2))},
                  cache_dir=tmp_path)
    with pytest.raises(ValueError, match="not finite for patient '001'"):
        CTDataset(cohort, cohort.ids[:4], CFG, targets={"age": [0.0, np.nan, 0.0, 1.0]},
                  cache_dir=tmp_path)
    with pytest.raises(KeyError, match="not in the cohort"):
        CTDataset(cohort, ["nobody"], CFG, cache_dir=tmp_path)
    with pytest.raises(TypeError, match="augment"):
        CTDataset(cohort, cohort.ids[:1], CFG, augment="yes", cache_dir=tmp_path)  # type: ignore[arg-type]


def test_same_draws_with_and_without_workers(cohort, tmp_path: Path) -> None:
    ids = cohort.ids[:4]
    ds = CTDataset(cohort, ids, CFG, augment=True, cache_dir=tmp_path / "c", seed=5)
    ds.set_epoch(2)
    serial = next(iter(DataLoader(ds, batch_size=4, num_workers=0)))["image"]
    parallel = next(iter(DataLoader(ds, batch_size=2, num_workers=2,
                                    multiprocessing_context="fork")))["image"]
    assert torch.equal(serial[:2], parallel)
