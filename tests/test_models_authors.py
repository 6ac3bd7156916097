"""The authors' published checkpoints and input pipeline.

The reference model is an independent module written to the authors' naming (a MONAI
DenseNet121 as ``feature_extractor`` with ``class_layers`` = Identity, and their heads); the
reference pipeline is built from MONAI's own transforms in the authors' order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ichprog.data import AUTHORS_PREPROCESS, preprocess_volume
from ichprog.models import UnsafeCheckpointError, load_authors_checkpoint


def _head(k: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(1024, k))


class AuthorsLayout(nn.Module):
    """A model with the authors' module names (not ichprog code)."""

    def __init__(self, heads: dict[str, int], out_channels: int = 1) -> None:
        super().__init__()
        from monai.networks.nets import DenseNet121

        self.feature_extractor = DenseNet121(spatial_dims=3, in_channels=1,
                                             out_channels=out_channels, dropout_prob=0.2)
        self.feature_extractor.class_layers = nn.Identity()
        self.names = list(heads)
        for name, k in heads.items():
            self.add_module(name, _head(k))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f = self.feature_extractor(x)
        return tuple(getattr(self, n)(f) for n in self.names)


def _reference(heads: dict[str, int], seed: int, out_channels: int = 1) -> AuthorsLayout:
    torch.manual_seed(seed)
    ref = AuthorsLayout(heads, out_channels)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # trained-looking batch-norm statistics, so eval mode matters
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm3d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return ref.eval()


@pytest.mark.parametrize("preset, heads, out_channels", [
    ("mt_ord_gcs_bin_age", {"binary_head": 1, "ordinal_headGCS": 2, "ordinal_headAge": 1}, 1),
    ("mt_bin_gcs_bin_age", {"binary_head": 1, "ordinal_headGCS": 1, "ordinal_headAge": 1}, 1),
])
def test_checkpoint_gives_the_reference_outputs(tmp_path: Path, preset: str,
                                                heads: dict[str, int], out_channels: int) -> None:
    ref = _reference(heads, seed=1, out_channels=out_channels)
    path = tmp_path / "fold0.pth"
    torch.save(ref.state_dict(), path)
    net = load_authors_checkpoint(path, preset)
    assert not net.training and net.trunk_name == "densenet121"
    x = torch.rand(2, 1, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = ref(x)
        got = net(x)
    names = {"binary_head": "prognosis", "ordinal_headGCS": "gcs", "ordinal_headAge": "age"}
    for name, value in zip(heads, expected):
        torch.testing.assert_close(got[names[name]], value, rtol=0, atol=1e-5)
    assert float(expected[0].std()) > 0  # the two inputs give different outputs


def test_two_task_model_with_ordinal_head_and_wrapped_state(tmp_path: Path) -> None:
    from ichprog.tasks import GCS_BINARY, PROGNOSIS

    ref = _reference({"binary_head": 1, "ordinal_head": 1}, seed=2, out_channels=14)
    path = tmp_path / "wrapped.pt"
    state = {f"module.{k}": v for k, v in ref.state_dict().items()}  # DataParallel
    torch.save({"state_dict": state, "epoch": torch.tensor(12)}, path)
    net = load_authors_checkpoint(path, [PROGNOSIS, GCS_BINARY])
    x = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        progn, gcs = ref(x)
        out = net(x)
    torch.testing.assert_close(out["prognosis"], progn, rtol=0, atol=1e-5)
    torch.testing.assert_close(out["gcs"], gcs, rtol=0, atol=1e-5)


def test_mismatched_preset_is_named(tmp_path: Path) -> None:
    ref = _reference({"binary_head": 1, "ordinal_headGCS": 2, "ordinal_headAge": 1}, seed=3)
    path = tmp_path / "ord.pth"
    torch.save(ref.state_dict(), path)
    with pytest.raises(ValueError, match=r"ord\.pth: head ordinal_headGCS has 2 output\(s\).*"
                                         r"presets with these heads: \['mt_ord_gcs_bin_age'\]"):
        load_authors_checkpoint(path, "mt_bin_gcs_bin_age")
    with pytest.raises(ValueError, match=r"heads \['ordinal_headGCS', 'ordinal_headAge'\] are "
                                         r"not tasks"):
        load_authors_checkpoint(path, "baseline_densenet")
    state = ref.state_dict()
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"outside the authors' layout: \['extra\.weight'\]"):
        load_authors_checkpoint(tmp_path / "extra.pth", "mt_ord_gcs_bin_age")
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="no head of the authors' layout"):
        load_authors_checkpoint(tmp_path / "other.pth", "mt_ord_gcs_bin_age")
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch checkpoint"):
        load_authors_checkpoint(tmp_path / "text.pth", "mt_ord_gcs_bin_age")


