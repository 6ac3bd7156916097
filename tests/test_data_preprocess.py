"""Pre-processing: canonical orientation, window, skull strip, padding, resize and the inverse."""

from __future__ import annotations

import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from conftest import head_ct
from ichprog.data import PreprocessConfig, preprocess_volume, strip_skull
from ichprog.data.preprocess import pad_depth, resize_volume, to_original_space, window_hu


def _random_affine(rng: np.random.Generator) -> np.ndarray:
    """An affine with permuted, flipped, scaled axes and a small rotation (oblique scanner)."""
    perm = rng.permutation(3)
    flips = rng.choice([-1.0, 1.0], 3)
    zooms = rng.uniform(0.4, 5.0, 3)
    base = np.eye(3)[:, perm] * flips * zooms
    t = rng.uniform(-0.2, 0.2)
    rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    aff = np.eye(4)
    aff[:3, :3] = rot @ base
    aff[:3, 3] = rng.normal(0, 50, 3)
    return aff


def test_default_is_the_papers_configuration() -> None:
    cfg = PreprocessConfig()
    assert cfg.shape == (40, 301, 301)
    assert cfg.window_range == (15.0, 100.0)  # (HU - 15) / 85
    assert cfg.interpolation == "area" and cfg.window == "clip"
    assert cfg.skull_strip and cfg.reorient and cfg.pad_depth


def test_orientation_matches_nibabel_closest_canonical() -> None:
    rng = np.random.default_rng(0)
    for _ in range(12):
        aff = _random_affine(rng)
        data = rng.uniform(-400, 400, size=(5, 6, 7)).astype(np.float32)
        canonical = nib.as_closest_canonical(nib.Nifti1Image(data, aff))
        xyz = np.asarray(canonical.dataobj)
        cfg = PreprocessConfig(shape=xyz.shape[::-1], skull_strip=False, pad_depth=False,
                               window_level=0.0, window_width=1000.0)
        expected = window_hu(xyz.transpose(2, 1, 0), 0.0, 1000.0)
        np.testing.assert_allclose(preprocess_volume(data, aff, cfg), expected, atol=1e-6)


def test_two_scanners_same_head_same_output() -> None:
    """The same head stored RAS and LPS with a different axis order gives the same input."""
    head = head_ct((24, 20, 6)).astype(np.float32)
    ras = np.diag([0.5, 0.5, 4.0, 1.0])
    # voxel axes (z, y, x) with x and y flipped: an LPS-like file
    lps_data = np.flip(head, axis=(0, 1)).transpose(2, 1, 0).copy()
    lps = np.zeros((4, 4))
    lps[:3, 0] = [0, 0, 4.0]
    lps[:3, 1] = [0, -0.5, 0]
    lps[:3, 2] = [-0.5, 0, 0]
    lps[3, 3] = 1.0
    cfg = PreprocessConfig(shape=(8, 16, 16))
    np.testing.assert_array_equal(preprocess_volume(head, ras, cfg),
                                  preprocess_volume(lps_data, lps, cfg))


def test_window_clip_and_bandpass_by_hand() -> None:
    hu = np.array([-1000.0, 0.0, 15.0, 36.25, 57.5, 100.0, 101.0, 900.0])
    clip = window_hu(hu, 57.5, 85.0, "clip")
    np.testing.assert_allclose(clip, [0, 0, 0, 0.25, 0.5, 1.0, 1.0, 1.0], atol=1e-7)
    band = window_hu(hu, 57.5, 85.0, "bandpass")
    # the authors' recipe: (HU - 15) / 85, then only the values strictly inside (0, 1) kept
    ref = (hu - 15.0) / 85.0
    ref[(ref <= 0) | (ref >= 1)] = 0.0
    assert band[hu == 100.0] == 0.0  # the window's upper edge is zeroed too
    np.testing.assert_allclose(band, ref, atol=1e-7)
    assert band.dtype == np.float32
    with pytest.raises(ValueError, match="width"):
        window_hu(hu, 40, 0)
    with pytest.raises(ValueError, match="clip"):
        window_hu(hu, 40, 80, "smooth")  # type: ignore[arg-type]


