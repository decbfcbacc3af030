"""The batched pipeline draws what the per-photo pipeline draws: same geometry, same angle
convention, no canvas or border pixel leaking in, seeded batches."""
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as F

from rotation_utils import angles, training
from rotation_utils.batched_rotation import (BatchedRotationLoader, UprightPhotoCanvas, inscribed_rectangle,
                                             rotate_crop_batch)
from rotation_utils.datasets import square_input
from rotation_utils.profiles import get_profile
from rotation_utils.rotation import largest_inscribed_rectangle, rotate_image

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def smooth_photo(h=96, w=128, seed=0) -> torch.Tensor:
    """A photo of low frequencies (so that resampling methods agree) with a clear top."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    channels = [np.sin(2 * np.pi * (a * x + b * y) + c) for a, b, c in rng.uniform(0.3, 1.5, size=(3, 3))]
    arr = (np.stack(channels) * 0.35 + 0.5) * 255
    arr[:, : h // 5] = 250  # a bright band along the top
    return torch.from_numpy(arr.clip(0, 255).astype(np.uint8))


def canvas_of(photo: torch.Tensor, side: int, fill: int = 0) -> torch.Tensor:
    canvas = torch.full((1, 3, side, side), fill, dtype=torch.uint8)
    canvas[0, :, : photo.shape[1], : photo.shape[2]] = photo
    return canvas


@pytest.mark.parametrize("w,h", [(128, 96), (96, 128), (100, 100), (300, 80)])
def test_inscribed_rectangle_matches_the_closed_form(w, h):
    degrees = torch.tensor([0.0, 7.0, 30.0, 45.0, 60.0, 90.0, 135.0, 200.0, 333.0])
    bw, bh = inscribed_rectangle(torch.full_like(degrees, w), torch.full_like(degrees, h), torch.deg2rad(degrees))
    for d, a, b in zip(degrees.tolist(), bw.tolist(), bh.tolist()):
        ew, eh = largest_inscribed_rectangle(w, h, d)
        assert (a, b) == pytest.approx((ew, eh), rel=1e-4, abs=1e-3), d


@pytest.mark.parametrize("angle_deg", [0.0, 17.0, 45.0, 90.0, 150.0, 260.0, 333.0])
@pytest.mark.parametrize("border", ["crop", "reflect"])
def test_batched_square_matches_rotate_image_then_square_input(angle_deg, border):
    photo = smooth_photo()
    expected = square_input(rotate_image(photo, angle_deg, border=border), 48).float() / 255
    got = rotate_crop_batch(canvas_of(photo, 256), torch.tensor([[96, 128]]), torch.tensor([angle_deg]), 48,
                            border=border, normalize=False)[0]
    assert got.shape == (3, 48, 48)
    assert float((got - expected).abs().mean()) < 0.02, float((got - expected).abs().mean())


def test_the_canvas_around_the_photo_never_leaks_in():
    photo = smooth_photo(80, 120)
    for border in ("crop", "reflect"):
        for angle_deg in (0.0, 33.0, 90.0, 181.0):
            args = (torch.tensor([[80, 120]]), torch.tensor([angle_deg]), 40)
            black = rotate_crop_batch(canvas_of(photo, 240, 0), *args, border=border, normalize=False)
            white = rotate_crop_batch(canvas_of(photo, 240, 255), *args, border=border, normalize=False)
            assert torch.equal(black, white), (border, angle_deg)


def test_flip_mirrors_the_upright_photo_before_rotating():
    photo = smooth_photo()
    photo[:, 30:60, :20] = 0  # a dark patch on the left: the flip must move it
    flipped = rotate_crop_batch(canvas_of(photo, 256), torch.tensor([[96, 128]]), torch.tensor([40.0]), 48,
                                flip=torch.tensor([True]), normalize=False)[0]
    expected = square_input(rotate_image(F.horizontal_flip(photo), 40.0, border="crop"), 48).float() / 255
    assert float((flipped - expected).abs().mean()) < 0.02


def test_a_quarter_turn_is_counter_clockwise():
    photo = torch.zeros(3, 100, 100, dtype=torch.uint8)
    photo[:, :20, 40:60] = 255  # bright at the top centre
    out = rotate_crop_batch(canvas_of(photo, 200), torch.tensor([[100, 100]]), torch.tensor([90.0]), 50,
                            normalize=False)[0]
    assert out[:, :, :10].mean() > 0.15 and out[:, :, -10:].mean() < 0.02  # the top went to the left


def test_an_unknown_border_is_refused():
    with pytest.raises(ValueError, match="border"):
        rotate_crop_batch(torch.zeros(1, 3, 8, 8), torch.tensor([[8, 8]]), torch.zeros(1), 4, border="alpha_mask")


def write_photos(folder, n=6):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"p{i}.jpg"
        Image.fromarray(smooth_photo(120 + 8 * i, 160, seed=i).permute(1, 2, 0).numpy()).save(path, quality=95)
        paths.append(path)
    return paths


def test_canvas_dataset_decodes_at_reduced_size_and_keeps_the_aspect(tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(smooth_photo(600, 800).permute(1, 2, 0).numpy()).save(path, quality=95)
    canvas, size = UprightPhotoCanvas([path], short_side=60)[0]
    assert canvas.shape == (3, 120, 120) and canvas.dtype == torch.uint8
    assert size.tolist() == [60, 80]
    assert int(canvas[:, 60:].sum()) == 0 and int(canvas[:, :, 80:].sum()) == 0  # the rest stays empty


def test_batched_loader_gives_seeded_batches_with_matching_targets(tmp_path):
    paths = write_photos(tmp_path)
    profile = get_profile("quick", image_size=32, batch_size=4, batched_rotation=True, train_repeats=2)
    first = [tuple(t.clone() for t in batch) for batch in training.training_loader(paths, profile, seed=3, device="cpu")]
    again = [tuple(t.clone() for t in batch) for batch in training.training_loader(paths, profile, seed=3, device="cpu")]
    assert isinstance(training.training_loader(paths, profile, device="cpu"), BatchedRotationLoader)
    assert len(first) == 3 and sum(len(b[0]) for b in first) == 12
    for (images, targets, degrees), (images2, _, degrees2) in zip(first, again):
        assert images.shape == (4, 3, 32, 32) and torch.equal(images, images2) and torch.equal(degrees, degrees2)
        assert torch.allclose(targets, angles.encode_angle_deg(degrees))
        assert float(degrees.min()) >= 0 and float(degrees.max()) < 360
    loader = training.training_loader(paths, profile, seed=3, device="cpu")
    epoch1, epoch2 = [torch.cat([b[2] for b in loader]) for _ in range(2)]
    assert torch.equal(epoch1, torch.cat([b[2] for b in first]))
    assert not torch.equal(epoch1, epoch2), "fresh angles every epoch"


def test_fit_trains_through_the_batched_pipeline(tmp_path):
    paths = write_photos(tmp_path / "photos")
    profile = get_profile("quick", image_size=32, batch_size=4, epochs=2, time_budget_s=None, backbone="resnet18",
                          weights="random", width=8, batched_rotation=True, warmup_steps=0)
    train_loader, val_loader = training.make_loaders(paths[:4], paths[4:], profile, val_rotations=2, device="cpu")
    from rotation_utils import models
    summary = training.fit(models.build_regressor("resnet18", "random", width=8, verbose=False), train_loader,
                           val_loader, profile, tmp_path / "run", device="cpu", progress=False)
    assert len(summary["history"]) == 2 and summary["train_border"] == "crop"
    assert all(math.isfinite(row["train_loss"]) for row in summary["history"])
