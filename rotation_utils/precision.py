"""Devices and numeric precision: which device trains, and in which floating-point type.

Taught in notebook 04 (mixed precision). A module of its own so that training and evaluation
share it without importing each other: ``training`` imports ``evaluation`` (for the validation
after each epoch), and both import this.
"""
from __future__ import annotations

import torch

__all__ = ["default_device", "cpu_supports_bf16", "autocast_dtype"]


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def cpu_supports_bf16() -> bool:
    """True when the CPU has native bfloat16 instructions (AVX512-BF16 or AMX) for oneDNN."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast_dtype(device, cpu_bf16: bool = False) -> torch.dtype | None:
    """Mixed-precision type for a device: bfloat16 on GPUs that support it, float16 (with a
    gradient scaler) on older GPUs; on a CPU bfloat16 only when ``cpu_bf16`` is asked for and
    the CPU has native bfloat16 instructions, else None (float32).

    device: a ``torch.device`` or its name. Returns a ``torch.dtype`` or None.
    """
    device = torch.device(device)
    if device.type == "cpu":
        return torch.bfloat16 if cpu_bf16 and cpu_supports_bf16() else None
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