class _Payload:
    """Unpickling this object runs code: it creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_pickle_bearing_file_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    path = tmp_path / "evil.pth"
    torch.save({"binary_head.3.weight": torch.zeros(1, 1024), "x": _Payload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"evil\.pth: refused.*nothing in the file "
                                                    r"was run"):
        load_authors_checkpoint(path, "mt_ord_gcs_bin_age")
    assert not marker.exists()
    # the file is live: a full pickle load would have run it
    torch.load(path, weights_only=False)
    assert marker.exists()


# -- the input pipeline --------------------------------------------------------------------------
def _monai_pipeline(xyz: np.ndarray) -> np.ndarray:
    """The authors' transforms (after their ITK reader), with MONAI's own classes."""
    from monai.transforms import (
        Compose,
        Flip,
        NormalizeIntensity,
        Resize,
        Rotate90,
        SpatialPad,
        ThresholdIntensity,
        Transpose,
    )

    pipeline = Compose([
        Rotate90(k=3),
        Flip(spatial_axis=1),
        NormalizeIntensity(subtrahend=15, divisor=85),
        ThresholdIntensity(threshold=0, above=True, cval=0.0),
        ThresholdIntensity(threshold=1, above=False, cval=0.0),
        SpatialPad(spatial_size=[-1, -1, 40], mode="constant", method="symmetric"),
        Resize(spatial_size=[301, 301, 40]),
        Transpose(indices=[0, 3, 1, 2]),
    ])
    out = pipeline(torch.as_tensor(xyz[None].astype(np.float32)))
    return np.asarray(out)[0]


@pytest.mark.parametrize("shape", [(40, 36, 27), (33, 33, 46)])
def test_authors_preprocess_matches_their_monai_pipeline(shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    hu = rng.integers(-100, 160, size=shape).astype(np.int16)
    hu[0, :3, 0] = [15, 100, 99]  # the band's edges
    affine = np.diag([-0.45, -0.45, 5.0, 1.0])  # ignored: their reader's voxel order is kept
    ours = preprocess_volume(hu, affine, AUTHORS_PREPROCESS)
    ref = _monai_pipeline(hu)
    assert ours.shape == ref.shape == (40, 301, 301)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-6)
    assert float(np.abs(ours - ref).max()) < 1e-6


def test_authors_preprocess_keeps_the_voxel_order() -> None:
    # the rotation by 270 degrees and the flip swap the first two axes, nothing else
    from monai.transforms import Flip, Rotate90

    a = torch.arange(3 * 4 * 5).reshape(1, 3, 4, 5)
    swapped = np.asarray(Flip(spatial_axis=1)(Rotate90(k=3)(a)))
    np.testing.assert_array_equal(swapped, np.asarray(a).transpose(0, 2, 1, 3))
    assert AUTHORS_PREPROCESS.reorient is False and AUTHORS_PREPROCESS.window == "bandpass"
    assert AUTHORS_PREPROCESS.shape == (40, 301, 301) and not AUTHORS_PREPROCESS.skull_strip


@pytest.mark.slow  # two DenseNet121 passes at the full 40 x 301 x 301 input (about 30 s)
def test_predict_command_with_an_authors_checkpoint_on_real_dicom(tmp_path: Path) -> None:
    """External validation in one command: the authors' checkpoint on a DICOM folder."""
    pytest.importorskip("pydicom")
    import pandas as pd
    from pydicom.data import get_testdata_file

    from ichprog.cli import main
    from ichprog.data import load_volume

    base = get_testdata_file("CT_small.dcm", download=False)
    folder = Path(base).parent / "dicomdirtests/98892001/CT5N" if base else None
    if folder is None or not folder.is_dir():
        pytest.skip("pydicom's CT5N series is not in the installed package")
    heads = {"binary_head": 1, "ordinal_headGCS": 2, "ordinal_headAge": 1}
    ref = _reference(heads, seed=4)
    ckpt = tmp_path / "DenseNet_fold0.pth"
    torch.save(ref.state_dict(), ckpt)
    out = tmp_path / "preds.csv"
    # CT5N is a 16 x 16 thumbnail (8 mm across): the size check is switched off explicitly
    assert main(["predict", "--model", str(ckpt), "--preset", "mt_ord_gcs_bin_age", str(folder),
                 "--out", str(out), "--no-progress", "-q", "--skip-check", "size"]) == 0
    preds = pd.read_csv(out)
    array, affine = load_volume(folder)
    x = torch.from_numpy(preprocess_volume(array, affine, AUTHORS_PREPROCESS))[None, None]
    with torch.no_grad():
        progn, gcs, age = (torch.sigmoid(v)[0].numpy() for v in ref(x))
    prob_cols = [c for c in preds.columns if c.startswith(("prognosis", "gcs", "age"))
                 and not c.endswith("_pred")]
    assert len(prob_cols) == 4
    got = preds.loc[0, prob_cols].to_numpy(float)
    np.testing.assert_allclose(got, np.r_[progn, gcs, age], atol=1e-5)
    # a folder model with --preset is a usage error
    assert main(["predict", "--model", str(tmp_path), "--preset", "mt_ord_gcs_bin_age",
                 str(folder), "-q"]) == 2
