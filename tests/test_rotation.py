"""Unit tests of rotation_utils.rotation: the four border strategies and the inscribed rectangle.

Convention under test: ``angle_deg`` turns the image counter-clockwise; ``crop`` keeps the
largest axis-aligned rectangle inside the rotated image (no fill pixels); the other borders
keep the size, ``alpha_mask`` adding an alpha channel.
"""
import math

import numpy as np
import pytest
import torch
from PIL import Image

from rotation_utils.rotation import (BORDERS, center_square_crop, largest_inscribed_rectangle,
                                     rotate_image)

SIZE_KEEPING = ("reflect", "random_background", "alpha_mask")


# --------------------------------------------------------------------------- helpers

def random_photo(width=64, height=48, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def as_input(image: Image.Image, kind: str):
    """The same picture as a PIL image or as one of the tensor layouts rotate_image accepts."""
    chw = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).contiguous()
    return {
        "pil": image,
        "chw_uint8": chw,
        "chw_float": chw.float() / 255.0,
        "nchw_uint8": torch.stack([chw, chw.flip(-1)]),
        "nchw_float": (chw.float() / 255.0).unsqueeze(0),
    }[kind]


def to_hwc(output) -> np.ndarray:
    """(H, W, C) float array in 0–255 of a PIL image or a (C, H, W) / (1.., C, H, W) tensor."""
    if isinstance(output, Image.Image):
        arr = np.asarray(output).astype(np.float64)
        return arr[..., None] if arr.ndim == 2 else arr
    t = output[0] if output.ndim == 4 else output
    arr = t.permute(1, 2, 0).numpy().astype(np.float64)
    return arr * 255.0 if t.is_floating_point() else arr


def out_size(output) -> tuple[int, int]:
    """(width, height) of a PIL image or a tensor."""
    if isinstance(output, Image.Image):
        return output.size
    return int(output.shape[-1]), int(output.shape[-2])


def brute_force_inscribed_area(width, height, angle_deg, steps=3000):
    """Largest area of a centred axis-aligned rectangle inside the rotated width×height one,
    by scanning the half-width a and taking the largest half-height b whose corners
    (±a, ±b), turned back by −angle, stay inside |x| ≤ width/2, |y| ≤ height/2."""
    t = math.radians(angle_deg)
    c, s = abs(math.cos(t)), abs(math.sin(t))
    best = 0.0
    for a in np.linspace(0.0, max(width, height) / 2.0, steps)[1:]:
        limits = []
        if s > 1e-12:
            limits.append((width / 2.0 - a * c) / s)
        elif a * c > width / 2.0:
            continue
        if c > 1e-12:
            limits.append((height / 2.0 - a * s) / c)
        elif a * s > height / 2.0:
            continue
        b = min(limits) if limits else max(width, height)
        if b > 0:
            best = max(best, 4.0 * a * b)
    return best


def fits_inside(rect_w, rect_h, width, height, angle_deg, tol=1e-6) -> bool:
    """Whether a centred rect_w×rect_h axis-aligned rectangle lies inside the rotated one."""
    t = math.radians(angle_deg)
    c, s = abs(math.cos(t)), abs(math.sin(t))
    return (rect_w / 2 * c + rect_h / 2 * s <= width / 2 + tol
            and rect_w / 2 * s + rect_h / 2 * c <= height / 2 + tol)


def bright_centroid(arr: np.ndarray) -> tuple[float, float]:
    """(x, y) centroid of the pixels brighter than 128 in an (H, W, C) array."""
    ys, xs = np.nonzero(arr[..., :3].mean(axis=-1) > 128)
    assert len(xs) > 0, "the mark disappeared"
    return float(xs.mean()), float(ys.mean())


# --------------------------------------------------------------------------- borders × inputs

def test_borders_are_the_four_strategies():
    assert set(BORDERS) == {"reflect", "crop", "random_background", "alpha_mask"}
    assert len(BORDERS) == 4


