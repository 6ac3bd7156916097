"""Guided backpropagation, Grad-CAM and guided Grad-CAM for any head of a multi-task network.

The gradient machinery is captum's (:class:`captum.attr.GuidedBackprop` and
:class:`captum.attr.LayerGradCam`); this module adds what a multi-task 3D CT model needs around
it:

* it works on a private copy of the network in evaluation mode with every in-place activation
  made out-of-place (MONAI's DenseNet uses ``ReLU(inplace=True)``, which guided backpropagation
  cannot hook), so the caller's model is never modified;
* it selects one logit of one head, with a sign, so that every head and every class can be
  explained (see :func:`resolve_target`);
* Grad-CAM maps are upsampled (trilinearly) to the input, and every map is min-max normalised with
  an explicit sign convention (:func:`normalize_map`), optionally thresholded as in the paper.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

__all__ = [
    "METHODS",
    "SIGNS",
    "ConstantMapWarning",
    "Explainer",
    "SaliencyMaps",
    "as_network",
    "compute_maps",
    "gradcam",
    "guided_backprop",
    "guided_gradcam",
    "normalize_map",
    "predict_probability",
    "resolve_target",
    "saliency_map",
]

Method = Literal["guided_backprop", "gradcam", "guided_gradcam"]
Sign = Literal["positive", "negative", "absolute", "all"]

#: The saliency methods, by name.
METHODS: tuple[str, ...] = ("guided_backprop", "gradcam", "guided_gradcam")
#: How the sign of a raw map is handled before normalisation (see :func:`normalize_map`).
SIGNS: tuple[str, ...] = ("positive", "negative", "absolute", "all")


class ConstantMapWarning(UserWarning):
    """A saliency map had no variation (for example no evidence of the requested sign)."""


# -- the model ------------------------------------------------------------------------------------
def as_network(model: Any) -> nn.Module:
    """The torch network behind ``model``.

    Parameters
    ----------
    model
        A :class:`torch.nn.Module` (usually a :class:`~ichprog.models.MultiTaskNet`), or a fitted
        model object that holds one as ``.net`` or ``.model``.

    Returns
    -------
    torch.nn.Module
        The network itself (not a copy).

    Raises
    ------
    TypeError
        ``model`` is neither a module nor holds one.
    """
    if isinstance(model, nn.Module):
        return model
    for attr in ("net", "model"):
        net = getattr(model, attr, None)
        if isinstance(net, nn.Module):
            return net
    raise TypeError(
        f"expected a torch.nn.Module (e.g. ichprog.models.MultiTaskNet) or an object holding one "
        f"as .net or .model, got {type(model).__name__}"
    )


def _task_kinds(net: nn.Module) -> dict[str, tuple[str, int]]:
    """``{task name: (kind, n_classes)}`` for networks that know their tasks (MultiTaskNet)."""
    tasks = getattr(net, "tasks", None)
    out: dict[str, tuple[str, int]] = {}
    if tasks is None:
        return out
    for t in tasks:
        name, kind, n_classes = getattr(t, "name", None), getattr(t, "kind", None), \
            getattr(t, "n_classes", None)
        if isinstance(name, str) and isinstance(kind, str) and isinstance(n_classes, int):
            out[name] = (kind, n_classes)
    return out


def resolve_target(kind: str, n_classes: int, target: int, task: str = "") -> tuple[int, float]:
    """Which logit of a head a class ``target`` explains, and with which sign.

    The explained quantity is always one logit of the task's head, or its negation:

    * **binary** heads (one logit for P(y = 1)): ``target=1`` explains the logit (evidence for
      class 1), ``target=0`` its negation (evidence for class 0). For the prognosis head,
      ``target=1`` is the evidence for a poor prognosis, which is what the paper showed for every
      patient.
    * **ordinal** heads with ``K`` classes (``K - 1`` cumulative logits, output ``j`` for
      P(y > j)): ``target=k`` with ``1 <= k <= K - 1`` explains cumulative logit ``k - 1``, the
      evidence for ``y >= k`` (for the ordinal GCS, ``target=2`` is the evidence for a severe GCS
      and ``target=1`` for at least moderate); ``target=0`` explains the negation of logit 0, the
      evidence for the lowest class.
    * **continuous** heads (one output): ``target=1`` explains an increase of the output,
      ``target=0`` a decrease.

    Parameters
    ----------
    kind
        ``"binary"``, ``"ordinal"`` or ``"continuous"``.
    n_classes
        Number of classes of the task (2 for binary heads).
    target
        The class whose evidence is explained.
    task
        The task's name, for error messages.

    Returns
    -------
    index : int
        Column of the head's logits.
    sign : float
        ``+1.0`` or ``-1.0``.

    Raises
    ------
    ValueError
        ``target`` is not a class of the task, or ``kind`` is unknown.

    Examples
    --------
    >>> resolve_target("binary", 2, 0)
    (0, -1.0)
    >>> resolve_target("ordinal", 3, 2)
    (1, 1.0)
    """
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise ValueError(f"task {task!r}: target must be an integer class, got {target!r}")
    target = int(target)
    valid: tuple[int, ...]
    if kind in ("binary", "continuous"):
        valid = (0, 1)
    elif kind == "ordinal":
        valid = tuple(range(n_classes))
    else:
        raise ValueError(f"task {task!r}: unknown kind {kind!r}; expected binary, ordinal or "
                         "continuous")
    if target not in valid:
        raise ValueError(
            f"task {task!r} ({kind}, {n_classes} classes): target must be one of {list(valid)}, "
            f"got {target}"
        )
    if target == 0:
        return 0, -1.0
    return (target - 1 if kind == "ordinal" else 0), 1.0


class _SelectedLogit(nn.Module):
    """``sign * net(x)[task][:, index]``: one scalar per sample, as captum expects."""

    def __init__(self, net: nn.Module, task: str | None, index: int, sign: float):
        super().__init__()
        self.net = net
        self.task = task
        self.index = index
        self.sign = sign

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if isinstance(out, Mapping):
            if self.task not in out:
                raise KeyError(f"the model has no head {self.task!r}; heads: {sorted(out)}")
            logits = out[self.task]
        elif isinstance(out, torch.Tensor):
            logits = out
        else:
            raise TypeError(f"the model returned {type(out).__name__}; expected a dict of logits "
                            "by task name or one tensor")
        logits = logits.reshape(x.shape[0], -1)
        if self.index >= logits.shape[1]:
            raise ValueError(f"head {self.task!r} has {logits.shape[1]} output(s); cannot explain "
                             f"output {self.index}")
        return self.sign * logits[:, self.index]


def _private_copy(net: nn.Module) -> nn.Module:
    """A copy in evaluation mode, with frozen parameters and no in-place operations."""
    clone = copy.deepcopy(net)
    clone.eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    for module in clone.modules():
        # ReLU, LeakyReLU, ELU, Dropout, ...: hooks on in-place outputs fail in autograd.
        if getattr(module, "inplace", False) is True:
            module.inplace = False  # type: ignore[assignment]
    return clone


def _device_of(net: nn.Module) -> torch.device:
    for p in net.parameters():
        return p.device
    for b in net.buffers():
        return b.device
    return torch.device("cpu")


def _as_batch(volume: Any) -> tuple[torch.Tensor, tuple[int, ...]]:
    """(D, H, W) or (1, D, H, W) array/tensor -> float32 tensor (1, 1, D, H, W) and its shape."""
    if isinstance(volume, torch.Tensor):
        t = volume.detach().to(torch.float32).cpu()
    else:
        try:
            arr = np.asarray(volume, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"volume must be a numeric array or tensor: {exc}") from exc
        t = torch.from_numpy(np.ascontiguousarray(arr))
    shape = tuple(int(n) for n in t.shape)
    if t.ndim == 4 and shape[0] == 1:
        t = t[0]
    elif t.ndim != 3:
        raise ValueError(
            f"volume must be (D, H, W) or (1, D, H, W), got shape {shape}; pass one pre-processed "
            "volume at a time"
        )
    if not bool(torch.isfinite(t).all()):
        n_bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"volume of shape {shape} has {n_bad} NaN or infinite voxel(s)")
    return t[None, None].contiguous(), shape


# -- normalisation --------------------------------------------------------------------------------
def normalize_map(raw: Any, sign: Sign = "positive", threshold: float | None = None,
                  name: str = "map") -> np.ndarray:
    """Min-max normalise a raw saliency map to [0, 1], with an explicit sign convention.

    Parameters
    ----------
    raw
        The raw map (any shape); high values are evidence *for* the explained class.
    sign
        ``"positive"`` keeps the evidence for the class (negative values become 0 before
        scaling), ``"negative"`` keeps the evidence against it (as positive values),
        ``"absolute"`` takes magnitudes, ``"all"`` scales the signed values (0 then lands
        between 0 and 1).
    threshold
        If given, values below it (after scaling) are set to 0, as in the paper (0.5); values
        at or above it are kept unchanged. Must lie in [0, 1].
    name
        Names the map in warnings and errors.

    Returns
    -------
    numpy.ndarray
        float32, same shape, ``min = 0`` and ``max = 1`` unless the map is constant, in which case
        it is all zeros and a :class:`ConstantMapWarning` is emitted.

    Raises
    ------
    ValueError
        Unknown ``sign``, ``threshold`` outside [0, 1], or non-finite values.

    Examples
    --------
    >>> normalize_map([-2.0, 0.0, 1.0, 2.0]).tolist()
    [0.0, 0.0, 0.5, 1.0]
    >>> normalize_map([-2.0, 0.0, 1.0, 2.0], sign="all").tolist()
    [0.0, 0.5, 0.75, 1.0]
    """
    if sign not in SIGNS:
        raise ValueError(f"sign must be one of {SIGNS}, got {sign!r}")
    if threshold is not None and not (0.0 <= float(threshold) <= 1.0):
        raise ValueError(f"threshold must lie in [0, 1] (the map is scaled to [0, 1]), got "
                         f"{threshold!r}")
    m = np.asarray(raw, dtype=np.float64)
    if not np.isfinite(m).all():
        raise ValueError(f"{name}: {int((~np.isfinite(m)).sum())} non-finite value(s)")
    if sign == "positive":
        m = np.maximum(m, 0.0)
    elif sign == "negative":
        m = np.maximum(-m, 0.0)
    elif sign == "absolute":
        m = np.abs(m)
    lo, hi = (float(m.min()), float(m.max())) if m.size else (0.0, 0.0)
    if not hi > lo:
        warnings.warn(
            f"{name} is constant after taking sign={sign!r} (e.g. no evidence of that sign for "
            "the explained class); returning zeros",
            ConstantMapWarning,
            stacklevel=2,
        )
        return np.zeros(m.shape, dtype=np.float32)
    out = (m - lo) / (hi - lo)
    if threshold is not None:
        out = np.where(out >= float(threshold), out, 0.0)
    return out.astype(np.float32)


# -- the explainer --------------------------------------------------------------------------------
class Explainer:
    """Saliency maps of one network, reusable across volumes, tasks and classes.

    The network is copied once (evaluation mode, frozen parameters, in-place activations made
    out-of-place) and the copy is used for every map; the caller's model is never changed.

    Parameters
    ----------
    model
        A :class:`~ichprog.models.MultiTaskNet`, any module returning ``{task: logits}`` (or one
        logits tensor), or a fitted model holding one as ``.net`` / ``.model``.
    layer
        Default Grad-CAM layer: a dotted module name inside the network (e.g.
        ``"trunk.transition3.conv"``) or one of its modules. ``None`` uses the network's
        ``cam_layer`` (the paper's ``transition3.conv`` for DenseNet121, ``conv4`` for the
        Perez et al. trunk).
    device
        Where to compute; defaults to the device of the network's parameters.

    Notes
    -----
    Guided backpropagation replaces the gradient of every :class:`torch.nn.ReLU` *module* by its
    positive part. ReLUs applied as functions (``torch.relu`` inside ``forward``) are not
    guided; every network of :mod:`ichprog.models` uses modules.
    """

    def __init__(self, model: Any, layer: str | nn.Module | None = None,
                 device: str | torch.device | None = None):
        source = as_network(model)
        self.kinds = _task_kinds(source)
        self.layer_name = self._layer_name(source, layer)
        self.net = _private_copy(source)
        self.device = torch.device(device) if device is not None else _device_of(source)
        self.net.to(self.device)
        self._n_out: dict[str | None, int] = {}

    @staticmethod
    def _layer_name(net: nn.Module, layer: str | nn.Module | None) -> str | None:
        if layer is None:
            name = getattr(net, "cam_layer", None)
            return name if isinstance(name, str) else None
        if isinstance(layer, nn.Module):
            for name, module in net.named_modules():
                if module is layer:
                    return name
            raise ValueError("layer is a module that is not part of the model")
        if not isinstance(layer, str):
            raise TypeError(f"layer must be a dotted module name or a module, got {layer!r}")
        return layer

    def _layer(self, layer: str | None) -> tuple[str, nn.Module]:
        name = layer if layer is not None else self.layer_name
        if name is None:
            raise ValueError("this model has no default Grad-CAM layer (cam_layer); pass layer=, "
                             "a dotted module name such as 'trunk.conv4'")
        try:
            return name, self.net.get_submodule(name)
        except AttributeError:
            convs = [n for n, m in self.net.named_modules() if isinstance(m, nn.Conv3d)]
            raise ValueError(f"the model has no layer {name!r}; its 3D convolutions are: "
                             f"{convs[-8:]}{' (last 8)' if len(convs) > 8 else ''}") from None

    def _selected(self, task: str | None, target: int) -> _SelectedLogit:
        if task is not None and self.kinds and task not in self.kinds:
            raise KeyError(f"the model has no task {task!r}; tasks: {sorted(self.kinds)}")
        if task is not None and task in self.kinds:
            kind, n_classes = self.kinds[task]
        else:
            kind, n_classes = self._infer_kind(task)
        index, sign = resolve_target(kind, n_classes, target, task=str(task))
        return _SelectedLogit(self.net, task, index, sign)

    def _infer_kind(self, task: str | None) -> tuple[str, int]:
        """For networks without Task metadata: one output = binary, k outputs = ordinal."""
        n_out = self._n_out[task]
        return ("binary", 2) if n_out == 1 else ("ordinal", n_out + 1)

    def _probe(self, x: torch.Tensor, task: str | None) -> None:
        """Learn output widths of networks that carry no task metadata."""
        if self.kinds:
            if task not in self.kinds:
                raise KeyError(f"the model has no task {task!r}; tasks: {sorted(self.kinds)}")
            return
        if task in self._n_out:
            return
        with torch.no_grad():
            out = self.net(x)
        widths: dict[str | None, int] = {}
        if isinstance(out, Mapping):
            if task not in out:
                raise KeyError(f"the model has no head {task!r}; heads: {sorted(out)}")
            widths = {k: int(v.reshape(x.shape[0], -1).shape[1]) for k, v in out.items()}
        else:
            widths[task] = int(out.reshape(x.shape[0], -1).shape[1])
        self._n_out.update(widths)

    # -- raw maps ---------------------------------------------------------------------------------
    def _raw_guided(self, wrapper: nn.Module, x: torch.Tensor) -> torch.Tensor:
        from captum.attr import GuidedBackprop

        with warnings.catch_warnings():
            # captum announces its (temporary) ReLU hooks on every call
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            with torch.enable_grad():
                return GuidedBackprop(wrapper).attribute(x.clone().requires_grad_(True)).detach()

    def _raw_cam(self, wrapper: nn.Module, x: torch.Tensor, layer: str | None) -> torch.Tensor:
        from captum.attr import LayerGradCam

        name, module = self._layer(layer)
        with torch.enable_grad():
            cam = LayerGradCam(wrapper, module).attribute(x.clone().requires_grad_(True),
                                                          relu_attributions=True)
        cam = cam.detach()
        if cam.ndim != 5:
            raise ValueError(f"Grad-CAM needs a layer with a 3D feature map (N, C, d, h, w); "
                             f"{name!r} gives shape {tuple(cam.shape)}")
        return nn.functional.interpolate(cam, size=tuple(x.shape[2:]), mode="trilinear",
                                         align_corners=False)

    def raw(self, volume: Any, method: Method = "guided_gradcam", task: str | None = "prognosis",
            target: int = 1, layer: str | None = None) -> np.ndarray:
        """The raw (signed, unscaled) map, at the input's size.

        Parameters are those of :meth:`explain`. Returns a float32 array of shape (D, H, W).
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        x, _ = _as_batch(volume)
        x = x.to(self.device)
        self._probe(x, task)
        wrapper = self._selected(task, target)
        if method == "guided_backprop":
            out = self._raw_guided(wrapper, x)
        elif method == "gradcam":
            out = self._raw_cam(wrapper, x, layer)
        else:
            out = self._raw_guided(wrapper, x) * self._raw_cam(wrapper, x, layer)
        return out[0, 0].float().cpu().numpy()

    def explain(self, volume: Any, method: Method = "guided_gradcam",
                task: str | None = "prognosis", target: int = 1, layer: str | None = None,
                sign: Sign = "positive", normalize: bool = True,
                threshold: float | None = None) -> np.ndarray:
        """A saliency map of one volume.

        Parameters
        ----------
        volume
            One pre-processed volume, (D, H, W) or (1, D, H, W), numpy array or tensor.
        method
            ``"guided_backprop"``, ``"gradcam"`` or ``"guided_gradcam"`` (guided backpropagation
            times the Grad-CAM map upsampled to the input).
        task
            The head to explain (``None`` for a network that returns one tensor).
        target
            The class whose evidence is explained (see :func:`resolve_target`).
        layer
            Grad-CAM layer for this call (default: the explainer's).
        sign, threshold
            See :func:`normalize_map`. Grad-CAM maps are non-negative by construction.
        normalize
            Min-max scale to [0, 1] (default). With ``False`` the raw map is returned (signed
            for the guided methods) and ``sign`` and ``threshold`` must keep their defaults.

        Returns
        -------
        numpy.ndarray
            float32, the volume's shape ((D, H, W) or (1, D, H, W)), same voxel order.
        """
        _, shape = _as_batch(volume)
        raw = self.raw(volume, method=method, task=task, target=target, layer=layer)
        if not normalize:
            if threshold is not None or sign != "positive":
                raise ValueError("sign and threshold apply to normalised maps; pass "
                                 "normalize=True or leave them at their defaults")
            return raw.reshape(shape)
        label = f"{method} map of task {task!r}, target {target}"
        return normalize_map(raw, sign=sign, threshold=threshold, name=label).reshape(shape)

    def predict_probability(self, volume: Any, task: str | None = "prognosis",
                            target: int = 1) -> float:
        """The probability of the explained class: ``sigmoid(sign * logit)``.

        For a binary head this is P(y = target); for an ordinal head and ``target = k >= 1`` it
        is P(y >= k), and for ``target = 0`` P(y = 0). For a continuous head it is the sigmoid of
        the (signed) output, which is not a probability.
        """
        x, _ = _as_batch(volume)
        x = x.to(self.device)
        self._probe(x, task)
        wrapper = self._selected(task, target)
        with torch.no_grad():
            return float(torch.sigmoid(wrapper(x))[0].item())


