"""Devices and numeric precision: which device trains, and in which floating-point type.

Taught in notebook 04 (mixed precision). A module of its own so that training and evaluation
share it without importing each other: ``training`` imports ``evaluation`` (for the validation
after each epoch), and both import this.
"""
from __future__ import annotations

import torch

__all__ = ["default_device", "cpu_supports_bf16", "autocast_dtype", "for_inference", "inference_input"]


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


def for_inference(model: torch.nn.Module, device) -> torch.nn.Module:
    """The model on ``device`` in eval mode, and on a CPU in the channels-last memory format.

    Channels-last (NHWC) convolutions run about 1.8–2.1× faster than the default layout on the
    course's CPUs for EfficientNet-Lite0 and ResNet18 at 160 px (``benchmarks/inference_layout.py``
    measures both side by side); the outputs agree to float32 rounding (about 1e-6). Pair it
    with :func:`inference_input`. The model is changed in place (the layout of its 4-D
    weights, not their values) and returned.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model


def inference_input(images: torch.Tensor, device) -> torch.Tensor:
    """A batch of images (N, C, H, W) on ``device``, channels-last on a CPU (see
    :func:`for_inference`); other shapes are only moved."""
    device = torch.device(device)
    images = images.to(device)
    if device.type == "cpu" and images.dim() == 4:
        images = images.contiguous(memory_format=torch.channels_last)
    return images