@pytest.mark.parametrize("kind", ["pil", "chw_uint8", "chw_float", "nchw_uint8", "nchw_float"])
@pytest.mark.parametrize("border", BORDERS)
def test_every_border_on_every_input_kind(border, kind):
    image = as_input(random_photo(64, 48), kind)
    out = rotate_image(image, 30.0, border=border, rng=np.random.default_rng(1))
    assert type(out) is type(image) or (isinstance(out, Image.Image) and isinstance(image, Image.Image))
    w, h = out_size(out)
    if border in SIZE_KEEPING:
        assert (w, h) == (64, 48)
    else:  # crop: within the largest inscribed rectangle, and not much smaller
        lir_w, lir_h = largest_inscribed_rectangle(64, 48, 30.0)
        assert w <= lir_w and h <= lir_h
        assert w >= lir_w - 4 and h >= lir_h - 4
    if kind == "pil":
        assert out.mode == ("RGBA" if border == "alpha_mask" else "RGB")
    else:
        assert out.dtype == image.dtype
        assert out.ndim == image.ndim
        if image.ndim == 4:
            assert out.shape[0] == image.shape[0]
        assert out.shape[-3] == (4 if border == "alpha_mask" else 3)
        if image.is_floating_point():
            assert float(out.min()) >= -1e-6 and float(out.max()) <= 1.0 + 1e-6


@pytest.mark.parametrize("kind", ["pil", "chw_uint8", "chw_float", "nchw_uint8"])
def test_alpha_mask_has_transparent_corners_and_opaque_centre(kind):
    image = as_input(random_photo(64, 48, seed=3), kind)
    out = rotate_image(image, 45.0, border="alpha_mask")
    arr = to_hwc(out)
    assert arr.shape == (48, 64, 4)
    alpha = arr[..., 3]
    for y, x in [(0, 0), (0, 63), (47, 0), (47, 63)]:
        assert alpha[y, x] == 0, f"corner {(x, y)} should be transparent"
    assert np.all(alpha[18:30, 26:38] == 255), "the centre should be opaque"


def test_alpha_mask_content_matches_the_rotated_photo():
    photo = random_photo(64, 48, seed=4)
    masked = np.asarray(rotate_image(photo, 20.0, border="alpha_mask")).astype(int)
    reflected = np.asarray(rotate_image(photo, 20.0, border="reflect")).astype(int)
    # Far from the corners both strategies hold the same rotated pixels.
    assert np.abs(masked[14:34, 20:44, :3] - reflected[14:34, 20:44]).max() <= 1


def test_alpha_mask_of_greyscale_gives_rgba():
    grey = Image.new("L", (64, 48), 200)
    out = rotate_image(grey, 30.0, border="alpha_mask")
    assert out.mode == "RGBA" and out.size == (64, 48)
    arr = np.asarray(out)
    assert np.all(arr[24, 32, :3] == 200) and arr[24, 32, 3] == 255
    assert arr[0, 0, 3] == 0


def test_alpha_mask_of_rgba_photo_gives_rgba():
    rgba = Image.new("RGBA", (64, 48), (10, 20, 30, 255))
    out = rotate_image(rgba, 30.0, border="alpha_mask")
    assert out.mode == "RGBA" and out.size == (64, 48)
    arr = np.asarray(out)
    assert arr[0, 0, 3] == 0 and arr[24, 32, 3] == 255


# --------------------------------------------------------------------------- crop

@pytest.mark.parametrize("size", [(64, 48), (48, 64), (50, 50), (97, 33), (7, 5)])
@pytest.mark.parametrize("angle", [0.0, 5.0, 17.0, 30.0, 45.0, 60.0, 89.5, 90.0, 123.0, 180.0, 222.0, 300.0, -37.0])
def test_crop_of_a_white_image_holds_no_fill_pixel_and_is_near_maximal(size, angle):
    w, h = size
    white = Image.new("RGB", (w, h), (255, 255, 255))  # fill is black: any fill pixel shows
    out = rotate_image(white, angle, border="crop")
    arr = np.asarray(out)
    assert arr.min() >= 250, f"fill pixels inside the crop at {angle}°: min {arr.min()}"
    ow, oh = out.size
    lir_w, lir_h = largest_inscribed_rectangle(w, h, angle)
    assert fits_inside(ow, oh, w, h, angle), "the crop is larger than what fits"
    # Near-maximal: at most a few pixels of safety margin off the largest inscribed rectangle.
    assert ow >= lir_w - 3 and oh >= lir_h - 3
    # ... and against an independent brute-force search of the largest centred rectangle.
    assert (ow + 3) * (oh + 3) >= brute_force_inscribed_area(w, h, angle)


@pytest.mark.parametrize("angle", [10.0, 45.0, 77.0])
def test_crop_of_white_tensors_holds_no_fill(angle):
    white = torch.ones(2, 3, 48, 64)
    out = rotate_image(white, angle, border="crop")
    assert out.shape[:2] == (2, 3)
    assert float(out.min()) >= 0.98
    white_u8 = torch.full((3, 40, 56), 255, dtype=torch.uint8)
    assert int(rotate_image(white_u8, angle, border="crop").min()) >= 250