# -- one-call functions ---------------------------------------------------------------------------
def saliency_map(model: Any, volume: Any, method: Method = "guided_gradcam",
                 task: str | None = "prognosis", target: int = 1,
                 layer: str | nn.Module | None = None, sign: Sign = "positive",
                 normalize: bool = True, threshold: float | None = None) -> np.ndarray:
    """A saliency map of one volume by name of the method; see :meth:`Explainer.explain`.

    For many volumes, build one :class:`Explainer` (or use :func:`compute_maps`) so that the
    network is copied once.
    """
    return Explainer(model, layer=layer).explain(volume, method=method, task=task, target=target,
                                                 sign=sign, normalize=normalize,
                                                 threshold=threshold)


def guided_backprop(model: Any, volume: Any, task: str | None = "prognosis", target: int = 1,
                    sign: Sign = "positive", normalize: bool = True,
                    threshold: float | None = None) -> np.ndarray:
    """Guided backpropagation map of one head and class (Springenberg et al. 2015).

    The gradient of the explained logit with respect to the input voxels, where every ReLU lets
    only positive gradients through.

    Parameters
    ----------
    model
        A :class:`~ichprog.models.MultiTaskNet` (or a fitted model holding one as ``.net`` /
        ``.model``). It is not modified: the map is computed on a private copy.
    volume
        One pre-processed volume, (D, H, W) or (1, D, H, W), numpy array or tensor.
    task
        The head to explain: ``"prognosis"``, ``"gcs"``, ``"age"``, ...
    target
        The class whose evidence is explained: for binary heads 1 (the logit) or 0 (its
        negation); for ordinal heads ``k`` explains the cumulative logit of ``y >= k`` (see
        :func:`resolve_target`).
    sign
        Which evidence to keep before scaling (see :func:`normalize_map`); by default the evidence
        *for* the class.
    normalize
        Min-max scale to [0, 1]; ``False`` returns the raw signed gradient.
    threshold
        Set scaled values below it to 0 (the paper used 0.5).

    Returns
    -------
    numpy.ndarray
        float32 map of the volume's shape and voxel order.

    Examples
    --------
    >>> import numpy as np
    >>> from ichprog.models import MultiTaskNet
    >>> from ichprog.saliency import guided_backprop
    >>> net = MultiTaskNet("mt_ord_gcs_bin_age", trunk="densenet_tiny")
    >>> volume = np.random.default_rng(0).random((32, 64, 64), dtype=np.float32)
    >>> m = guided_backprop(net, volume, task="gcs", target=2)
    >>> m.shape, float(m.min()), float(m.max())
    ((32, 64, 64), 0.0, 1.0)
    """
    return Explainer(model).explain(volume, method="guided_backprop", task=task, target=target,
                                    sign=sign, normalize=normalize, threshold=threshold)


