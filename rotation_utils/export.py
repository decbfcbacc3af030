"""Exporting a trained model for use outside PyTorch: TorchScript or ONNX (``rotation-course export``).

The exported network includes the head's decoding, so that it answers in degrees without the
course's code: input (N, 3, S, S) float32, RGB normalised with the ImageNet mean and standard
deviation (the centred largest square of the photo resized to S = the checkpoint's input size,
:func:`rotation_utils.datasets.to_model_input`); outputs ``angle_deg`` (N,), counter-clockwise in
[0, 360), and ``resultant_length`` (N,), the length of the head's answer on the circle (how sure
it is, :func:`rotation_utils.heads.resultant`). A JSON file beside the export says all this, with
the head and the input size.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import torch
from torch import nn

from .config import write_atomically
from .datasets import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["AngleModel", "export_model", "FORMATS"]

FORMATS = ("torchscript", "onnx")


class AngleModel(nn.Module):
    """A course network followed by its head's decoding: images (N, 3, S, S) → (angle_deg (N,),
    resultant_length (N,)). head, bins: as recorded in the checkpoint."""

    def __init__(self, network: nn.Module, head: str = "cos_sin_mse", bins: int = 72):
        super().__init__()
        self.network, self.head, self.bins = network.eval(), head, bins

    def forward(self, images: torch.Tensor):
        from .heads import resultant

        vector = resultant(self.head, self.network(images), self.bins)
        angle = torch.atan2(vector[:, 1], vector[:, 0]) * (180.0 / math.pi)  # (rad2deg has no ONNX form)
        return torch.remainder(angle, 360.0), torch.linalg.vector_norm(vector, dim=1)


def export_model(checkpoint, fmt: str, out, overwrite: bool = False) -> dict:
    """Export the checkpoint's network with its decoding (:class:`AngleModel`) to ``out``.

    fmt: ``"torchscript"`` (``torch.jit.trace``; load with ``torch.jit.load``) or ``"onnx"``
    (PyTorch's TorchScript-based exporter, opset 17, a dynamic batch axis; run with
    onnxruntime). Writes ``out`` and ``out`` + ``.json`` (the preprocessing and outputs), each to
    a temporary name renamed into place. Returns that JSON's dict. Raises FileExistsError when
    ``out`` exists and ``overwrite`` is False, ValueError for an unknown format, and the errors of
    :func:`rotation_utils.models.load_checkpoint`.
    """
    from .models import load_checkpoint

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    sidecar = out.with_name(out.name + ".json")
    for path in (out, sidecar):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it, or choose another --out")
    network, metadata = load_checkpoint(checkpoint, verbose=False)
    head, bins = metadata.get("head", "cos_sin_mse"), int(metadata.get("bins", 72))
    size = int(metadata.get("image_size") or (metadata.get("profile") or {}).get("image_size") or 224)
    model = AngleModel(network, head, bins).eval()
    example = torch.zeros(1, 3, size, size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and exporter notices about the decoding's constants
        if fmt == "torchscript":
            traced = torch.jit.trace(model, example)
            write_atomically(out, lambda tmp: torch.jit.save(traced, tmp))
        else:
            write_atomically(out, lambda tmp: torch.onnx.export(
                model, (example,), tmp, input_names=["image"], output_names=["angle_deg", "resultant_length"],
                dynamic_axes={"image": {0: "batch"}, "angle_deg": {0: "batch"}, "resultant_length": {0: "batch"}},
                opset_version=17, dynamo=False))
    description = {
        "format": fmt, "checkpoint": Path(checkpoint).name, "head": head, "bins": bins,
        "input": {"name": "image", "shape": ["N", 3, size, size], "dtype": "float32", "layout": "RGB, NCHW",
                  "preprocessing": "the centred largest square of the photo, resized to the input size, scaled to "
                                   "[0, 1], then normalised with mean and std", "mean": list(IMAGENET_MEAN),
                  "std": list(IMAGENET_STD)},
        "outputs": {"angle_deg": "the photo's rotation, degrees counter-clockwise in [0, 360); turn the photo by "
                                 "-angle_deg to straighten it",
                    "resultant_length": "the length of the head's answer on the circle: how sure it is"},
    }
    write_atomically(sidecar, lambda tmp: Path(tmp).write_text(json.dumps(description, indent=1) + "\n"))
    return description