def test_crop_at_45_degrees_keeps_about_half_a_square():
    out = rotate_image(Image.new("RGB", (100, 100), "white"), 45.0, border="crop")
    side = 100 / math.sqrt(2)
    assert out.size[0] == out.size[1]
    assert side - 4 <= out.size[0] <= side


# --------------------------------------------------------------------------- the other borders

@pytest.mark.parametrize("size", [(64, 48), (48, 64), (50, 50)])
@pytest.mark.parametrize("angle", [13.0, 45.0, 151.0, 180.0, 225.0, 300.0])
def test_reflect_fills_the_whole_frame(angle, size):
    white = Image.new("RGB", size, (255, 255, 255))
    out = rotate_image(white, angle, border="reflect")
    assert out.size == size
    assert np.asarray(out).min() >= 250, "reflect must leave no fill (black) pixel"


def test_reflect_fills_a_square_frame_at_90_degrees():
    out = rotate_image(Image.new("RGB", (50, 50), "white"), 90.0, border="reflect")
    assert np.asarray(out).min() >= 250


@pytest.mark.parametrize("size", [(64, 48), (48, 64)])
@pytest.mark.parametrize("angle", [85.0, 90.0, 95.0, 270.0])
def test_reflect_fills_the_whole_frame_of_non_square_photos_near_90_degrees(angle, size):
    white = Image.new("RGB", size, (255, 255, 255))
    out = rotate_image(white, angle, border="reflect")
    assert out.size == size
    assert np.asarray(out).min() >= 250, "black bars: fill pixels in a reflect-bordered image"


def test_reflect_fills_the_frame_of_tensors_at_90_degrees():
    out = rotate_image(torch.ones(2, 3, 48, 64), 90.0, border="reflect")
    assert out.shape == (2, 3, 48, 64)
    assert float(out.min()) >= 0.98


def test_random_background_fills_corners_with_noise_seeded_by_rng():
    white = Image.new("RGB", (64, 48), (255, 255, 255))
    a = np.asarray(rotate_image(white, 45.0, border="random_background", rng=np.random.default_rng(7)))
    b = np.asarray(rotate_image(white, 45.0, border="random_background", rng=np.random.default_rng(7)))
    c = np.asarray(rotate_image(white, 45.0, border="random_background", rng=np.random.default_rng(8)))
    assert np.array_equal(a, b), "the same rng seed must give the same background"
    corner_a, corner_c = a[:6, :6].astype(int), c[:6, :6].astype(int)
    assert not np.array_equal(corner_a, corner_c), "another seed must give another background"
    assert corner_a.std() > 30, "the corners should be noise, not a flat fill"
    assert np.all(a[18:30, 26:38] == 255), "the centre keeps the photo"


def test_random_background_on_float_tensors_stays_in_unit_range():
    out = rotate_image(torch.zeros(3, 48, 64), 45.0, border="random_background",
                       rng=np.random.default_rng(0))
    assert out.dtype == torch.float32
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    assert float(out[:, :5, :5].max()) > 0.2  # noise in the corner of a black image
    assert float(out[:, 20:28, 28:36].abs().max()) < 1e-6  # the black photo in the centre


# --------------------------------------------------------------------------- angle convention

@pytest.mark.parametrize("border", BORDERS)
def test_rotation_by_zero_keeps_the_image(border):
    photo = random_photo(64, 48, seed=5)
    arr = np.asarray(photo).astype(int)
    out = rotate_image(photo, 0.0, border=border, rng=np.random.default_rng(0))
    got = np.asarray(out).astype(int)
    if border == "crop":
        oh, ow = got.shape[:2]
        assert (ow, oh) != (0, 0) and ow >= 61 and oh >= 45
        top, left = (48 - oh) // 2, (64 - ow) // 2
        assert np.abs(got - arr[top:top + oh, left:left + ow]).max() <= 1
    else:
        assert np.abs(got[..., :3] - arr).max() <= 1
        if border == "alpha_mask":
            assert np.all(got[..., 3] == 255)


def test_rotation_by_zero_keeps_tensors():
    t = torch.rand(2, 3, 48, 64)
    out = rotate_image(t, 0.0, border="reflect")
    assert torch.allclose(out, t, atol=1e-5)


