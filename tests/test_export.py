"""`rotation-course export`: the exported model gives the PyTorch model's angles on real photos."""
import json

import numpy as np
import pytest
import torch
from torchvision.transforms.functional import pil_to_tensor

from rotation_utils import angles, cli, heads, models, reference, rotation, sources
from rotation_utils.datasets import to_model_input


@pytest.fixture(scope="module")
def photo_batch():
    checkpoint = reference.reference_checkpoint()
    if checkpoint is None:
        pytest.skip("no reference checkpoint")
    model, metadata = models.load_checkpoint(checkpoint, verbose=False)
    photos = sources.packaged_photos()[:4]
    images = [rotation.rotate_image(sources.load_image(p), angle, border="crop")
              for p, angle in zip(photos, (0.0, 35.0, 100.0, 250.0))]
    batch = torch.stack([to_model_input(pil_to_tensor(im), metadata["image_size"]) for im in images])
    with torch.no_grad():
        expected = heads.decode(metadata.get("head", "cos_sin_mse"), model(batch))["predicted_deg"].numpy()
    return checkpoint, batch, expected


def _close(a, b):
    return float(np.max(angles.circular_absolute_error_deg(np.asarray(a), np.asarray(b))))


def test_torchscript_export_gives_the_same_angles(photo_batch, tmp_path, capsys):
    checkpoint, batch, expected = photo_batch
    out = tmp_path / "model.pt"
    assert cli.main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--out", str(out)]) == 0
    loaded = torch.jit.load(str(out))
    with torch.no_grad():
        angle, length = loaded(batch)
    assert _close(angle.numpy(), expected) < 1e-3 and torch.all(length > 0)
    described = json.loads((tmp_path / "model.pt.json").read_text())
    assert described["input"]["shape"][-1] == batch.shape[-1]
    assert cli.main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_onnx_export_gives_the_same_angles_in_onnxruntime(photo_batch, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    checkpoint, batch, expected = photo_batch
    out = tmp_path / "model.onnx"
    assert cli.main(["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    angle, length = session.run(None, {"image": batch.numpy()})
    assert angle.shape == (len(batch),) and _close(angle, expected) < 1e-2
    single = session.run(None, {"image": batch[:1].numpy()})[0]  # the batch axis is dynamic
    assert _close(single, expected[:1]) < 1e-2
    assert not list(tmp_path.glob("*.tmp"))


def test_export_refuses_a_non_checkpoint(tmp_path, capsys):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    assert cli.main(["export", "--checkpoint", str(junk), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    assert not (tmp_path / "m.onnx").exists()
