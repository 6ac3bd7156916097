"""Where and how a model runs: the device, the autocast precision, the memory format, and the
seeds of the global random generators."""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> the first CUDA device if one is available, else the CPU.

    Parameters
    ----------
    device
        ``"auto"`` or anything :class:`torch.device` accepts.

    Returns
    -------
    torch.device
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was requested but CUDA is not available")
    return dev


def resolve_precision(precision: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """The autocast dtype (``None`` for float32) and whether a gradient scaler is needed.

    ``"auto"`` picks bfloat16 on CPUs and on GPUs that support it, float16 (with a gradient
    scaler) on older GPUs, and float32 on other devices.

    Parameters
    ----------
    precision
        ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"``.
    device
        The device the model runs on.
    """
    if precision == "fp32":
        return None, False
    if precision == "bf16":
        return torch.bfloat16, False
    if precision == "fp16":
        if device.type == "cpu":
            raise ValueError("precision='fp16' needs a GPU; use 'bf16' or 'fp32' on the CPU")
        return torch.float16, device.type == "cuda"
    if precision != "auto":
        raise ValueError(f"precision must be 'auto', 'bf16', 'fp16' or 'fp32', got {precision!r}")
    if device.type == "cpu":
        return torch.bfloat16, False
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, False
        return torch.float16, True
    return None, False


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators (all CUDA devices included).

    Parameters
    ----------
    seed
        A non-negative integer.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (global generator used by transforms)
    torch.manual_seed(seed)


def resolve_channels_last(channels_last: bool | None, device: torch.device,
                          amp_dtype: torch.dtype | None) -> bool:
    """``None`` -> ``True`` for bfloat16 autocast on a CPU, else ``False``; booleans pass."""
    if channels_last is None:
        return device.type == "cpu" and amp_dtype == torch.bfloat16
    return bool(channels_last)


def _to_device(x: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    if channels_last and x.ndim == 5:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return x