def gradcam(model: Any, volume: Any, task: str | None = "prognosis", target: int = 1,
            layer: str | nn.Module | None = None, normalize: bool = True,
            threshold: float | None = None) -> np.ndarray:
    """Grad-CAM map of one head and class (Selvaraju et al. 2017), upsampled to the input.

    The layer's activations weighted by the spatial mean of the explained logit's gradient, summed
    over channels, passed through a ReLU and upsampled trilinearly to the volume's size.

    Parameters
    ----------
    model, volume, task, target
        See :func:`guided_backprop`.
    layer
        Dotted module name inside the network, or one of its modules; default the network's
        ``cam_layer`` (``"trunk.transition3.conv"`` for DenseNet121, as in the paper;
        ``"trunk.conv4"`` for the Perez et al. trunk).
    normalize, threshold
        See :func:`guided_backprop`.

    Returns
    -------
    numpy.ndarray
        float32 map of the volume's shape, non-negative.

    Notes
    -----
    The feature map is stretched over the whole volume. For unpadded convolutions (the Perez et al.
    trunk) the feature map covers slightly less than the volume, so the map is only approximately
    aligned near the borders.
    """
    return Explainer(model, layer=layer).explain(volume, method="gradcam", task=task,
                                                 target=target, normalize=normalize,
                                                 threshold=threshold)


