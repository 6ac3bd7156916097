"""Trunks, heads and the weighted multi-task loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ichprog.models import MultiTaskNet, build_trunk, multitask_loss
from ichprog.tasks import (
    AGE_BINARY,
    GCS_BINARY,
    GCS_ORDINAL,
    MT_BIN_GCS_BIN_AGE,
    MT_ORD_GCS_BIN_AGE,
    PRESETS,
    PROGNOSIS,
    ablations,
)

# Outputs per task written out by hand from the paper: one logit for prognosis, binary GCS and
# binary age, two cumulative logits for the three-class ordinal GCS.
EXPECTED_OUTPUTS = {
    "baseline_perez": {"prognosis": 1},
    "baseline_densenet": {"prognosis": 1},
    "baseline_gcs_bin": {"gcs": 1},
    "baseline_gcs_ord": {"gcs": 2},
    "baseline_age": {"age": 1},
    "mt_bin_gcs_bin_age": {"prognosis": 1, "gcs": 1, "age": 1},
    "mt_ord_gcs_bin_age": {"prognosis": 1, "gcs": 2, "age": 1},
}


def test_expected_outputs_cover_every_preset():
    assert set(EXPECTED_OUTPUTS) == set(PRESETS)


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUTS))
def test_head_output_shapes_of_every_preset(name):
    torch.manual_seed(0)
    preset = PRESETS[name]
    # Small trunks keep the test fast: the Perez CNN itself (it is small), a tiny DenseNet for
    # the others (same code path as DenseNet121).
    trunk = "perez2023" if preset.trunk == "perez2023" else "densenet_tiny"
    net = MultiTaskNet(preset, trunk=trunk).eval()
    x = torch.randn(3, 1, 40, 48, 48)
    with torch.no_grad():
        out = net(x)
    assert list(out) == list(EXPECTED_OUTPUTS[name])
    for task, k in EXPECTED_OUTPUTS[name].items():
        assert out[task].shape == (3, k)
        assert torch.isfinite(out[task]).all()


def test_densenet121_trunk_parameter_count_matches_monai():
    from monai.networks.nets import DenseNet121

    net = MultiTaskNet(MT_ORD_GCS_BIN_AGE)
    n_trunk = sum(p.numel() for p in net.trunk.parameters())
    # Independent reference: MONAI's full DenseNet121 minus its classification Linear(1024, 1).
    ref = DenseNet121(spatial_dims=3, in_channels=1, out_channels=1)
    n_ref = sum(p.numel() for p in ref.parameters()) - (1024 * 1 + 1)
    assert n_trunk == n_ref
    assert 11.1e6 < n_trunk < 11.3e6  # "about 11.2 M"
    # heads: ReLU -> pool -> Linear(1024, k): 1025 + 2050 + 1025 parameters
    n_heads = sum(p.numel() for p in net.heads.parameters())
    assert n_heads == (1024 + 1) + (2 * 1024 + 2) + (1024 + 1)
    assert net.spec.n_features == 1024


def test_perez_trunk_parameter_count_by_hand():
    spec = build_trunk("perez2023")
    conv = [(1, 16), (16, 32), (32, 64), (64, 128)]
    by_hand = sum(cout * cin * 27 + cout for cin, cout in conv) + 2 * 128  # + BatchNorm affine
    assert sum(p.numel() for p in spec.module.parameters()) == by_hand
    assert spec.n_features == 128 and spec.pool == "max"


def test_densenet121_feature_map_at_the_paper_input_size():
    # METHOD-NOTES: with (1, 40, 301, 301) inputs the last feature map is 1 x 9 x 9 and the
    # Grad-CAM layer transition3.conv gives 2 x 19 x 19.
    torch.manual_seed(0)
    net = MultiTaskNet(MT_BIN_GCS_BIN_AGE).eval()
    seen = {}
    layer = net.get_submodule(net.cam_layer)

    def hook(module, inputs, output):
        seen["cam"] = tuple(output.shape)

    handle = layer.register_forward_hook(hook)
    with torch.no_grad():
        f = net.features(torch.zeros(1, 1, 40, 301, 301))
    handle.remove()
    assert tuple(f.shape) == (1, 1024, 1, 9, 9)
    assert tuple(seen["cam"][2:]) == (2, 19, 19)


def _bce(logits: np.ndarray, y: np.ndarray) -> float:
    p = 1.0 / (1.0 + np.exp(-logits))
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))


@pytest.mark.parametrize("preset", [MT_BIN_GCS_BIN_AGE, MT_ORD_GCS_BIN_AGE])
def test_multitask_loss_matches_hand_computation(preset):
    rng = np.random.default_rng(3)
    outputs, targets = {}, {}
    for t in preset:
        outputs[t.name] = rng.normal(size=(5, t.n_outputs))
        classes = rng.integers(0, t.n_classes, size=5)
        targets[t.name] = t.loss_targets(classes)
    total, per_task = multitask_loss(
        {k: torch.tensor(v, dtype=torch.float32) for k, v in outputs.items()},
        {k: torch.tensor(v) for k, v in targets.items()}, preset.tasks)
    # the paper's Eq. 1 with lambda = 0.4 / 0.3 / 0.3
    weights = {"prognosis": 0.4, "gcs": 0.3, "age": 0.3}
    expected = 0.0
    for name, w in weights.items():
        b = _bce(outputs[name], targets[name])
        assert per_task[name].item() == pytest.approx(b, rel=1e-5)
        expected += w * b
    assert total.item() == pytest.approx(expected, rel=1e-5)


def test_ordinal_loss_uses_cumulative_targets():
    # class 2 -> [1, 1]; class 0 -> [0, 0]; logits 0 give log(2) per output whatever the target
    out = {"gcs": torch.tensor([[2.0, -1.0], [0.5, 0.25]])}
    tgt = {"gcs": torch.tensor(GCS_ORDINAL.loss_targets([2, 0]))}
    _, per = multitask_loss(out, tgt, [GCS_ORDINAL])
    by_hand = np.mean([np.log1p(np.exp(-2.0)), np.log1p(np.exp(1.0)),
                       np.log1p(np.exp(0.5)), np.log1p(np.exp(0.25))])
    assert per["gcs"].item() == pytest.approx(by_hand, rel=1e-6)


def test_ablation_weights_are_kept():
    abl = ablations(MT_ORD_GCS_BIN_AGE)
    weights = {name: p.weights for name, p in abl.items()}
    assert list(weights.values()) == [
        {"prognosis": 0.4, "gcs": 0.3, "age": 0.3},
        {"prognosis": 0.4, "gcs": 0.3},
        {"prognosis": 0.4, "age": 0.3},
        {"prognosis": 0.4},
    ]


# The paper's decoding: binary outputs at threshold 0.5, ordinal outputs by counting the
# cumulative outputs above 0.5 (a non-monotone [0.2, 0.9] decodes to 1).
BINARY_PROBS = np.array([[0.1], [0.49], [0.51], [0.97]])
BINARY_CLASSES = [0, 0, 1, 1]
ORDINAL_PROBS = np.array([[0.1, 0.05], [0.8, 0.3], [0.9, 0.7], [0.2, 0.9], [0.6, 0.4]])
ORDINAL_CLASSES = [0, 1, 2, 1, 1]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_decoding_of_every_preset(name):
    for task in PRESETS[name]:
        if task.kind == "ordinal":
            assert task.decode(ORDINAL_PROBS).tolist() == ORDINAL_CLASSES
        else:
            assert task.decode(BINARY_PROBS).tolist() == BINARY_CLASSES


def test_config_round_trip_rebuilds_the_same_network():
    torch.manual_seed(1)
    net = MultiTaskNet([PROGNOSIS, GCS_ORDINAL, AGE_BINARY], trunk="densenet_tiny",
                       trunk_kwargs={"block_config": (1, 1, 1, 1)}).eval()
    clone = MultiTaskNet.from_config(net.config()).eval()
    clone.load_state_dict(net.state_dict())
    x = torch.randn(2, 1, 32, 32, 32)
    with torch.no_grad():
        a, b = net(x), clone(x)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
    assert clone.trunk_kwargs == {"block_config": (1, 1, 1, 1)}


def test_input_checks_name_the_problem():
    net = MultiTaskNet([GCS_BINARY], trunk="densenet_tiny")
    with pytest.raises(ValueError, match="batch"):
        net(torch.zeros(1, 32, 32, 32))
    with pytest.raises(ValueError, match="input channel"):
        net(torch.zeros(1, 2, 32, 32, 32))
    with pytest.raises(ValueError, match=">= 29"):
        net(torch.zeros(1, 1, 16, 32, 32))


def test_heads_use_out_of_place_relu():
    net = MultiTaskNet(MT_BIN_GCS_BIN_AGE, trunk="densenet_tiny")
    for head in net.heads.values():
        assert head.relu.inplace is False


@pytest.mark.parametrize("shape", [(2, 8, 8), (2, 2, 8), (8, 8, 8)])
def test_bf16_safe_conv_gradients_match_float32(shape):
    # torch's CPU bfloat16 Conv3d backward returns wrong (often non-finite) weight gradients
    # for a spatial side of 2 under a 3x3x3 kernel; the guarded convolution stays within bf16
    # rounding of the float32 result.
    from ichprog.models import Bf16SafeConv3d

    torch.manual_seed(0)
    conv = Bf16SafeConv3d(32, 16, 3, padding=1, bias=False)
    x = torch.randn(4, 32, *shape)
    g = torch.randn(4, 16, *shape)
    ref = torch.autograd.grad((conv(x) * g).sum(), conv.weight)[0]
    for _ in range(3):  # the upstream failure is intermittent
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(x)
        got = torch.autograd.grad((y.float() * g).sum(), conv.weight)[0]
        assert torch.isfinite(got).all()
        assert float((got - ref).norm() / ref.norm()) < 0.02


def test_every_trunk_convolution_is_guarded():
    from ichprog.models import Bf16SafeConv3d

    for trunk in ("densenet_tiny", "perez2023"):
        net = MultiTaskNet(MT_BIN_GCS_BIN_AGE, trunk=trunk)
        convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
        assert convs and all(type(m) is Bf16SafeConv3d for m in convs)
