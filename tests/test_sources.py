"""Unit tests of rotation_utils.sources: finding photos, reading bad input safely, choosing a source.

Every file is written into tmp_path; the variable ROTATION_COURSE_IMAGES is set or removed with
monkeypatch so these tests do not depend on the caller's environment.
"""
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rotation_utils import sources
from rotation_utils.profiles import get_profile
from rotation_utils.sources import BadImageError, find_images, load_image, resolve_photos, scan_images

EXIF_ORIENTATION = 0x0112


# --------------------------------------------------------------------------- helpers

def make_photo(path: Path, size=(64, 48), seed=0, fmt=None) -> Path:
    """A small RGB picture with structure (a gradient and a coloured top band)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    rng = np.random.default_rng(seed)
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    arr[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    arr[..., 2] = rng.integers(0, 256)
    arr[: max(1, h // 5)] = rng.integers(0, 256, size=3)
    Image.fromarray(arr, "RGB").save(path, format=fmt)
    return path


def jpeg_bytes(size=(64, 48)) -> bytes:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_bad_files(folder: Path) -> dict[str, Path]:
    """The unusable files of the brief, by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    data = jpeg_bytes()
    files = {
        "truncated": folder / "truncated.jpg",
        "empty": folder / "empty.jpg",
        "text": folder / "notes.png",
        "garbage": folder / "garbage.jpg",
        "one_pixel": folder / "one_pixel.png",
        "too_small": folder / "thin.png",
    }
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not a picture, only text with a .png name\n")
    files["garbage"].write_bytes(b"\xff\xd8\xff\xe0" + bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8)))
    Image.new("RGB", (1, 1), (255, 0, 0)).save(files["one_pixel"])
    Image.new("RGB", (200, 20), (0, 255, 0)).save(files["too_small"])
    return files