def guided_gradcam(model: Any, volume: Any, task: str | None = "prognosis", target: int = 1,
                   layer: str | nn.Module | None = None, sign: Sign = "positive",
                   normalize: bool = True, threshold: float | None = None) -> np.ndarray:
    """Guided Grad-CAM map: guided backpropagation times the upsampled Grad-CAM map.

    The product is taken on the raw maps and then scaled.

    Parameters
    ----------
    model, volume, task, target, sign, normalize, threshold
        See :func:`guided_backprop`.
    layer
        See :func:`gradcam`.

    Returns
    -------
    numpy.ndarray
        float32 map of the volume's shape and voxel order.
    """
    return Explainer(model, layer=layer).explain(volume, method="guided_gradcam", task=task,
                                                 target=target, sign=sign, normalize=normalize,
                                                 threshold=threshold)


def predict_probability(model: Any, volume: Any, task: str | None = "prognosis",
                        target: int = 1) -> float:
    """Probability of the explained class for one volume; see
    :meth:`Explainer.predict_probability`."""
    return Explainer(model).predict_probability(volume, task=task, target=target)


# -- many models, many patients -------------------------------------------------------------------
@dataclass
class SaliencyMaps:
    """Maps of several models for the same patients, with each model's predicted probability.

    Attributes
    ----------
    method, task, target, layer, sign, threshold
        How the maps were computed (``layer`` is ``None`` for the model's default).
    maps
        ``{model name: {patient ID: float32 map}}``, in the order models and patients were given.
    probs
        ``{model name: {patient ID: probability of the explained class}}``.
    """

    method: str
    task: str | None
    target: int
    layer: str | None
    sign: str
    threshold: float | None
    maps: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    probs: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        """Model names, in the order given."""
        return list(self.maps)

    @property
    def patients(self) -> list[str]:
        """Patient IDs, in the order given."""
        first = next(iter(self.maps.values()), {})
        return list(first)

    def to_frame(self) -> Any:
        """Predicted probabilities as a tidy ``DataFrame`` (``model``, ``patient``,
        ``probability``)."""
        import pandas as pd

        rows = [{"model": m, "patient": pid, "probability": p}
                for m, by_pid in self.probs.items() for pid, p in by_pid.items()]
        return pd.DataFrame(rows, columns=["model", "patient", "probability"])


