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

from .datasets import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["AngleModel", "export_model", "FORMATS"]

FORMATS = ("torchscript", "onnx")
_SUFFIX = {"torchscript": "pt", "onnx": "onnx"}


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


def _check_target(out: Path, sidecar: Path, checkpoint: Path, fmt: str, overwrite: bool) -> None:
    """Refuse an ``out`` that is a folder, is the checkpoint (links followed), or exists
    (without ``overwrite``). Raises ValueError or FileExistsError."""
    import os

    source = os.path.realpath(checkpoint)
    for path in (out, sidecar):
        if path.is_dir():
            raise ValueError(f"--out {out} is a folder; name the file to write, e.g. {out / ('model.' + _SUFFIX[fmt])}"
                             if path == out else f"{path}, the description written beside --out, is a folder")
        if os.path.realpath(path) == source:
            link = " (through a link)" if os.path.abspath(path) != os.path.realpath(path) else ""
            raise ValueError(f"--out {out} would replace the checkpoint {checkpoint}{link}: choose another file "
                             "name (a checkpoint is never replaced by its export, even with --overwrite)")
    for path in (out, sidecar):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it, or choose another --out")


def _serialised(model: nn.Module, example: torch.Tensor, fmt: str) -> bytes:
    """The export in memory (a full disk then meets only Python's own write, an OSError)."""
    import io

    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and exporter notices about the decoding's constants
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(model, example), buffer)
        else:
            torch.onnx.export(model, (example,), buffer, input_names=["image"],
                              output_names=["angle_deg", "resultant_length"],
                              dynamic_axes={"image": {0: "batch"}, "angle_deg": {0: "batch"},
                                            "resultant_length": {0: "batch"}},
                              opset_version=17, dynamo=False)
    return buffer.getvalue()


def _read_back(model: nn.Module, fmt: str, size: int):
    """A check for :func:`rotation_utils.config.write_atomically`: the written file loads
    (``torch.jit.load``; onnxruntime, or ``onnx.checker`` without it) and answers the PyTorch
    model's angles on two inputs within 0.01°; else ValueError."""
    def verify(tmp: str) -> None:
        import numpy as np

        from .angles import circular_absolute_error_deg

        probe = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected = model(probe)[0].numpy()
        try:
            if fmt == "torchscript":
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice: TorchScript was asked for
                    answer = torch.jit.load(tmp)(probe)[0].numpy()
            else:
                try:
                    import onnxruntime
                except ImportError:
                    import onnx

                    onnx.checker.check_model(onnx.load(tmp))
                    return
                session = onnxruntime.InferenceSession(tmp, providers=["CPUExecutionProvider"])
                answer = session.run(None, {"image": probe.numpy()})[0]
        except Exception as err:  # noqa: BLE001 - whatever the loader says, the file is not right
            raise ValueError(f"the written {fmt} file does not load back ({err.__class__.__name__}: "
                             f"{str(err).strip().splitlines()[0] if str(err).strip() else ''})") from err
        worst = float(np.max(circular_absolute_error_deg(np.asarray(answer, dtype=np.float64),
                                                          expected.astype(np.float64))))
        if not worst < 1e-2:
            raise ValueError(f"the written {fmt} file answers up to {worst:.3g}° away from the checkpoint")
    return verify


def export_model(checkpoint, fmt: str, out, overwrite: bool = False) -> dict:
    """Export the checkpoint's network with its decoding (:class:`AngleModel`) to ``out``.

    fmt: ``"torchscript"`` (``torch.jit.trace``; load with ``torch.jit.load``) or ``"onnx"``
    (PyTorch's TorchScript-based exporter, opset 17, a dynamic batch axis; run with
    onnxruntime). Writes ``out`` and ``out`` + ``.json`` (the preprocessing and outputs), each to
    a temporary name that is read back (the export loaded and run on two inputs, its angles
    compared with the checkpoint's; the JSON parsed) and then renamed into place. Returns that
    JSON's dict. Raises FileExistsError when ``out`` exists and ``overwrite`` is False;
    ValueError for an unknown format, an ``out`` that is a folder or the checkpoint itself
    (links followed; never replaced, even with ``overwrite``), metadata that contradict the
    weights (:func:`rotation_utils.models.prediction_settings`) or an export that does not
    read back; OSError (errno ENOSPC) for a full disk, with nothing half-written left; and the
    errors of :func:`rotation_utils.models.load_checkpoint`.
    """
    from .config import write_bytes_atomically
    from .models import load_checkpoint, prediction_settings

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    sidecar = out.with_name(out.name + ".json")
    _check_target(out, sidecar, Path(checkpoint), fmt, overwrite)
    network, metadata = load_checkpoint(checkpoint, verbose=False)
    head, bins, size = prediction_settings(metadata, Path(checkpoint).name)
    model = AngleModel(network, head, bins).eval()
    data = _serialised(model, torch.zeros(1, 3, size, size), fmt)
    write_bytes_atomically(out, data, verify=_read_back(model, fmt, size))
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
    text = json.dumps(description, indent=1) + "\n"
    write_bytes_atomically(sidecar, text.encode(), verify=lambda tmp: json.loads(Path(tmp).read_text()))
    return description
