"""3D feature extractors ("trunks") shared by all heads of a multi-task model.

* ``"densenet121"``: MONAI's 3D DenseNet121 (dropout 0.2 in the dense layers) with its
  classification layers removed: a ``(N, 1024, d, h, w)`` feature map. Any keyword argument of
  :class:`monai.networks.nets.DenseNet` (``block_config``, ``growth_rate``, ``init_features``, ...)
  can be passed through ``trunk_kwargs``, which gives smaller DenseNets for tests and CPU demos
  through the same code path.
* ``"densenet_tiny"``: the same network with ``block_config=(2, 2, 2, 2)``, ``growth_rate=8``,
  ``init_features=16`` and no dropout (about 70 k parameters with three heads). With only 8
  channels added per layer, DenseNet121's dropout of 0.2 drowns what the layers learn: on the
  phantom cohort (128 patients, 4 folds) the multi-task model's out-of-fold prognosis AUC was
  0.56 with it and 0.79 without it, all else equal.
* ``"perez2023"``: the 3D CNN of Perez del Barrio et al. (2023): four unpadded 3x3x3 convolution
  blocks (16-32-64-128 channels) with ReLU, max pooling after the first three, ``Dropout3d(0.5)``
  after the second and ``BatchNorm3d`` after the last.

Each trunk comes with how its heads pool it (average after a ReLU for DenseNet, max for Perez et
al.) and the layer whose activations Grad-CAM uses by default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = ["TrunkSpec", "build_trunk", "TRUNKS", "PerezCNN", "Bf16SafeConv3d", "make_bf16_safe"]


class Bf16SafeConv3d(nn.Conv3d):
    """``Conv3d`` that leaves CPU bfloat16 autocast where the CPU kernels are wrong.

    With torch 2.13 on x86 CPUs (oneDNN), the backward pass of a bfloat16 3D convolution returns
    wrong or non-finite gradients when a spatial side of its input is larger than 1 but smaller
    than the kernel (for example a 3x3x3 convolution on a depth of 2, which is what DenseNet121's
    third dense block sees at the paper's input size of 40 x 301 x 301). Such calls run in
    float32 here; every other call is an ordinary ``Conv3d``. The module holds the same
    parameters as ``Conv3d``, so weights load either way.
    """

    def forward(self, input: Tensor) -> Tensor:
        if (input.device.type == "cpu" and torch.is_autocast_enabled("cpu")
                and torch.get_autocast_dtype("cpu") == torch.bfloat16
                and any(1 < s < k for s, k in zip(input.shape[2:], self.kernel_size))):
            with torch.autocast("cpu", enabled=False):
                return super().forward(input.float())
        return super().forward(input)


def make_bf16_safe(module: nn.Module) -> nn.Module:
    """Turn every ``nn.Conv3d`` inside ``module`` into a :class:`Bf16SafeConv3d`, in place.

    Parameters
    ----------
    module
        Any module; its parameters and ``state_dict`` keys are unchanged.

    Returns
    -------
    torch.nn.Module
        The same module.
    """
    for m in module.modules():
        if type(m) is nn.Conv3d:
            m.__class__ = Bf16SafeConv3d
    return module


@dataclass
class TrunkSpec:
    """A trunk module together with what its heads need to know about it.

    Attributes
    ----------
    module
        The feature extractor: ``(N, C, D, H, W)`` -> ``(N, n_features, d, h, w)``.
    n_features
        Channels of its output.
    pool
        Global pooling of the heads (``"avg"`` or ``"max"``).
    pre_activation
        Whether the heads apply a ReLU before pooling (DenseNet's features end with a norm).
    cam_layer
        Dotted name (inside ``module``) of the default Grad-CAM layer.
    min_size
        Smallest spatial side the trunk accepts.
    """

    module: nn.Module
    n_features: int
    pool: Literal["avg", "max"]
    pre_activation: bool
    cam_layer: str
    min_size: int


def _densenet(**kwargs: Any) -> TrunkSpec:
    from monai.networks.nets import DenseNet

    params: dict[str, Any] = {
        "spatial_dims": 3,
        "in_channels": 1,
        "out_channels": 1,
        "init_features": 64,
        "growth_rate": 32,
        "block_config": (6, 12, 24, 16),
        "dropout_prob": 0.2,
    }
    params.update(kwargs)
    net = DenseNet(**params)
    features = net.features
    # The number of channels of the last feature map is the input size of MONAI's last Linear.
    n_features = int(net.class_layers.out.in_features)  # type: ignore[union-attr,arg-type]
    return TrunkSpec(
        module=features,
        n_features=n_features,
        pool="avg",
        pre_activation=True,
        cam_layer="transition3.conv",
        min_size=29,
    )


def _densenet_tiny(**kwargs: Any) -> TrunkSpec:
    params: dict[str, Any] = {"block_config": (2, 2, 2, 2), "growth_rate": 8, "init_features": 16,
                              "dropout_prob": 0.0}
    params.update(kwargs)
    return _densenet(**params)


class PerezCNN(nn.Sequential):
    """Feature extractor of the Perez del Barrio et al. (2023) 3D CNN (without its classifier).

    Parameters
    ----------
    in_channels
        Input channels.
    channels
        Output channels of the four unpadded 3x3x3 convolution blocks.
    dropout
        ``Dropout3d`` probability after the second block.
    """

    def __init__(self, in_channels: int = 1, channels: tuple[int, int, int, int] = (16, 32, 64, 128),
                 dropout: float = 0.5):
        c1, c2, c3, c4 = channels
        super().__init__()
        self.add_module("conv1", nn.Conv3d(in_channels, c1, kernel_size=3))
        self.add_module("relu1", nn.ReLU())
        self.add_module("pool1", nn.MaxPool3d(2))
        self.add_module("conv2", nn.Conv3d(c1, c2, kernel_size=3))
        self.add_module("relu2", nn.ReLU())
        self.add_module("pool2", nn.MaxPool3d(2))
        self.add_module("drop2", nn.Dropout3d(dropout))
        self.add_module("conv3", nn.Conv3d(c2, c3, kernel_size=3))
        self.add_module("relu3", nn.ReLU())
        self.add_module("pool3", nn.MaxPool3d(2))
        self.add_module("conv4", nn.Conv3d(c3, c4, kernel_size=3))
        self.add_module("relu4", nn.ReLU())
        self.add_module("norm4", nn.BatchNorm3d(c4))


def _perez(**kwargs: Any) -> TrunkSpec:
    kwargs = dict(kwargs)
    kwargs.pop("spatial_dims", None)
    kwargs.pop("dropout_prob", None)
    module = PerezCNN(**kwargs)
    channels = kwargs.get("channels", (16, 32, 64, 128))
    return TrunkSpec(module=module, n_features=int(channels[-1]), pool="max", pre_activation=False,
                     cam_layer="conv4", min_size=38)


TRUNKS: dict[str, Callable[..., TrunkSpec]] = {
    "densenet121": _densenet,
    "densenet_tiny": _densenet_tiny,
    "perez2023": _perez,
}


def build_trunk(name: str, in_channels: int = 1, dropout: float | None = None,
                **kwargs: Any) -> TrunkSpec:
    """Build a registered trunk by name.

    Parameters
    ----------
    name
        A key of :data:`TRUNKS`: ``"densenet121"``, ``"densenet_tiny"`` or ``"perez2023"``.
    in_channels
        Input channels.
    dropout
        Dropout probability; ``None`` keeps the trunk's default.
    **kwargs
        Passed to the trunk's constructor (e.g. ``block_config`` for the DenseNets).

    Returns
    -------
    TrunkSpec

    Raises
    ------
    ValueError
        For an unknown name (the message lists the known ones).
    """
    try:
        factory = TRUNKS[name]
    except KeyError:
        raise ValueError(f"unknown trunk {name!r}; known trunks: {sorted(TRUNKS)}") from None
    kwargs["in_channels"] = in_channels
    if dropout is not None:
        kwargs["dropout" if name == "perez2023" else "dropout_prob"] = dropout
    return factory(**kwargs)