def test_symmetric_depth_padding() -> None:
    vol = np.ones((3, 2, 2))
    out = pad_depth(vol, 8)
    assert out.shape == (8, 2, 2)
    np.testing.assert_array_equal(out[:, 0, 0], [0, 0, 1, 1, 1, 0, 0, 0])  # odd slice at the end
    assert pad_depth(np.ones((9, 2, 2)), 8).shape == (9, 2, 2)


def test_area_resize_is_block_average() -> None:
    rng = np.random.default_rng(1)
    vol = rng.normal(size=(8, 12, 12)).astype(np.float32)
    out = resize_volume(vol, (4, 4, 6), "area")
    ref = vol.reshape(4, 2, 4, 3, 6, 2).mean(axis=(1, 3, 5))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert resize_volume(vol, (8, 12, 12)).shape == (8, 12, 12)


def test_full_pipeline_pads_then_resizes() -> None:
    """Depth 4 padded to the target 6 (1 + 1 slices of 0), then in-plane area resize by 2."""
    rng = np.random.default_rng(2)
    hu = rng.uniform(15, 100, size=(8, 8, 4))  # (x, y, z), inside the window
    cfg = PreprocessConfig(shape=(6, 4, 4), skull_strip=False)
    out = preprocess_volume(hu, np.eye(4), cfg)
    dhw = ((hu - 15) / 85).transpose(2, 1, 0)
    padded = np.concatenate([np.zeros((1, 8, 8)), dhw, np.zeros((1, 8, 8))])
    ref = padded.reshape(6, 4, 2, 4, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(out, ref, atol=1e-6)
    assert out.dtype == np.float32 and 0.0 <= out.min() and out.max() <= 1.0


def test_inverse_restores_geometry_exactly_without_resize() -> None:
    rng = np.random.default_rng(3)
    for _ in range(6):
        aff = _random_affine(rng)
        data = rng.uniform(20, 90, size=(6, 5, 4)).astype(np.float32)
        canonical_shape = nib.as_closest_canonical(nib.Nifti1Image(data, aff)).shape
        d, h, w = canonical_shape[2], canonical_shape[1], canonical_shape[0]
        cfg = PreprocessConfig(shape=(d + 4, h, w), skull_strip=False, window_level=50.0,
                               window_width=100.0)
        net = preprocess_volume(data, aff, cfg)
        back = to_original_space(net, data.shape, aff, cfg)
        assert back.shape == data.shape
        np.testing.assert_allclose(back * 100.0, data, atol=1e-3)


def test_inverse_after_resize_lands_on_the_original_grid() -> None:
    """A blob in the scan's voxel grid comes back at the same place after a 2x down/up trip."""
    data = np.zeros((24, 20, 8), np.float32)
    data[14:20, 4:10, 2:6] = 1.0
    aff = np.diag([-0.5, 0.5, 4.0, 1.0])
    cfg = PreprocessConfig(shape=(8, 10, 12), skull_strip=False, window_level=0.5,
                           window_width=1.0)
    back = to_original_space(preprocess_volume(data, aff, cfg), data.shape, aff, cfg)
    assert back.shape == data.shape
    centre = np.array(np.nonzero(back > 0.5)).mean(axis=1)
    np.testing.assert_allclose(centre, [16.5, 6.5, 3.5], atol=0.6)
    with pytest.raises(ValueError, match="config's shape"):
        to_original_space(np.zeros((2, 2, 2)), data.shape, aff, cfg)


def test_skull_strip_keeps_brain_only() -> None:
    head = head_ct((48, 48, 6)).transpose(2, 1, 0).astype(np.float32)
    out, mask = strip_skull(head, return_mask=True)
    # reference brain: the disc inside the skull ring (values below 200 HU, inner region)
    yy, xx = np.meshgrid(np.arange(48), np.arange(48), indexing="ij")
    r = np.hypot((xx - 23.5) / 24, (yy - 23.5) / 24)
    brain = np.broadcast_to(r < 0.78, head.shape)
    assert (mask == brain).mean() > 0.995
    assert not mask[:, r >= 0.88].any()  # scalp and skull removed
    assert np.all(out[~mask] == -1024.0) and np.array_equal(out[mask], head[mask])
    assert mask[head == 70.0].all()  # the hematoma stays


def test_skull_strip_removes_scalp_joined_through_the_skull_base() -> None:
    """In the two lowest slices the skull is open and soft tissue joins scalp and brain (like the
    foramen magnum and the neck); above, the scalp must still be removed."""
    head = head_ct((64, 64, 8)).transpose(2, 1, 0).astype(np.float32)
    yy, xx = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    r = np.hypot((xx - 31.5) / 32, (yy - 31.5) / 32)
    scalp = (r >= 0.88) & (r < 1.0)  # a scalp 4 voxels thick
    head[:, scalp] = 40.0
    head[:2][:, (r >= 0.78) & (r < 0.88)] = 40.0  # no bone: soft tissue from brain to scalp
    mask = strip_skull(head, return_mask=True)[1]
    assert not mask[2:, scalp].any()
    assert mask[2:, r < 0.7].all()
    # without the closed-ring test (no voxel counts as bone) the scalp leaks in
    leaky = strip_skull(head, return_mask=True, bone_hu=1e9)[1]
    assert leaky[2:, scalp].any()


def test_skull_strip_errors_and_already_stripped_scans() -> None:
    with pytest.raises(ValueError, match="no voxel within"):
        strip_skull(np.full((3, 8, 8), 2000.0))
    with pytest.raises(ValueError, match="3D"):
        strip_skull(np.zeros((8, 8)))
    stripped = head_ct((32, 32, 6)).astype(np.float32)
    stripped[stripped > 200] = 0.0
    stripped[stripped == 40] = 0.0
    stripped[stripped == -1000] = 0.0
    cfg = PreprocessConfig(shape=(6, 32, 32), pad_depth=False)
    on = preprocess_volume(stripped, np.eye(4), cfg)
    off = preprocess_volume(stripped, np.eye(4), cfg.replace(skull_strip=False))
    np.testing.assert_array_equal(on, off)  # stripping a stripped scan changes nothing


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="3D"):
        preprocess_volume(np.zeros((4, 4, 4, 2)), np.eye(4))
    bad = np.zeros((4, 4, 4))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        preprocess_volume(bad, np.eye(4))
    with pytest.raises(ValueError, match="degenerate"):
        preprocess_volume(np.zeros((4, 4, 4)), np.diag([1.0, 0.0, 1.0, 1.0]))


@pytest.mark.parametrize(
    "kwargs",
    [{"shape": (0, 4, 4)}, {"shape": (4, 4)}, {"window_width": 0}, {"window": "soft"},
     {"interpolation": "cubic"}, {"strip_range": (100, 0)}, {"strip_iterations": -1},
     {"window_level": float("nan")}],
)
def test_config_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="PreprocessConfig|shape"):
        PreprocessConfig(**kwargs)


def test_config_key_is_stable_across_processes() -> None:
    cfg = PreprocessConfig(shape=(8, 16, 16), window="bandpass")
    code = ("from ichprog.data import PreprocessConfig;"
            "print(PreprocessConfig(shape=(8, 16, 16), window='bandpass').key())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={"PYTHONHASHSEED": "123", "PATH": ""}).stdout.strip()
    assert other == cfg.key()
    assert cfg.key() != cfg.replace(window="clip").key()
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown setting"):
        PreprocessConfig.from_dict({"spacing": 1})