def _marked_square(side=48):
    """A black square with a white block on its right (east) edge, vertically centred."""
    arr = np.zeros((side, side, 3), dtype=np.uint8)
    arr[side // 2 - 4: side // 2 + 4, side - 14: side - 4] = 255
    return Image.fromarray(arr, "RGB")


@pytest.mark.parametrize("kind", ["pil", "chw_uint8", "chw_float", "nchw_float"])
@pytest.mark.parametrize("border", BORDERS)
def test_positive_angle_turns_counter_clockwise(border, kind):
    image = as_input(_marked_square(48), kind)
    x0, y0 = bright_centroid(to_hwc(image))
    cx0 = cy0 = 23.5
    assert x0 - cx0 > 10 and abs(y0 - cy0) < 1  # the mark starts east of the centre
    out = rotate_image(image, 90.0, border=border, rng=np.random.default_rng(0))
    arr = to_hwc(out)
    h, w = arr.shape[:2]
    cx, cy = (w - 1) / 2, (h - 1) / 2
    x, y = bright_centroid(arr)
    # Counter-clockwise by 90°: east goes north (up, smaller y).
    assert cy - y > 8, f"the mark should be above the centre, got y={y:.1f} for centre {cy:.1f}"
    assert abs(x - cx) < 2
    out_cw = rotate_image(image, -90.0, border=border, rng=np.random.default_rng(0))
    x, y = bright_centroid(to_hwc(out_cw))
    assert y - cy > 8, "−90° should move the mark below the centre"


def test_rotation_by_360_is_rotation_by_zero():
    photo = random_photo(64, 48, seed=6)
    a = np.asarray(rotate_image(photo, 360.0, border="reflect")).astype(int)
    assert np.abs(a - np.asarray(photo).astype(int)).max() <= 1


# --------------------------------------------------------------------------- largest_inscribed_rectangle

@pytest.mark.parametrize("w,h", [(64, 48), (48, 64), (10, 10), (300, 20)])
def test_inscribed_rectangle_at_0_and_180_is_the_image(w, h):
    assert largest_inscribed_rectangle(w, h, 0.0) == pytest.approx((w, h))
    assert largest_inscribed_rectangle(w, h, 180.0) == pytest.approx((w, h))
    assert largest_inscribed_rectangle(w, h, 360.0) == pytest.approx((w, h))


@pytest.mark.parametrize("w,h", [(64, 48), (48, 64), (10, 10), (300, 20)])
def test_inscribed_rectangle_at_90_swaps_the_sides(w, h):
    assert largest_inscribed_rectangle(w, h, 90.0) == pytest.approx((h, w), abs=1e-6)
    assert largest_inscribed_rectangle(w, h, -90.0) == pytest.approx((h, w), abs=1e-6)
    assert largest_inscribed_rectangle(w, h, 270.0) == pytest.approx((h, w), abs=1e-6)


@pytest.mark.parametrize("side", [1.0, 64.0, 224.0])
@pytest.mark.parametrize("angle", [45.0, 135.0, -45.0, 225.0])
def test_inscribed_rectangle_of_square_at_45_has_side_over_sqrt2(side, angle):
    w, h = largest_inscribed_rectangle(side, side, angle)
    assert w == pytest.approx(side / math.sqrt(2))
    assert h == pytest.approx(side / math.sqrt(2))


def test_inscribed_rectangle_symmetries():
    rng = np.random.default_rng(0)
    for _ in range(50):
        w, h = rng.uniform(5, 300, size=2)
        a = rng.uniform(-360, 360)
        ref = largest_inscribed_rectangle(w, h, a)
        assert largest_inscribed_rectangle(w, h, -a) == pytest.approx(ref, rel=1e-9, abs=1e-9)
        assert largest_inscribed_rectangle(w, h, 180.0 - a) == pytest.approx(ref, rel=1e-9, abs=1e-9)
        assert largest_inscribed_rectangle(w, h, a + 360.0) == pytest.approx(ref, rel=1e-9, abs=1e-9)
        # A w×h frame turned by a covers the same region as an h×w frame turned by a + 90°.
        assert largest_inscribed_rectangle(h, w, a + 90.0) == pytest.approx(ref, rel=1e-9, abs=1e-9)


def test_inscribed_rectangle_matches_a_brute_force_search():
    rng = np.random.default_rng(1)
    for _ in range(40):
        w, h = (float(v) for v in rng.integers(8, 200, size=2))
        a = float(rng.uniform(-180, 180))
        rw, rh = largest_inscribed_rectangle(w, h, a)
        assert rw > 0 and rh > 0
        assert fits_inside(rw, rh, w, h, a, tol=1e-6 * max(w, h)), (w, h, a, rw, rh)
        brute = brute_force_inscribed_area(w, h, a)
        assert rw * rh >= brute * (1 - 1e-3), (w, h, a, rw * rh, brute)


@pytest.mark.parametrize("w,h", [(0, 10), (10, 0), (-5, 10), (10, -1)])
def test_inscribed_rectangle_rejects_non_positive_sizes(w, h):
    with pytest.raises(ValueError):
        largest_inscribed_rectangle(w, h, 10.0)


# --------------------------------------------------------------------------- errors and other inputs

@pytest.mark.parametrize("angle", [3.0, 17.5, 45.0, 60.0, 123.0, 200.0, 271.3, 359.0])
@pytest.mark.parametrize("size", [(64, 48), (65, 48), (48, 64), (50, 50)])
def test_crop_matches_cropping_the_fully_expanded_rotation(size, angle):
    """rotate_image rotates onto the input's own frame when the crop fits in it; the crop must
    be the one taken from the whole rotated image, to within a one-pixel shift of its centre."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    w, h = size
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    smooth = torch.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (w + h)]).round().to(torch.uint8)
    fast = rotate_image(smooth, angle, border="crop")
    full = F.rotate(smooth, angle, interpolation=InterpolationMode.BILINEAR, expand=True)
    reference = F.center_crop(full, list(fast.shape[-2:]))
    # one pixel of shift moves this ramp by at most about 255 / 48 ≈ 5.3 levels
    assert (fast.float() - reference.float()).abs().max() <= 8


def test_unknown_border_raises_value_error():
    with pytest.raises(ValueError, match="border"):
        rotate_image(random_photo(), 10.0, border="zeros")


@pytest.mark.parametrize("image", [
    Image.new("RGB", (1, 1)),
    Image.new("RGB", (1, 40)),
    Image.new("RGB", (40, 1)),
    torch.zeros(3, 1, 1),
    torch.zeros(2, 3, 40, 1),
])
@pytest.mark.parametrize("border", BORDERS)
def test_tiny_image_raises_value_error(image, border):
    with pytest.raises(ValueError):
        rotate_image(image, 10.0, border=border)


@pytest.mark.parametrize("bad", [np.zeros((48, 64, 3), dtype=np.uint8), [[0, 1], [2, 3]], "photo.jpg", None])
def test_wrong_type_raises_type_error(bad):
    with pytest.raises(TypeError):
        rotate_image(bad, 10.0)


@pytest.mark.parametrize("shape", [(48, 64), (1, 2, 3, 48, 64)])
def test_tensor_of_wrong_rank_raises_value_error(shape):
    with pytest.raises(ValueError):
        rotate_image(torch.zeros(shape), 10.0)


def test_greyscale_pil_stays_greyscale_with_reflect_and_crop():
    grey = Image.new("L", (64, 48), 90)
    out = rotate_image(grey, 25.0, border="reflect")
    assert out.mode == "L" and out.size == (64, 48)
    assert np.all(np.abs(np.asarray(out).astype(int) - 90) <= 1)
    out = rotate_image(grey, 25.0, border="crop")
    assert out.mode == "L" and out.size[0] < 64


def _uniform_palette_image():
    image = Image.new("P", (64, 48), 1)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0] * (3 * 254))
    return image


@pytest.mark.parametrize("make", [_uniform_palette_image,
                                  lambda: Image.new("CMYK", (64, 48), (0, 200, 200, 40))],
                         ids=["P", "CMYK"])
def test_other_pil_modes_come_back_as_rgb(make):
    image = make()
    out = rotate_image(image, 10.0, border="reflect")
    assert out.mode == "RGB" and out.size == (64, 48)
    centre = np.asarray(out)[24, 32].astype(int)
    expected = np.asarray(image.convert("RGB"))[24, 32].astype(int)
    assert np.abs(centre - expected).max() <= 2


def test_center_square_crop():
    photo = random_photo(64, 48, seed=9)
    sq = center_square_crop(photo)
    assert sq.size == (48, 48)
    assert np.array_equal(np.asarray(sq), np.asarray(photo)[:, 8:56])
    t = torch.rand(2, 3, 30, 20)
    out = center_square_crop(t)
    assert out.shape == (2, 3, 20, 20)
    assert torch.equal(out, t[..., 5:25, :])
