"""Tests of ichprog.saliency: maps against hand-computed gradients, every trunk and head, the
caller's model left untouched, lesion scores against hand-computed cases and scipy's bootstrap,
NIfTI alignment with the original scan, and the figures."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ichprog import saliency as S
from ichprog.models import MultiTaskNet


# -- hand-built networks --------------------------------------------------------------------------
class Linear3d(nn.Module):
    """logit = sum(W * x): its gradient is W (no ReLU, so guided = plain gradient)."""

    def __init__(self, weight: np.ndarray):
        super().__init__()
        self.register_buffer("w", torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"prognosis": (x[:, 0] * self.w).flatten(1).sum(1, keepdim=True)}


class VoxelReLU(nn.Module):
    """logit = sum(a * relu(b * x)) voxel by voxel, with an in-place ReLU whose module name does
    not contain "relu" (both trip MONAI's and captum's guided backprop)."""

    def __init__(self, a: np.ndarray, b: np.ndarray):
        super().__init__()
        self.register_buffer("a", torch.as_tensor(a, dtype=torch.float32))
        self.register_buffer("b", torch.as_tensor(b, dtype=torch.float32))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.act(x[:, 0] * self.b)
        return {"prognosis": (h * self.a).flatten(1).sum(1, keepdim=True)}


class CamNet(nn.Module):
    """A 1x1x1 convolution (the Grad-CAM layer, full resolution) -> mean pool -> Linear."""

    def __init__(self, k: list[float], bias: list[float], w: list[float], stride: int = 1):
        super().__init__()
        self.feat = nn.Conv3d(1, len(k), kernel_size=1, stride=stride)
        with torch.no_grad():
            self.feat.weight.copy_(torch.tensor(k).reshape(-1, 1, 1, 1, 1))
            self.feat.bias.copy_(torch.tensor(bias))
            self.out = nn.Linear(len(k), 1)
            self.out.weight.copy_(torch.tensor([w]))
            self.out.bias.zero_()
        self.cam_layer = "feat"

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"prognosis": self.out(self.feat(x).mean(dim=(2, 3, 4)))}


class Gate(nn.Module):
    """Multiplies a feature map by a fixed 0/1 box."""

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f * self.mask


class BoxNet(nn.Module):
    """A random conv net whose heads only read the features inside a box: the binary head and
    the first ordinal logit read box A (through ``gate_a``), the second ordinal logit box B."""

    def __init__(self, shape: tuple[int, int, int], box_a: tuple[slice, ...],
                 box_b: tuple[slice, ...], seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        masks = []
        for box in (box_a, box_b):
            m = torch.zeros(shape)
            m[box] = 1
            masks.append(m)
        self.conv1 = nn.Conv3d(1, 4, 3, padding=1, bias=False)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(4, 4, 3, padding=1, bias=False)
        self.act2 = nn.ReLU()
        self.gate_a = Gate(masks[0])
        self.gate_b = Gate(masks[1])
        with torch.no_grad():
            self.conv1.weight.copy_(torch.rand(self.conv1.weight.shape, generator=g))
            self.conv2.weight.copy_(torch.rand(self.conv2.weight.shape, generator=g))
        self.cam_layer = "gate_a"

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.act2(self.conv2(self.act1(self.conv1(x))))
        fa = self.gate_a(f).sum(1).flatten(1).mean(1, keepdim=True)
        fb = self.gate_b(f).sum(1).flatten(1).mean(1, keepdim=True)
        return {"prognosis": fa, "gcs": torch.cat([fa, fb], dim=1)}


def _box_mask(shape, box, grow=0):
    m = np.zeros(shape, bool)
    m[tuple(slice(max(b.start - grow, 0), b.stop + grow) for b in box)] = True
    return m


# -- targets and normalisation --------------------------------------------------------------------
def test_resolve_target_per_kind():
    assert S.resolve_target("binary", 2, 1) == (0, 1.0)
    assert S.resolve_target("binary", 2, 0) == (0, -1.0)
    # ordinal, 3 classes, cumulative logits P(y > 0), P(y > 1)
    assert S.resolve_target("ordinal", 3, 0) == (0, -1.0)
    assert S.resolve_target("ordinal", 3, 1) == (0, 1.0)
    assert S.resolve_target("ordinal", 3, 2) == (1, 1.0)
    assert S.resolve_target("ordinal", 5, 4) == (3, 1.0)
    for kind, n, bad in [("binary", 2, 2), ("ordinal", 3, 3), ("binary", 2, -1)]:
        with pytest.raises(ValueError, match="target must be one of"):
            S.resolve_target(kind, n, bad, task="gcs")
    with pytest.raises(ValueError, match="integer"):
        S.resolve_target("binary", 2, 0.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integer"):
        S.resolve_target("binary", 2, True)


def test_normalize_map_signs_and_threshold():
    raw = np.array([-4.0, -1.0, 0.0, 1.0, 3.0])
    np.testing.assert_allclose(S.normalize_map(raw), [0, 0, 0, 1 / 3, 1])
    np.testing.assert_allclose(S.normalize_map(raw, sign="negative"), [1, 0.25, 0, 0, 0])
    np.testing.assert_allclose(S.normalize_map(raw, sign="absolute"), [1, 0.25, 0, 0.25, 0.75])
    np.testing.assert_allclose(S.normalize_map(raw, sign="all"), [0, 3 / 7, 4 / 7, 5 / 7, 1])
    # the paper's threshold: below 0.5 -> 0, the rest unchanged
    np.testing.assert_allclose(S.normalize_map(raw, sign="all", threshold=0.5),
                               [0, 0, 4 / 7, 5 / 7, 1])
    assert S.normalize_map(raw).dtype == np.float32


def test_normalize_map_constant_and_errors():
    with pytest.warns(S.ConstantMapWarning, match="constant"):
        out = S.normalize_map(np.full((2, 3), -1.0))
    assert out.shape == (2, 3) and not out.any()
    with pytest.raises(ValueError, match="sign"):
        S.normalize_map([1.0, 2.0], sign="both")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        S.normalize_map([1.0, 2.0], threshold=1.5)
    with pytest.raises(ValueError, match="non-finite"):
        S.normalize_map([1.0, np.nan])


# -- maps against hand-computed gradients ---------------------------------------------------------
def test_guided_backprop_of_linear_model_is_its_weight():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 5, 6)).astype(np.float32)
    net = Linear3d(w)
    x = rng.random((4, 5, 6), dtype=np.float32)
    raw = S.guided_backprop(net, x, normalize=False)
    np.testing.assert_allclose(raw, w, rtol=1e-6)
    raw0 = S.guided_backprop(net, x, target=0, normalize=False)
    np.testing.assert_allclose(raw0, -w, rtol=1e-6)
    # normalised: the positive part of W scaled by its maximum
    np.testing.assert_allclose(S.guided_backprop(net, x), np.maximum(w, 0) / w.max(), rtol=1e-5)
    # evidence for class 0 is where W < 0
    np.testing.assert_allclose(S.guided_backprop(net, x, target=0),
                               np.maximum(-w, 0) / (-w).max(), rtol=1e-5)


def test_guided_backprop_guides_relus_without_name_or_inplace_pitfalls():
    rng = np.random.default_rng(1)
    shape = (3, 4, 5)
    a = rng.normal(size=shape).astype(np.float32)
    b = rng.normal(size=shape).astype(np.float32)
    x = rng.normal(size=shape).astype(np.float32)
    net = VoxelReLU(a, b)
    active = (b * x) > 0
    plain = np.where(active, a * b, 0.0)           # d/dx of sum(a * relu(b x))
    guided = np.where(active, np.maximum(a, 0) * b, 0.0)  # only positive gradients pass the ReLU
    assert not np.allclose(plain, guided)
    np.testing.assert_allclose(S.guided_backprop(net, x, normalize=False), guided, atol=1e-6)
    assert net.act.inplace is True  # the caller's module keeps its in-place ReLU


def test_gradcam_matches_hand_computation():
    rng = np.random.default_rng(2)
    k, bias, w = [1.0, -2.0], [0.5, 1.0], [0.7, 0.4]
    net = CamNet(k, bias, w)
    x = rng.random((4, 6, 5), dtype=np.float32)
    # logit = sum_c w_c mean(A_c): the gradient's spatial mean is w_c / n for every voxel, n voxels
    n = x.size
    acts = [k[c] * x + bias[c] for c in range(2)]
    cam = np.maximum(sum(w[c] / n * acts[c] for c in range(2)), 0)
    np.testing.assert_allclose(S.gradcam(net, x, normalize=False), cam, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(S.gradcam(net, x), S.normalize_map(cam), atol=1e-5)
    # the layer given as a module of the caller's network, not a name
    np.testing.assert_allclose(S.gradcam(net, x, layer=net.feat), S.normalize_map(cam), atol=1e-5)
    with pytest.raises(ValueError, match="not part of the model"):
        S.gradcam(net, x, layer=nn.Conv3d(1, 1, 1))
    # target 0 negates the weights: the ReLU now keeps the other part
    cam0 = np.maximum(-sum(w[c] / n * acts[c] for c in range(2)), 0)
    np.testing.assert_allclose(S.gradcam(net, x, target=0, normalize=False), cam0, rtol=1e-5,
                               atol=1e-8)


def test_gradcam_is_upsampled_to_the_input():
    net = CamNet([1.0], [0.0], [1.0], stride=2)
    x = np.zeros((8, 8, 8), dtype=np.float32)
    x[4:, 4:, 4:] = 1.0  # the layer sees it in its last 2 x 2 x 2 cells
    m = S.gradcam(net, x)
    assert m.shape == x.shape
    assert m[6, 6, 6] > 0.9 and m[0, 0, 0] == 0
    assert np.unravel_index(np.argmax(m), m.shape) >= (4, 4, 4)


def test_guided_gradcam_is_the_product_of_the_raw_maps():
    rng = np.random.default_rng(3)
    net = BoxNet((8, 10, 12), np.s_[2:5, 3:7, 4:9], np.s_[5:8, 0:4, 0:4])
    x = rng.random((8, 10, 12), dtype=np.float32)
    ex = S.Explainer(net)
    gb = ex.raw(x, "guided_backprop")
    cam = ex.raw(x, "gradcam")
    np.testing.assert_allclose(ex.raw(x, "guided_gradcam"), gb * cam, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("method", S.METHODS)
def test_maps_peak_in_the_only_region_the_model_sees(method):
    rng = np.random.default_rng(4)
    shape = (10, 12, 14)
    box_a, box_b = np.s_[2:5, 3:7, 4:9], np.s_[6:9, 7:11, 1:5]
    net = BoxNet(shape, box_a, box_b)
    x = rng.random(shape, dtype=np.float32)
    ex = S.Explainer(net)
    for task, target, box, layer in [("prognosis", 1, box_a, "gate_a"), ("gcs", 1, box_a, "gate_a"),
                                     ("gcs", 2, box_b, "gate_b")]:
        m = ex.explain(x, method=method, task=task, target=target, layer=layer)
        assert m.max() == 1.0
        # the heads read the box; two 3x3x3 convolutions see 2 voxels further
        seen = _box_mask(shape, box, grow=0 if method == "gradcam" else 2)
        assert seen[np.unravel_index(np.argmax(m), shape)], (task, target)
        assert m[~seen].max() == 0.0, (task, target)
        assert m[_box_mask(shape, box)].mean() > 0.1  # and the box itself lights up


# -- real trunks, every head ----------------------------------------------------------------------
def _check_map(m: np.ndarray, shape: tuple[int, ...]) -> None:
    assert m.shape == shape and m.dtype == np.float32
    assert np.isfinite(m).all() and m.min() >= 0.0 and m.max() <= 1.0


@pytest.mark.parametrize("trunk,shape,all_targets", [("densenet_tiny", (32, 64, 64), True),
                                                     ("perez2023", (40, 40, 40), False)])
def test_every_method_and_head_on_the_trunks(trunk, shape, all_targets):
    rng = np.random.default_rng(5)
    torch.manual_seed(0)
    net = MultiTaskNet("mt_ord_gcs_bin_age", trunk=trunk)
    x = rng.random(shape, dtype=np.float32)
    ex = S.Explainer(net)
    assert ex.layer_name == net.cam_layer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.ConstantMapWarning)  # untrained Grad-CAM can be empty
        # guided Grad-CAM runs both guided backprop and Grad-CAM: every head and class
        for task, targets in [("prognosis", (0, 1)), ("gcs", (0, 1, 2)), ("age", (0, 1))]:
            for target in targets if all_targets else targets[-1:]:
                _check_map(ex.explain(x, "guided_gradcam", task=task, target=target), shape)
        _check_map(ex.explain(x, "gradcam", task="gcs", target=1), shape)
    # guided backprop of a random net is never all zero for the explained class or its opposite
    both = [ex.explain(x, "guided_backprop", task="prognosis", target=t) for t in (0, 1)]
    assert any(b.max() == 1.0 for b in both)
    # (1, D, H, W) input and tensors keep their shape
    x4 = torch.from_numpy(x)[None]
    _check_map(ex.explain(x4, "guided_backprop", task="gcs", target=2), (1, *shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.ConstantMapWarning)
        _check_map(S.guided_gradcam(net, x, task="age", target=0, threshold=0.5), shape)


def test_densenet121_at_the_papers_layer():
    rng = np.random.default_rng(6)
    torch.manual_seed(0)
    net = MultiTaskNet("mt_bin_gcs_bin_age", trunk="densenet121")
    assert net.cam_layer == "trunk.transition3.conv"
    x = rng.random((32, 64, 64), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.ConstantMapWarning)
        ex = S.Explainer(net)
        _check_map(ex.explain(x, "guided_gradcam", task="prognosis", target=1), (32, 64, 64))
        _check_map(ex.explain(x, "gradcam", task="gcs", target=0,
                              layer="trunk.transition2.conv"), (32, 64, 64))


def test_the_callers_model_is_left_untouched():
    rng = np.random.default_rng(7)
    torch.manual_seed(0)
    net = MultiTaskNet("mt_ord_gcs_bin_age", trunk="densenet_tiny")
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    inplace = [m.inplace for m in net.modules() if isinstance(m, nn.ReLU)]
    assert any(inplace)  # MONAI's DenseNet uses ReLU(inplace=True)
    x = rng.random((32, 64, 64), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.ConstantMapWarning)
        for method in S.METHODS:
            S.saliency_map(net, x, method=method, task="gcs", target=2)
    assert net.training
    assert [m.inplace for m in net.modules() if isinstance(m, nn.ReLU)] == inplace
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in net.parameters())
    for m in net.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks


def test_fitted_model_objects_and_errors():
    rng = np.random.default_rng(8)
    w = rng.normal(size=(4, 5, 6)).astype(np.float32)
    net = Linear3d(w)
    x = rng.random((4, 5, 6), dtype=np.float32)

    class Fitted:
        def __init__(self, **kw):
            self.__dict__.update(kw)

    ref = S.guided_backprop(net, x)
    np.testing.assert_array_equal(S.guided_backprop(Fitted(net=net), x), ref)
    np.testing.assert_array_equal(S.guided_backprop(Fitted(model=net), x), ref)
    # a network returning one tensor: task=None, binary by its single output
    class OneTensor(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = net

        def forward(self, t):
            return self.inner(t)["prognosis"]

    np.testing.assert_array_equal(S.guided_backprop(OneTensor(), x, task=None), ref)
    with pytest.raises(ValueError, match="target must be one of"):
        S.guided_backprop(OneTensor(), x, task=None, target=2)
    with pytest.raises(TypeError, match=r"\.net or \.model"):
        S.guided_backprop(Fitted(weights=None), x)
    mt = MultiTaskNet("mt_bin_gcs_bin_age", trunk="densenet_tiny")
    v = rng.random((32, 64, 64), dtype=np.float32)
    with pytest.raises(KeyError, match="no task 'outcome'"):
        S.guided_backprop(mt, v, task="outcome")
    with pytest.raises(ValueError, match=r"task 'gcs' \(binary, 2 classes\)"):
        S.guided_backprop(mt, v, task="gcs", target=2)
    with pytest.raises(ValueError, match="no layer 'trunk.nope'"):
        S.gradcam(mt, v, layer="trunk.nope")
    with pytest.raises(ValueError, match=r"\(D, H, W\) or \(1, D, H, W\)"):
        S.guided_backprop(mt, v[None, None])
    bad = v.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        S.guided_backprop(mt, bad)
    with pytest.raises(ValueError, match="no default Grad-CAM layer"):
        S.gradcam(net, x)


# -- many models, many patients -------------------------------------------------------------------
def test_compute_maps_for_several_models_and_patients():
    rng = np.random.default_rng(9)
    torch.manual_seed(0)
    models = {"tiny": MultiTaskNet("mt_ord_gcs_bin_age", trunk="densenet_tiny"),
              "perez": MultiTaskNet("baseline_perez")}
    vols = {f"p{i}": rng.random((40, 40, 40), dtype=np.float32) for i in range(2)}
    res = S.compute_maps(models, vols, method="guided_backprop", sign="absolute", threshold=0.5,
                         progress=False)
    assert res.models == ["tiny", "perez"] and res.patients == ["p0", "p1"]
    for name, net in models.items():
        net.eval()
        for pid, v in vols.items():
            _check_map(res.maps[name][pid], (40, 40, 40))
            kept = res.maps[name][pid][res.maps[name][pid] > 0]
            assert kept.max() == 1.0 and kept.min() >= 0.5  # thresholded
            with torch.no_grad():
                logit = float(net(torch.from_numpy(v)[None, None])["prognosis"][0, 0])
            assert res.probs[name][pid] == pytest.approx(1 / (1 + np.exp(-logit)), rel=1e-5)
    frame = res.to_frame()
    assert list(frame.columns) == ["model", "patient", "probability"] and len(frame) == 4
    # CTDataset-like items: dicts with "image" (1, D, H, W) and "id"
    items = [{"image": torch.from_numpy(v)[None], "id": pid} for pid, v in vols.items()]
    res2 = S.compute_maps(models["perez"], items, method="guided_backprop", sign="absolute",
                          threshold=0.5, progress=False)
    np.testing.assert_allclose(res2.maps["model"]["p1"][0], res.maps["perez"]["p1"], atol=1e-6)
    with pytest.raises(ValueError, match="'p0' occurs twice"):
        S.compute_maps(models["perez"], [("p0", vols["p0"]), ("p0", vols["p0"])],
                       method="guided_backprop", sign="absolute", progress=False)
    with pytest.raises(ValueError, match="model 'perez', patient 'small'"):
        S.compute_maps(models, {"small": rng.random((30, 30, 30), dtype=np.float32)},
                       method="guided_backprop", sign="absolute", progress=False)


# -- lesion scores --------------------------------------------------------------------------------
def test_lesion_scores_hand_computed():
    shape = (3, 5, 5)
    lesion = np.zeros(shape, bool)
    lesion[1, 1:3, 1:3] = True  # 4 voxels
    brain = np.zeros(shape, bool)
    brain[:, :, :4] = True  # 60 voxels, holding the lesion
    m = np.zeros(shape)
    m[1, 1, 1] = 2.0   # inside the lesion
    m[1, 3, 1] = 1.0   # next to it (distance 1): in the shell
    m[0, 0, 4] = 1.0   # outside the brain
    row = S.lesion_scores({"a": m}, {"a": lesion}, brain_masks={"a": brain},
                          shell_width=1.0).iloc[0]
    assert row.model == "model" and row.patient == "a"
    assert row.lesion_voxels == 4 and row.brain_voxels == 60
    # shell: brain voxels at distance 1 from the lesion (face neighbours): 4 + 4 in-plane, 4 above,
    # 4 below
    assert row.shell_voxels == 16
    assert row.mass_lesion == pytest.approx(0.5)
    assert row.lesion_share == pytest.approx(4 / 60)
    assert row.enrichment == pytest.approx(0.5 / (4 / 60))
    assert row.pointing_lesion == 1.0 and row.pointing_chance == pytest.approx(4 / 60)
    assert row.mass_shell == pytest.approx(0.25) and row.shell_share == pytest.approx(16 / 60)
    assert row.pointing_shell == 0.0
    assert row.mass_outside_brain == pytest.approx(0.25)


def test_lesion_scores_pointing_ties_tolerance_and_spacing():
    shape = (5, 5, 5)
    lesion = np.zeros(shape, bool)
    lesion[2, 2, 2] = True
    m = np.zeros(shape)
    m[2, 2, 2] = 1.0
    m[4, 2, 2] = 1.0  # a tie, two slices away
    row = S.lesion_scores(m, lesion).iloc[0]
    assert row.pointing_lesion == 0.5 and row.mass_lesion == 0.5
    m[2, 2, 2] = 0.5  # now the maximum is 2 slices from the lesion
    assert S.lesion_scores(m, lesion).iloc[0].pointing_lesion == 0.0
    assert S.lesion_scores(m, lesion, tolerance=2).iloc[0].pointing_lesion == 1.0
    # with 5 mm slices the same maximum is 10 mm away
    sp = (5.0, 1.0, 1.0)
    assert S.lesion_scores(m, lesion, tolerance=2, spacing=sp).iloc[0].pointing_lesion == 0.0
    r = S.lesion_scores(m, lesion, tolerance=10, spacing=sp).iloc[0]
    assert r.pointing_lesion == 1.0
    # chance of the tolerant pointing game: voxels within 10 mm = the 3 slices 1..3 at the centre
    # column... counted by hand: distance sqrt((5 dz)^2 + dy^2 + dx^2) <= 10
    dz, dy, dx = np.meshgrid(np.arange(5) - 2, np.arange(5) - 2, np.arange(5) - 2, indexing="ij")
    near = np.sqrt((5 * dz) ** 2 + dy**2 + dx**2) <= 10
    assert r.pointing_chance == pytest.approx(near.sum() / 125)


def test_lesion_scores_undefined_cases_and_errors():
    rng = np.random.default_rng(10)
    shape = (2, 3, 3)
    m = rng.random(shape)
    scores = S.lesion_scores({"a": {"p": m, "q": np.zeros(shape)}},
                             {"p": np.zeros(shape, bool), "q": np.ones(shape, bool)})
    assert list(scores.columns) == list(S.SCORE_COLUMNS)
    assert len(scores) == 2  # nothing dropped
    assert scores.loc[0, ["mass_lesion", "pointing_lesion", "lesion_share"]].isna().all()
    assert scores.loc[1, ["mass_lesion", "pointing_lesion"]].isna().all()
    with pytest.raises(ValueError, match="model 'model', patient 'p': the map has negative"):
        S.lesion_scores({"p": m - 0.5}, {"p": np.ones(shape, bool)})
    with pytest.raises(ValueError, match="patient 'p': lesion mask has shape"):
        S.lesion_scores({"p": m}, {"p": np.ones((2, 3, 4), bool)})
    with pytest.raises(ValueError, match="binary"):
        S.lesion_scores({"p": m}, {"p": np.full(shape, 2)})
    with pytest.raises(KeyError, match="missing for patient"):
        S.lesion_scores({"p": m}, {"r": np.ones(shape, bool)})


def test_bootstrap_mean_matches_scipy():
    rng = np.random.default_rng(11)
    from scipy import stats

    v = rng.normal(0.3, 0.1, size=27)
    est, low, high, n = S.bootstrap_mean(v, n_resamples=20000, seed=1)
    ref = stats.bootstrap((v,), np.mean, n_resamples=20000, method="percentile",
                          random_state=np.random.default_rng(2)).confidence_interval
    assert est == pytest.approx(v.mean()) and n == 27
    width = ref.high - ref.low
    assert low == pytest.approx(ref.low, abs=0.05 * width)
    assert high == pytest.approx(ref.high, abs=0.05 * width)
    assert S.bootstrap_mean(v, seed=3) == S.bootstrap_mean(v, seed=3)
    assert np.isnan(S.bootstrap_mean([np.nan, 1.0])[1])  # one valid value: no interval
    assert S.bootstrap_mean([np.nan, 1.0])[3] == 1


def _scores_table() -> pd.DataFrame:
    rows = []
    for i in range(12):
        share = 0.02 + 0.01 * (i % 3)
        for model, level in (("base", 0.10), ("mt", 0.30)):
            rows.append({"model": model, "patient": f"p{i}", "mass_lesion": level + 0.01 * i,
                         "lesion_share": share, "pointing_lesion": float(i % 2),
                         "pointing_chance": share, "mass_shell": 0.05, "shell_share": 0.04,
                         "pointing_shell": 0.0})
    return pd.DataFrame(rows)


def test_summaries_and_paired_comparison():
    scores = _scores_table()
    scores.loc[(scores.model == "mt") & (scores.patient == "p0"), "mass_lesion"] = np.nan
    summary = S.summarize_lesion_scores(scores, n_resamples=500)
    means = scores.groupby("model")["mass_lesion"].mean()
    got = summary.set_index(["model", "metric"])
    assert got.loc[("base", "mass_lesion"), "estimate"] == pytest.approx(means["base"])
    assert got.loc[("mt", "mass_lesion"), "estimate"] == pytest.approx(means["mt"])
    assert got.loc[("mt", "mass_lesion"), "n_valid"] == 11
    mt = scores[(scores.model == "mt") & scores.mass_lesion.notna()]
    assert got.loc[("mt", "mass_lesion"), "chance"] == pytest.approx(mt.lesion_share.mean())
    assert got.loc[("mt", "mass_lesion"), "excess"] == pytest.approx(
        (mt.mass_lesion - mt.lesion_share).mean())
    for _, r in summary.iterrows():
        assert r.low <= r.estimate <= r.high
    cmp = S.compare_lesion_scores(scores, baseline="base", n_resamples=500)
    row = cmp[cmp.metric == "mass_lesion"].iloc[0]
    assert row.model == "mt" and row.n_valid == 11
    assert row.difference == pytest.approx(0.20)
    assert row.low == pytest.approx(0.20) and row.high == pytest.approx(0.20)  # constant shift
    with pytest.raises(KeyError, match="baseline 'nope'"):
        S.compare_lesion_scores(scores, baseline="nope")


# -- NIfTI alignment ------------------------------------------------------------------------------
def _lps_scan(shape=(48, 40, 20)):
    """A head-like HU volume in LPS voxel order (x, y, z) with a bright blob, and its affine."""
    affine = np.array([[-0.9, 0, 0, 20.0], [0, -0.9, 0, 18.0], [0, 0, 4.5, -40.0], [0, 0, 0, 1]])
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    head = ((x - 24) / 20) ** 2 + ((y - 20) / 17) ** 2 + ((z - 10) / 9) ** 2 <= 1
    hu = np.where(head, 35, -1000).astype(np.int16)
    blob = ((x - 14) / 4) ** 2 + ((y - 26) / 4) ** 2 + ((z - 13) / 2.5) ** 2 <= 1
    hu[blob] = 70
    return hu, affine, blob


def test_saved_map_is_aligned_with_the_original_scan(tmp_path):
    import nibabel as nib

    from ichprog.data import PreprocessConfig, preprocess_volume, save_volume

    hu, affine, blob = _lps_scan()
    scan = tmp_path / "scan.nii.gz"
    save_volume(hu, affine, scan)
    cfg = PreprocessConfig(shape=(24, 32, 32), skull_strip=False, window_level=50,
                           window_width=40)
    vol = preprocess_volume(hu, affine, cfg)
    mask = S.mask_to_input_space(blob, affine, cfg)
    assert mask.shape == (24, 32, 32) and mask.dtype == bool
    bright = vol > 0.5  # the blob (70 HU) is bright, the brain (35 HU) is not
    dice = 2 * (bright & mask).sum() / (bright.sum() + mask.sum())
    assert dice > 0.9
    # a "map" that is the blob on the network grid comes back onto the blob in the scan
    out = S.save_map(mask.astype(np.float32), tmp_path / "maps" / "map.nii.gz", scan, cfg)
    img = nib.load(str(out))
    assert img.shape == hu.shape
    np.testing.assert_allclose(img.affine, affine, atol=1e-5)
    back = np.asarray(img.dataobj) >= 0.5
    dice_back = 2 * (back & blob).sum() / (back.sum() + blob.sum())
    assert dice_back > 0.8
    # the same through a (shape, affine) reference and save_maps
    res = S.SaliencyMaps("guided_backprop", "prognosis", 1, None, "positive", None,
                         maps={"m 1": {"p": mask.astype(np.float32)}})
    paths = S.save_maps(res, tmp_path / "all", {"p": (hu.shape, affine)}, cfg, progress=False)
    assert paths.path[0].endswith("m_1/p_guided_backprop_prognosis-1.nii.gz")
    np.testing.assert_allclose(nib.load(paths.path[0]).get_fdata(), img.get_fdata(), atol=1e-6)


def test_mask_labels_and_brain_mask():
    from ichprog.data import PreprocessConfig

    hu, affine, blob = _lps_scan()
    labels = blob.astype(np.uint8)
    labels[:, :, :5] = np.where(labels[:, :, :5] == 0, 0, 2)
    cfg = PreprocessConfig(shape=(24, 32, 32), skull_strip=False)
    both = S.mask_to_input_space(labels, affine, cfg)
    only1 = S.mask_to_input_space(labels, affine, cfg, labels=[1])
    assert both.sum() >= only1.sum() > 0
    with pytest.raises(ValueError, match="none of the labels"):
        S.mask_to_input_space(labels, affine, cfg, labels=[7])
    # brain mask of a windowed volume: tissue plus the enclosed dark hole
    vol = np.zeros((3, 9, 9), np.float32)
    vol[:, 2:7, 2:7] = 0.5
    vol[1, 4, 4] = 0.0  # CSF inside the brain, windowed to 0
    brain = S.brain_mask(vol)
    assert brain[1, 4, 4] and brain.sum() == 75


# -- figures --------------------------------------------------------------------------------------
def test_select_slices():
    m = np.zeros((6, 2, 2))
    m[[1, 4, 5]] = [[[1.0]], [[3.0]], [[2.0]]]
    assert S.select_slices(m, n=2) == [4, 5]
    mask = np.zeros((6, 2, 2), bool)
    mask[2] = True
    mask[3, 0, 0] = True
    assert S.select_slices(m, mask, n=2, by="lesion") == [2, 3]
    assert S.select_slices(m, mask, n=10, by="lesion") == list(range(6))
    with pytest.raises(ValueError, match="needs a lesion mask"):
        S.select_slices(m, by="lesion")


def test_radiological_orientation():
    from ichprog.saliency.figures import _orient

    sl = np.zeros((4, 5))  # (y, x) of a RAS+ volume: y to anterior, x to the patient's right
    sl[3, 4] = 1  # most anterior, most right
    assert _orient("radiological")(sl)[0, 0] == 1  # top left: anterior, patient's right
    assert _orient("neurological")(sl)[0, 4] == 1  # top right
    assert _orient("stored")(sl)[3, 4] == 1
    with pytest.raises(ValueError, match="orientation"):
        _orient("sideways")  # type: ignore[arg-type]


def test_figures_are_written(tmp_path):
    rng = np.random.default_rng(12)
    vol = rng.random((6, 16, 16), dtype=np.float32)
    mask = np.zeros_like(vol, dtype=bool)
    mask[2:5, 5:9, 5:9] = True
    mask[1, 6, 6] = True  # the fourth lesion slice, the smallest
    sal = S.normalize_map(rng.random(vol.shape), threshold=0.5)
    fig = S.plot_slices(vol, sal, mask=mask, by="lesion", n_slices=3, title="patient 1",
                        path=tmp_path / "a" / "slices.png")
    assert (tmp_path / "a" / "slices.png").stat().st_size > 1000
    assert [ax.get_title() for ax in fig.axes[:3]] == ["slice 2", "slice 3", "slice 4"]
    res = S.SaliencyMaps("guided_backprop", "prognosis", 1, None, "positive", 0.5,
                         maps={"base": {"1": sal, "2": sal}, "mt": {"1": sal, "2": sal}},
                         probs={"base": {"1": 0.2, "2": 0.9}, "mt": {"1": 0.4, "2": 0.7}})
    fig = S.plot_model_grid({"1": vol, "2": vol}, res, masks={"1": mask, "2": mask},
                            row_labels={"1": "Good prognosis (1)"},
                            path=tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 1000
    titles = [ax.get_title() for ax in fig.axes[:6]]
    assert titles == ["CT", "base\np = 0.20", "mt\np = 0.40", "", "p = 0.90", "p = 0.70"]
    # lesion slices 2-4 tie (16 voxels each): the most salient of them is shown
    expected = 2 + int(np.argmax(sal[2:5].sum(axis=(1, 2))))
    assert fig.axes[0].get_ylabel() == f"Good prognosis (1)\nslice {expected}"
    with pytest.raises(ValueError, match="shape"):
        S.plot_slices(vol, sal[:3])
    with pytest.raises(KeyError, match="no map for patient"):
        S.plot_model_grid({"3": vol}, res)


# -- a model trained on the phantom cohort --------------------------------------------------------
@pytest.mark.slow
def test_trained_model_looks_at_the_hematoma(tmp_path):
    """Guided backprop maps of a model trained on phantom scans put more of their mass on the
    lesion than on as many random brain voxels, and more than the lesion's share of the brain.

    The phantom is rendered without the lesions of head trauma: they are blood the outcome does
    not depend on, which a network trained for 3 epochs on 11 patients cannot learn to set
    aside; this checks the saliency pipeline, not that."""
    import ichprog
    from ichprog.data import PreprocessConfig, VolumeCache, load_volume, make_phantom_cohort
    from ichprog.training import TrainConfig

    cohort = make_phantom_cohort(16, seed=3, out_dir=tmp_path / "phantom", shape=(32, 80, 80),
                                 progress=False, trauma_lesions=False)
    ids = list(cohort.ids)
    test_ids, train_ids = ids[:5], ids[5:]
    cfg = PreprocessConfig(shape=(32, 64, 64))
    cache = VolumeCache(tmp_path / "cache", cfg)
    fitted = ichprog.fit_multitask(
        cohort, "baseline_densenet", trunk="densenet_tiny", preprocess=cfg,
        config=TrainConfig(max_epochs=3, batch_size=4, accumulation_steps=1, patience=None,
                           seed=0, device="cpu", progress=False),
        train_ids=train_ids, seed=0, augment=False, cache_dir=cache.root, progress=False)
    volumes, masks, brains = {}, {}, {}
    for pid in test_ids:
        volumes[pid] = cache.get(cohort.image_paths[pid])
        mask, affine = load_volume(cohort.mask_paths[pid])
        masks[pid] = S.mask_to_input_space(mask, affine, cfg)
        brains[pid] = S.brain_mask(volumes[pid])
    res = S.compute_maps({"trained": fitted}, volumes, method="guided_backprop",
                         threshold=0.5, progress=False)
    scores = S.lesion_scores(res, masks, brain_masks=brains)
    rng = np.random.default_rng(0)
    random_mass = []
    for pid in test_ids:
        m = res.maps["trained"][pid]
        inside = np.flatnonzero(brains[pid] & ~masks[pid])
        pick = rng.choice(inside, size=int(masks[pid].sum()), replace=False)
        random_mass.append(m.ravel()[pick].sum() / m.sum())
    lesion_mass = scores.set_index("patient").loc[test_ids, "mass_lesion"].to_numpy()
    random_mass = np.asarray(random_mass)
    assert (lesion_mass >= random_mass).all()
    assert lesion_mass.mean() > 5 * random_mass.mean()
    summary = S.summarize_lesion_scores(scores, metrics=["mass_lesion"]).iloc[0]
    assert summary.excess_low > 0  # above the chance level, with 95 % confidence


def test_figures_crop_to_the_head():
    vol = np.zeros((4, 16, 16), np.float32)
    vol[:, 4:12, 3:10] = 0.5  # the head; the rest is background at the window's minimum
    sal = np.zeros_like(vol)
    sal[2, 6, 6] = 1.0
    fig = S.plot_slices(vol, sal, slices=[2])
    # margin of 2 voxels: rows 2..13, columns 1..11
    assert fig.axes[0].images[0].get_array().shape == (12, 11)
    fig = S.plot_slices(vol, sal, slices=[2], crop=False)
    assert fig.axes[0].images[0].get_array().shape == (16, 16)


def test_scores_name_the_patient_column_patientid_and_old_tables_are_read():
    maps = {"m": {"a": np.ones((4, 6, 6), np.float32), "b": np.ones((4, 6, 6), np.float32)}}
    mask = np.zeros((4, 6, 6), bool)
    mask[1:3, 2:4, 2:4] = True
    scores = S.lesion_scores(maps, {"a": mask, "b": mask})
    assert list(scores.columns) == list(S.SCORE_COLUMNS)
    assert scores["PatientID"].tolist() == ["a", "b"]
    assert scores.columns[-1] == "patient"  # the deprecated copy, last
    old = _scores_table()  # a table written before the rename: column "patient"
    new = old.rename(columns={"patient": "PatientID"})
    pd.testing.assert_frame_equal(S.summarize_lesion_scores(old, n_resamples=50),
                                  S.summarize_lesion_scores(new, n_resamples=50))
    pd.testing.assert_frame_equal(S.compare_lesion_scores(old, "base", n_resamples=50),
                                  S.compare_lesion_scores(new, "base", n_resamples=50))


def test_figures_show_the_top_of_the_map_and_say_so():
    rng = np.random.default_rng(0)
    vol = np.zeros((4, 20, 20), np.float32)
    vol[:, 2:18, 2:18] = 0.5  # the head: 4 x 16 x 16 voxels
    sal = np.zeros_like(vol)
    sal[:, 2:18, 2:18] = rng.uniform(0.0, 0.4, size=(4, 16, 16))
    sal[1, 8, 8] = 1.0  # one bright voxel sets the scale: a 0.5 threshold would keep it alone
    fig = S.plot_slices(vol, sal, slices=[1], crop=False)
    shown = fig.axes[0].images[1].get_array()
    head = sal[1, 2:18, 2:18]
    cut = np.percentile(sal[:, 2:18, 2:18], 95)
    assert np.ma.count(shown) == int((head >= cut).sum()) > 1
    note = fig.texts[-1].get_text()
    assert "top 5 %" in note and f"saliency >= {cut:.2f}" in note and "5.1 % of head voxels" in note
    everything = S.plot_slices(vol, sal, slices=[1], crop=False, top=None)
    assert np.ma.count(everything.axes[0].images[1].get_array()) == int((head > 0).sum())
    assert "every non-zero voxel" in everything.texts[-1].get_text()
    with pytest.raises(ValueError, match="top must be a percentage"):
        S.plot_slices(vol, sal, top=0)