def write_usable_files(folder: Path) -> dict[str, Path]:
    """Usable files in the awkward modes of the brief, by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    files["rgb_jpeg"] = make_photo(folder / "rgb.jpg")
    files["upper_ext"] = make_photo(folder / "UPPER.JPG", seed=2)
    grey = Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1)), "L")
    grey.save(folder / "grey.png")
    files["grey"] = folder / "grey.png"
    rgba = np.zeros((48, 64, 4), dtype=np.uint8)
    rgba[..., 0] = 255
    rgba[:, :32, 3] = 255  # left half opaque red, right half fully transparent
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    files["rgba"] = folder / "rgba.png"
    sixteen = (np.tile(np.linspace(0, 65535, 64), (48, 1))).astype(np.uint16)
    Image.fromarray(sixteen).save(folder / "sixteen.png")
    files["sixteen_bit"] = folder / "sixteen.png"
    Image.new("CMYK", (64, 48), (0, 255, 255, 0)).save(folder / "cmyk.jpg", quality=95)
    files["cmyk"] = folder / "cmyk.jpg"
    index = np.zeros((48, 64), dtype=np.uint8)
    index[:, 32:] = 1
    palette = Image.fromarray(index, "P")
    palette.putpalette([10, 200, 30, 250, 0, 0] + [0] * (3 * 254))
    palette.save(folder / "palette.png", transparency=1)
    files["palette_transparent"] = folder / "palette.png"
    make_photo(folder / "nested" / "deeper" / "inside.png", seed=3)
    files["nested"] = folder / "nested" / "deeper" / "inside.png"
    return files


def upright_marked(size=(64, 48)) -> Image.Image:
    """Blue picture with a red band along its top: its "up" is obvious."""
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, size[0], size[1] // 4))
    return image


def save_with_orientation(path: Path, stored: Image.Image, orientation: int) -> Path:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    stored.save(path, exif=exif.tobytes(), quality=95)
    return path


def is_red(pixel, tol=40) -> bool:
    r, g, b = (int(v) for v in pixel)
    return r > 255 - tol and g < tol and b < tol


def is_blue(pixel, tol=40) -> bool:
    r, g, b = (int(v) for v in pixel)
    return b > 255 - tol and r < tol and g < tol


@pytest.fixture
def no_images_env(monkeypatch):
    monkeypatch.delenv("ROTATION_COURSE_IMAGES", raising=False)


# --------------------------------------------------------------------------- load_image: usable files

@pytest.mark.parametrize("kind", ["rgb_jpeg", "upper_ext", "grey", "rgba", "sixteen_bit", "cmyk",
                                  "palette_transparent", "nested"])
def test_load_image_returns_8bit_rgb(tmp_path, kind):
    files = write_usable_files(tmp_path)
    image = load_image(files[kind])
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB"
    assert image.size == (64, 48)
    arr = np.asarray(image)
    assert arr.dtype == np.uint8 and arr.shape == (48, 64, 3)


def test_greyscale_becomes_grey_rgb(tmp_path):
    arr = np.asarray(load_image(write_usable_files(tmp_path)["grey"])).astype(int)
    assert np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])
    assert arr[0, 0, 0] < 5 and arr[0, -1, 0] > 250


def test_sixteen_bit_is_rescaled_to_8_bits_keeping_the_order(tmp_path):
    path = write_usable_files(tmp_path)["sixteen_bit"]
    assert Image.open(path).mode.startswith("I")  # really a 16-bit file
    arr = np.asarray(load_image(path)).astype(int)
    row = arr[10, :, 0]
    assert np.all(np.diff(row) >= 0), "darker 16-bit values must stay darker"
    assert row[0] <= 5 and row[-1] >= 250, "the 16-bit range should map onto 0–255, not clip"
    assert np.array_equal(arr[..., 0], arr[..., 2])


def test_transparency_is_composited_and_opaque_colours_kept(tmp_path):
    files = write_usable_files(tmp_path)
    rgba = np.asarray(load_image(files["rgba"])).astype(int)
    assert is_red(rgba[24, 5])
    transparent = rgba[24, 50]
    assert np.all(np.abs(transparent - 128) <= 2), f"transparent pixels become mid-grey, got {transparent}"
    palette = np.asarray(load_image(files["palette_transparent"])).astype(int)
    assert np.abs(palette[24, 5] - np.array([10, 200, 30])).max() <= 2
    assert np.all(np.abs(palette[24, 50] - 128) <= 2)


def test_cmyk_jpeg_keeps_its_colour(tmp_path):
    arr = np.asarray(load_image(write_usable_files(tmp_path)["cmyk"]))
    assert is_red(arr[24, 32]), f"CMYK (0, 255, 255, 0) is red, got {arr[24, 32]}"


@pytest.mark.parametrize("orientation,stored_transpose", [
    # EXIF 6: the stored rows are the picture's right side: shown after turning 90° clockwise.
    (6, Image.Transpose.ROTATE_90),
    # EXIF 8: the stored rows are the picture's left side: shown after turning 90° counter-clockwise.
    (8, Image.Transpose.ROTATE_270),
    (3, Image.Transpose.ROTATE_180),
])
def test_exif_rotated_jpeg_comes_out_upright(tmp_path, orientation, stored_transpose):
    upright = upright_marked((64, 48))
    stored = upright.transpose(stored_transpose)
    path = save_with_orientation(tmp_path / f"phone_{orientation}.jpg", stored, orientation)
    raw = Image.open(path)
    assert raw.size == stored.size and raw.getexif().get(EXIF_ORIENTATION) == orientation
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.size == (64, 48), "the EXIF orientation must be applied (sides swapped back)"
    arr = np.asarray(image)
    assert is_red(arr[3, 32]), "the red band should be at the top"
    assert is_blue(arr[40, 32]), "blue below it"
    assert is_red(arr[3, 3]) and is_red(arr[3, 60])


def test_load_image_of_real_photos(shared_photos):
    photos = sorted(shared_photos.rglob("*.jpg"))[:3]
    assert photos
    for path in photos:
        image = load_image(path)
        assert image.mode == "RGB" and min(image.size) >= sources.MIN_SIDE_PX


# --------------------------------------------------------------------------- load_image: bad files

@pytest.mark.parametrize("kind", ["truncated", "empty", "text", "garbage", "one_pixel", "too_small"])
def test_bad_files_raise_bad_image_error_naming_the_file(tmp_path, kind):
    path = write_bad_files(tmp_path)[kind]
    with pytest.raises(BadImageError) as info:
        load_image(path)
    assert path.name in str(info.value)
    assert isinstance(info.value, ValueError)


def test_min_side_is_configurable(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (20, 24)).save(path)
    with pytest.raises(BadImageError, match="small.png"):
        load_image(path)
    assert load_image(path, min_side=16).size == (20, 24)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nowhere.jpg")


def test_a_folder_named_like_an_image_is_a_bad_image(tmp_path):
    folder = tmp_path / "album.jpg"
    folder.mkdir()
    with pytest.raises(BadImageError, match="album.jpg"):
        load_image(folder)


def test_decompression_bomb_warning_size_is_a_bad_image(tmp_path, monkeypatch):
    path = tmp_path / "large.png"
    Image.new("RGB", (40, 40)).save(path)  # 1600 pixels: between the limit and twice the limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(BadImageError, match="large.png"):
        load_image(path)


def test_decompression_bomb_error_size_is_a_bad_image_and_scan_survives(tmp_path, monkeypatch):
    bomb = tmp_path / "huge.png"
    Image.new("RGB", (64, 48)).save(bomb)  # 3072 pixels: over twice the (patched) limit
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    good, skipped = scan_images([bomb], verbose=False)
    assert good == [] and skipped and skipped[0][0] == bomb
    with pytest.raises(BadImageError, match="huge.png"):
        load_image(bomb)


# --------------------------------------------------------------------------- scan_images

def test_scan_images_keeps_good_skips_bad_with_reasons(tmp_path, capsys):
    usable = write_usable_files(tmp_path / "good")
    bad = write_bad_files(tmp_path / "bad")
    missing = tmp_path / "gone.jpg"
    paths = list(usable.values()) + list(bad.values()) + [missing]
    good, skipped = scan_images(paths, verbose=True)
    assert good == list(usable.values())
    assert [p for p, _ in skipped] == list(bad.values()) + [missing]
    for path, reason in skipped:
        assert isinstance(reason, str) and path.name in reason
    printed = capsys.readouterr().out
    assert printed.count("skipping") == len(skipped)
    assert "truncated.jpg" in printed and "empty.jpg" in printed


def test_scan_images_quiet_prints_nothing(tmp_path, capsys):
    bad = write_bad_files(tmp_path)
    good, skipped = scan_images(bad.values(), verbose=False)
    assert good == [] and len(skipped) == len(bad)
    assert capsys.readouterr().out == ""


def test_scan_images_min_side(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (20, 20)).save(path)
    assert scan_images([path], verbose=False)[0] == []
    assert scan_images([path], min_side=10, verbose=False)[0] == [path]


# --------------------------------------------------------------------------- find_images

def test_find_images_is_recursive_sorted_and_ignores_hidden_and_non_images(tmp_path):
    a = make_photo(tmp_path / "b.jpg")
    b = make_photo(tmp_path / "a.png")
    c = make_photo(tmp_path / "sub" / "deeper" / "c.jpeg")
    d = make_photo(tmp_path / "Capital.JPG")
    make_photo(tmp_path / ".hidden.jpg")
    make_photo(tmp_path / ".thumbnails" / "thumb.jpg")
    make_photo(tmp_path / "sub" / ".cache" / "x.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "noext").write_bytes(jpeg_bytes())
    found = find_images(tmp_path)
    assert found == sorted([a, b, c, d])
    assert find_images(str(tmp_path)) == found
    assert find_images(tmp_path, recursive=False) == sorted([a, b, d])


def test_find_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        find_images(tmp_path / "missing")
    file = make_photo(tmp_path / "photo.jpg")
    with pytest.raises(NotADirectoryError):
        find_images(file)


def test_find_images_of_an_empty_folder_is_empty(tmp_path):
    assert find_images(tmp_path) == []


def test_find_images_ignores_hidden_parts_only_below_the_folder(tmp_path):
    inside_hidden = tmp_path / ".photos"
    p = make_photo(inside_hidden / "visible.jpg")
    # The folder named by the user may itself be hidden; its content is still found.
    assert find_images(inside_hidden) == [p]


# --------------------------------------------------------------------------- resolve_photos

def test_resolve_photos_from_a_named_folder_skips_bad_files(tmp_path, no_images_env, capsys):
    usable = write_usable_files(tmp_path / "photos")
    write_bad_files(tmp_path / "photos" / "junk")
    source = resolve_photos(tmp_path / "photos", profile=get_profile("quick"), max_photos=None)
    assert sorted(source.paths) == sorted(usable.values())
    assert len(source.skipped) == 6
    assert "images argument" in source.reason
    assert "folder" in source.name
    printed = capsys.readouterr().out
    assert "why:" in printed and "skipped 6" in printed


def test_resolve_photos_of_only_bad_files_raises_value_error(tmp_path, no_images_env):
    write_bad_files(tmp_path / "bad")
    with pytest.raises(ValueError, match="usable"):
        resolve_photos(tmp_path / "bad", profile=get_profile("quick"), verbose=False)


def test_resolve_photos_of_a_folder_without_images_raises_value_error(tmp_path, no_images_env):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(ValueError):
        resolve_photos(tmp_path, profile=get_profile("quick"), verbose=False)


def test_resolve_photos_of_a_missing_folder_raises_file_not_found(tmp_path, no_images_env):
    with pytest.raises(FileNotFoundError):
        resolve_photos(tmp_path / "missing", profile=get_profile("quick"), verbose=False)
    with pytest.raises(NotADirectoryError):
        resolve_photos(make_photo(tmp_path / "file.jpg"), profile=get_profile("quick"), verbose=False)


def test_resolve_photos_without_folder_or_variable_uses_packaged_photos(no_images_env, capsys):
    packaged = sources.packaged_photos()
    if not packaged:
        pytest.skip("none of scikit-image, scikit-learn, matplotlib ships its photos here")
    source = resolve_photos(profile=get_profile("quick"), max_photos=2)
    assert 1 <= len(source.paths) <= 2
    assert set(source.paths) <= set(packaged)
    assert "installed packages" in source.name
    assert "no folder was named" in source.reason and "ROTATION_COURSE_IMAGES" in source.reason
    printed = capsys.readouterr().out
    assert "why: no folder was named" in printed


def test_packaged_photos_exist_and_are_usable():
    packaged = sources.packaged_photos()
    if not packaged:
        pytest.skip("no packaged photos installed")
    assert all(p.is_file() for p in packaged)
    assert load_image(packaged[0]).mode == "RGB"


def test_resolve_photos_reads_the_environment_variable(tmp_path, monkeypatch):
    first = [make_photo(tmp_path / "one" / f"p{i}.jpg", seed=i) for i in range(2)]
    second = [make_photo(tmp_path / "two" / f"q{i}.png", seed=10 + i) for i in range(2)]
    monkeypatch.setenv("ROTATION_COURSE_IMAGES", str(tmp_path / "one"))
    source = resolve_photos(profile=get_profile("quick"), verbose=False)
    assert source.paths == first
    assert "ROTATION_COURSE_IMAGES" in source.reason
    monkeypatch.setenv("ROTATION_COURSE_IMAGES", os.pathsep.join([str(tmp_path / "one"), str(tmp_path / "two")]))
    source = resolve_photos(profile=get_profile("quick"), verbose=False)
    assert sorted(source.paths) == sorted(first + second)


def test_environment_variable_naming_a_missing_folder_raises(tmp_path, monkeypatch):
    monkeypatch.setenv("ROTATION_COURSE_IMAGES", str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match="ROTATION_COURSE_IMAGES"):
        resolve_photos(profile=get_profile("quick"), verbose=False)


def test_an_explicit_folder_wins_over_the_environment_variable(tmp_path, monkeypatch):
    mine = [make_photo(tmp_path / "mine" / "m.jpg")]
    make_photo(tmp_path / "env" / "e.jpg")
    monkeypatch.setenv("ROTATION_COURSE_IMAGES", str(tmp_path / "env"))
    assert resolve_photos(tmp_path / "mine", profile=get_profile("quick"), verbose=False).paths == mine


def test_max_photos_limits_with_an_even_spread(tmp_path, no_images_env):
    photos = [make_photo(tmp_path / f"p{i:02d}.jpg", seed=i) for i in range(10)]
    quick = get_profile("quick")
    four = resolve_photos(tmp_path, profile=quick, max_photos=4, verbose=False).paths
    assert len(four) == 4 and len(set(four)) == 4
    assert four == sorted(four)
    assert four[0] == photos[0] and four[-1] == photos[-1], "an even spread keeps both ends"
    assert resolve_photos(tmp_path, profile=quick, max_photos=None, verbose=False).paths == photos
    assert resolve_photos(tmp_path, profile=quick, max_photos=50, verbose=False).paths == photos
    by_profile = resolve_photos(tmp_path, profile=get_profile("quick", max_photos=3), verbose=False)
    assert len(by_profile.paths) == 3


def test_resolve_photos_accepts_a_list_of_folders(tmp_path, no_images_env):
    a = make_photo(tmp_path / "a" / "x.jpg")
    b = make_photo(tmp_path / "b" / "y.jpg", seed=1)
    source = resolve_photos([tmp_path / "a", str(tmp_path / "b")], profile=get_profile("quick"), verbose=False)
    assert sorted(source.paths) == sorted([a, b])


def test_photo_source_describe_names_the_source_and_skipped_files(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"")
    source = sources.PhotoSource([tmp_path / "a.jpg", tmp_path / "b.jpg"], "folder x", "named by test",
                                 skipped=[(bad, "broken.jpg: empty file")])
    text = source.describe()
    assert "photos: 2 from folder x" in text
    assert "why: named by test" in text
    assert "skipped 1" in text and "broken.jpg" in text


# --------------------------------------------------------------------------- parallel scan, COCO for full

def test_scan_images_in_threads_gives_the_serial_answer_in_order(tmp_path, monkeypatch):
    usable = write_usable_files(tmp_path / "good")
    bad = write_bad_files(tmp_path / "bad")
    paths = [p for pair in zip(list(usable.values()) * 2, list(bad.values()) * 2) for p in pair]
    serial = scan_images(paths, verbose=False, workers=1)
    threaded = scan_images(paths, verbose=False, workers=4)
    assert threaded == serial
    assert len(serial[0]) == len(paths) // 2 and len(serial[1]) == len(paths) // 2


def test_scan_images_in_threads_still_refuses_decompression_bombs(tmp_path, monkeypatch):
    big = make_photo(tmp_path / "big.png", size=(200, 200))
    small = make_photo(tmp_path / "small.png", size=(64, 48))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200 * 200 - 1)  # big: a warning-size bomb
    good, skipped = scan_images([small, big] * 8, verbose=False, workers=4)
    assert good == [small] * 8
    assert [p for p, _ in skipped] == [big] * 8


def coco_stand_in(folder: Path, calls: list):
    def fake(split, max_samples=None, dataset_name=None):
        calls.append((split, max_samples))
        return [make_photo(folder / f"coco{i}.jpg", seed=i) for i in range(3)]
    return fake


def test_full_profile_asks_the_zoo_for_coco_train_photos(tmp_path, no_images_env, monkeypatch):
    calls = []
    monkeypatch.setattr(sources, "coco_zoo_photos", coco_stand_in(tmp_path, calls))
    source = resolve_photos(profile=get_profile("full"), verbose=False)
    assert calls == [("train", 30000)] and len(source.paths) == 3
    assert "train" in source.name
    resolve_photos(profile=get_profile("workshop"), verbose=False)
    assert calls[-1] == ("validation", 3000)


def test_full_profile_offline_is_a_clear_error_naming_the_folder_option(no_images_env, monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(sources, "coco_zoo_photos", offline)
    with pytest.raises(sources.PhotosUnavailableError, match="--images DIR") as err:
        resolve_photos(profile=get_profile("full"), verbose=False)
    assert "COCO-2017 train" in str(err.value) and "ConnectionError" in str(err.value)
    # the workshop profile says so and falls back to the offline photos
    source = resolve_photos(profile=get_profile("workshop"), verbose=False)
    assert "could not be reached" in source.reason


def _bit_flipped_jpeg(tmp_path) -> Path:
    """A JPEG whose entropy-coded body has a few bytes flipped: Pillow decodes it without a
    word (wrong pixels), libjpeg warns "Corrupt JPEG data"."""
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 255, size=(96, 128, 3), dtype=np.uint8))
    good = tmp_path / "good.jpg"
    image.save(good, quality=90)
    data = bytearray(good.read_bytes())
    for seed in range(200):
        bad = bytearray(data)
        flips = np.random.default_rng(seed).integers(len(data) // 3, len(data) - 4, size=6)
        for position in flips:
            bad[position] ^= 0x5A
        path = tmp_path / "flipped.jpg"
        path.write_bytes(bytes(bad))
        try:
            with Image.open(path) as opened:
                opened.load()
        except OSError:
            continue
        try:
            from rotation_utils.sources import check_jpeg_data
            check_jpeg_data(path)
        except BadImageError:
            return path
    pytest.skip("no silent corruption found")


def test_a_silently_corrupt_jpeg_is_caught_when_strict(tmp_path):
    path = _bit_flipped_jpeg(tmp_path)
    load_image(path)  # Pillow alone accepts it
    with pytest.raises(BadImageError, match=r"flipped\.jpg: corrupt JPEG data"):
        load_image(path, strict_jpeg=True)
    good, skipped = scan_images([tmp_path / "good.jpg", path], verbose=False)
    assert good == [tmp_path / "good.jpg"] and skipped[0][0] == path
    cmyk = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (64, 48), (0, 128, 0, 0)).save(cmyk)
    assert load_image(cmyk, strict_jpeg=True).mode == "RGB"


def test_16_bit_is_scaled_by_bit_depth_not_stretched(tmp_path):
    dark = np.tile(np.linspace(0, 1000, 64), (48, 1)).astype(np.uint16)  # a dark 16-bit photo
    path = tmp_path / "dark16.png"
    Image.fromarray(dark).save(path)
    pixels = np.asarray(load_image(path))
    assert pixels.max() <= 5, "a dark 16-bit image must stay dark (1000 / 65535 of white)"


def test_float_images_nan_and_range(tmp_path):
    nan = tmp_path / "nan.tif"
    Image.fromarray(np.full((40, 40), np.nan, dtype=np.float32), mode="F").save(nan)
    with pytest.raises(BadImageError, match=r"nan\.tif.*no finite value"):
        load_image(nan)
    unit = tmp_path / "unit.tif"
    Image.fromarray(np.tile(np.linspace(0, 1, 40, dtype=np.float32), (40, 1)), mode="F").save(unit)
    row = np.asarray(load_image(unit))[0, :, 0]
    assert row[0] == 0 and row[-1] == 255