def _iter_volumes(volumes: Any) -> Iterator[tuple[str, Any]]:
    """(patient ID, volume) pairs from a mapping, a dataset of item dicts, or pairs."""
    if isinstance(volumes, Mapping):
        for pid, vol in volumes.items():
            yield str(pid), vol
        return
    if hasattr(volumes, "__getitem__") and hasattr(volumes, "__len__") \
            and not isinstance(volumes, (str, bytes)):
        for i in range(len(volumes)):
            item = volumes[i]
            if isinstance(item, Mapping):
                if "image" not in item:
                    raise KeyError(f"dataset item {i} has no 'image' key (keys: {sorted(item)})")
                yield str(item.get("id", i)), item["image"]
            elif isinstance(item, Sequence) and len(item) == 2 and not hasattr(item, "shape"):
                yield str(item[0]), item[1]
            else:
                raise TypeError(f"item {i}: expected a dict with 'image' and 'id' (a CTDataset "
                                f"item) or an (ID, volume) pair, got {type(item).__name__}")
        return
    for i, item in enumerate(volumes):
        try:
            pid, vol = item
        except (TypeError, ValueError):
            raise TypeError(f"item {i}: expected an (ID, volume) pair") from None
        yield str(pid), vol


def compute_maps(models: Any, volumes: Mapping[str, Any] | Iterable[Any],
                 method: Method = "guided_gradcam", task: str | None = "prognosis",
                 target: int = 1, layer: str | None = None, sign: Sign = "positive",
                 threshold: float | None = None, progress: bool = True) -> SaliencyMaps:
    """Maps and predicted probabilities of several models for many patients.

    Each volume is read once and explained by every model; each network is copied once.

    Parameters
    ----------
    models
        ``{name: model}`` (in display order), or one model (named ``"model"``).
    volumes
        ``{patient ID: volume}``, a :class:`~ichprog.data.CTDataset` (its items' ``"image"`` and
        ``"id"``; build it with ``augment=False``), or an iterable of ``(ID, volume)`` pairs.
    method, task, target, sign, threshold
        See :meth:`Explainer.explain`.
    layer
        Grad-CAM layer (dotted name) used for every model; default each model's ``cam_layer``.
    progress
        Show a progress bar (tqdm) over patients x models.

    Returns
    -------
    SaliencyMaps
        Normalised maps of each volume's shape and the probability of the explained class.

    Raises
    ------
    ValueError
        A patient ID occurs twice, or a map cannot be computed (the message names the model and
        the patient).

    Examples
    --------
    All test patients of a fold, for several models::

        ds = ichprog.data.CTDataset(cohort, fold.test, config)
        res = compute_maps({"baseline": base, "MT": mt}, ds, method="guided_backprop")
    """
    from tqdm.auto import tqdm

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    named = dict(models) if isinstance(models, Mapping) else {"model": models}
    if not named:
        raise ValueError("no model given")
    explainers = {name: Explainer(m, layer=layer) for name, m in named.items()}
    result = SaliencyMaps(method=method, task=task, target=target, layer=layer, sign=sign,
                          threshold=threshold, maps={n: {} for n in named},
                          probs={n: {} for n in named})
    total = len(volumes) * len(named) if isinstance(volumes, Sized) else None
    with tqdm(total=total, disable=not progress, desc=f"{method} maps", unit="map") as bar:
        for pid, vol in _iter_volumes(volumes):
            if pid in result.maps[next(iter(named))]:
                raise ValueError(f"patient {pid!r} occurs twice in volumes")
            for name, ex in explainers.items():
                try:
                    result.maps[name][pid] = ex.explain(vol, method=method, task=task,
                                                        target=target, sign=sign,
                                                        threshold=threshold)
                    result.probs[name][pid] = ex.predict_probability(vol, task=task,
                                                                     target=target)
                except (ValueError, KeyError, TypeError, RuntimeError) as exc:
                    raise type(exc)(f"model {name!r}, patient {pid!r}: {exc}") from exc
                bar.update(1)
    return result
