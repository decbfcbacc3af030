"""`rotation-course straighten`: bad inputs, never touching an input, reruns, snap/max-angle/confidence."""
import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rotation_utils import cli
from rotation_utils.straighten import (StraightenSettings, check_output_folder, collect_photos, straighten_image,
                                       straighten_photos)


class FixedAngle(torch.nn.Module):
    """A stand-in model that answers (cos θ, sin θ) of a fixed angle, scaled by ``length``."""

    def __init__(self, angle_deg: float, length: float = 1.0):
        super().__init__()
        self.angle_deg, self.length = angle_deg, length
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        theta = math.radians(self.angle_deg)
        out = torch.tensor([math.cos(theta), math.sin(theta)]) * self.length
        return out.repeat(len(x), 1) + 0 * self.dummy


META = {"head": "cos_sin_mse", "image_size": 32}
#: The old behaviour (correct every photo by its prediction), which these tests of the mechanics use.
ALWAYS = StraightenSettings(rule="always")


def _photo(path: Path, seed: int = 0, size=(80, 60), mode="RGB", fmt=None, **save) -> Path:
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt, **save)
    return path


def _hashes(folder: Path) -> dict:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            out[str(path)] = "link:" + os.readlink(path)
        elif path.is_file():
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def bad_folder(tmp_path) -> Path:
    folder = tmp_path / "photos"
    _photo(folder / "good.jpg", 1)
    _photo(folder / "nested" / "good.png", 2)
    good = _photo(tmp_path / "scratch.jpg", 3, size=(128, 96))
    data = bytearray(good.read_bytes())
    data[len(data) // 2:len(data) // 2 + 400] = os.urandom(400)
    (folder / "corrupt.jpg").write_bytes(bytes(data))
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("this is not a photo\n")
    _photo(folder / "cmyk.jpg", 4, mode="CMYK")
    sixteen = (np.tile(np.linspace(0, 65535, 80), (60, 1))).astype(np.uint16)
    Image.fromarray(sixteen).save(folder / "sixteen.png")
    palette = Image.fromarray(np.random.default_rng(5).integers(0, 255, (60, 80, 3), dtype=np.uint8)).convert("P")
    palette.info["transparency"] = 0
    palette.save(folder / "palette.png", transparency=0)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown turned 90° clockwise
    _photo(folder / "exif.jpg", 6, exif=exif.tobytes())
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    (folder / "back").symlink_to(folder, target_is_directory=True)  # a folder loop
    return folder


def test_bad_inputs_are_reported_good_ones_straightened_and_nothing_changes(bad_folder, tmp_path):
    before = _hashes(bad_folder)
    records = straighten_photos(FixedAngle(20.0), META, [bad_folder], tmp_path / "out", ALWAYS, progress=False)
    assert _hashes(bad_folder) == before, "an input file changed"
    by_name = {r.path: r for r in records}
    for name in ("good.jpg", "nested/good.png", "cmyk.jpg", "sixteen.png", "palette.png", "exif.jpg"):
        assert by_name[name].action == "straightened", (name, by_name[name].reason)
        assert by_name[name].correction_deg == pytest.approx(-20.0)
        assert (tmp_path / "out" / name).is_file()
    assert "corrupt" in by_name["corrupt.jpg"].reason
    assert "empty" in by_name["empty.jpg"].reason
    assert "not a readable image" in by_name["notes.jpg"].reason
    assert by_name["loop.jpg"].reason == "a symlink loop"
    assert "not followed" in by_name["back"].reason
    assert all(by_name[n].action == "skipped" for n in ("corrupt.jpg", "empty.jpg", "notes.jpg", "loop.jpg", "back"))
    with Image.open(tmp_path / "out" / "exif.jpg") as written:
        assert written.getexif().get(0x0112, 1) == 1, "the orientation tag must be reset"
        assert written.format == "JPEG"
    with Image.open(tmp_path / "out" / "nested" / "good.png") as written:
        assert written.format == "PNG"
    assert not list((tmp_path / "out").rglob("*.tmp")), "no temporary file may be left"


def test_exif_orientation_is_applied_before_predicting(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _photo(tmp_path / "in" / "sideways.jpg", 0, size=(80, 40), exif=exif.tobytes())
    straighten_photos(FixedAngle(0.0), META, [path], tmp_path / "out", StraightenSettings(rule="always", snap_90=True), progress=False)
    # predicted 0° (unchanged): the copy keeps its bytes, and its EXIF still says how to show it
    assert (tmp_path / "out" / "sideways.jpg").read_bytes() == path.read_bytes()
    records = straighten_photos(FixedAngle(90.0), META, [path], tmp_path / "out2", StraightenSettings(rule="always", snap_90=True),
                                progress=False)
    assert records[0].action == "straightened"
    with Image.open(tmp_path / "out2" / "sideways.jpg") as written:
        # the 80×40 file is shown (EXIF 6) as 40×80, which the −90° correction turns to 80×40;
        # had the EXIF orientation been ignored, the result would be 40×80
        assert written.size == (80, 40)


def test_the_command_exits_nonzero_only_when_nothing_could_be_done(bad_folder, tmp_path, capsys, monkeypatch):
    import rotation_utils.models as models

    monkeypatch.setattr(models, "load_checkpoint", lambda *a, **k: (FixedAngle(10.0), META))
    out = tmp_path / "out"
    assert cli.main(["straighten", str(bad_folder), "--checkpoint", "x.pt", "--out", str(out), "--json",
                     "--rule", "always"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {line["action"] for line in lines} == {"straightened", "skipped"}
    assert all(set(line) >= {"path", "angle_deg", "correction_deg", "confidence", "action", "reason"} for line in lines)
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    (only_bad / "empty.jpg").write_bytes(b"")
    assert cli.main(["straighten", str(only_bad), "--checkpoint", "x.pt", "--out", str(tmp_path / "o2")]) == 1
    assert cli.main(["straighten", str(bad_folder), "--checkpoint", "x.pt", "--out", str(bad_folder / "sub")]) == 2
    assert "input folder" in capsys.readouterr().err
    assert cli.main(["straighten", str(tmp_path / "nowhere"), "--checkpoint", "x.pt", "--out", str(out)]) == 2


def test_a_second_run_skips_what_is_done_and_overwrite_redoes_it(tmp_path):
    folder = tmp_path / "in"
    for i in range(3):
        _photo(folder / f"p{i}.jpg", i)
    out = tmp_path / "out"
    first = straighten_photos(FixedAngle(15.0), META, [folder], out, ALWAYS, progress=False)
    assert [r.action for r in first] == ["straightened"] * 3
    (out / "p1.jpg").unlink()  # as if the run had been interrupted before this one
    (out / ".p1.jpg.abc.tmp").write_bytes(b"half")  # a leftover temporary file is not an output
    stamp = (out / "p0.jpg").stat().st_mtime_ns
    second = straighten_photos(FixedAngle(15.0), META, [folder], out, ALWAYS, progress=False)
    assert {r.path: r.action for r in second} == {"p0.jpg": "skipped", "p1.jpg": "straightened", "p2.jpg": "skipped"}
    assert "exists" in second[0].reason and (out / "p0.jpg").stat().st_mtime_ns == stamp
    third = straighten_photos(FixedAngle(15.0), META, [folder], out, StraightenSettings(rule="always", overwrite=True), progress=False)
    assert [r.action for r in third] == ["straightened"] * 3


def test_snap_max_angle_and_min_confidence(tmp_path):
    path = _photo(tmp_path / "in" / "p.png", 0, size=(64, 48))
    original = np.asarray(Image.open(path))

    def run(model, **settings):
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        record = straighten_photos(model, META, [path], out, StraightenSettings(rule="always", **settings),
                                   progress=False)[0]
        return record, out / "p.png"

    record, written = run(FixedAngle(87.0), snap_90=True)
    assert record.action == "straightened" and record.correction_deg == pytest.approx(-90.0)
    assert np.array_equal(np.asarray(Image.open(written)), np.rot90(original, -1)), "a quarter turn is lossless"
    record, written = run(FixedAngle(40.0), max_angle_deg=15)
    assert record.action == "unchanged" and "--max-angle" in record.reason
    assert written.read_bytes() == path.read_bytes()
    record, _ = run(FixedAngle(10.0), max_angle_deg=15)
    assert record.action == "straightened" and record.correction_deg == pytest.approx(-10.0)
    record, _ = run(FixedAngle(10.0, length=0.2), min_confidence=0.5)
    assert record.action == "unchanged" and "confidence 0.20" in record.reason
    record, _ = run(FixedAngle(350.0))
    assert record.angle_deg == pytest.approx(-10.0) and record.correction_deg == pytest.approx(10.0)


def test_crop_border_leaves_no_corner_and_expand_keeps_everything():
    image = Image.new("RGB", (120, 80), (200, 200, 200))
    cropped = straighten_image(image, 25.0, "crop")
    assert np.asarray(cropped).min() > 150, "the crop must not show the black corners"
    expanded = straighten_image(image, 25.0, "expand")
    assert expanded.width > 120 and np.asarray(expanded).min() == 0


def test_output_folder_rules(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    with pytest.raises(ValueError, match="an input folder"):
        check_output_folder(folder, [folder])
    with pytest.raises(ValueError, match="inside the input folder"):
        check_output_folder(folder / "up", [folder])
    with pytest.raises(ValueError, match="holds the input"):
        check_output_folder(tmp_path, [folder])
    photo = _photo(tmp_path / "single.jpg")
    with pytest.raises(ValueError):
        check_output_folder(tmp_path, [photo])  # beside a single photo is its folder
    assert check_output_folder(tmp_path / "elsewhere", [folder]) == tmp_path / "elsewhere"


def test_reference_model_straightens_a_turned_photo(shared_photos, tmp_path):
    from rotation_utils import models, reference, rotation

    checkpoint = reference.reference_checkpoint()
    if checkpoint is None:
        pytest.skip("no reference checkpoint")
    model, metadata = models.load_checkpoint(checkpoint, verbose=False)
    photo = next(iter(reference.unseen_by_reference(sorted(shared_photos.rglob("*.jpg"))[:40])))
    upright = Image.open(photo).convert("RGB")
    folder = tmp_path / "turned"
    folder.mkdir()
    rotation.rotate_image(upright, 90.0, border="crop").save(folder / "turned.png")
    record = straighten_photos(model, metadata, [folder], tmp_path / "out", StraightenSettings(rule="always", snap_90=True, tta=True),
                               progress=False)[0]
    assert record.action == "straightened" and record.correction_deg == pytest.approx(-90.0), record


def test_tta_is_refused_for_a_small_tilt_model(tmp_path):
    path = _photo(tmp_path / "in" / "p.png")
    tilt = {**META, "profile": {"max_angle_deg": 15}}
    with pytest.raises(ValueError, match="±15°"):
        straighten_photos(FixedAngle(0.0), tilt, [path], tmp_path / "out", StraightenSettings(tta=True), progress=False)
    assert straighten_photos(FixedAngle(5.0), tilt, [path], tmp_path / "out", ALWAYS,
                             progress=False)[0].action == "straightened"


def test_rgb_colour_profile_is_kept_and_a_cmyk_one_dropped(tmp_path):
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgb = _photo(tmp_path / "in" / "rgb.jpg", 0, icc_profile=srgb)
    cmyk = _photo(tmp_path / "in" / "cmyk.jpg", 1, mode="CMYK", icc_profile=b"not an RGB profile")
    straighten_photos(FixedAngle(12.0), META, [tmp_path / "in"], tmp_path / "out", ALWAYS, progress=False)
    with Image.open(tmp_path / "out" / "rgb.jpg") as written:
        assert written.info.get("icc_profile") == srgb
    with Image.open(tmp_path / "out" / "cmyk.jpg") as written:
        assert written.mode == "RGB" and "icc_profile" not in written.info
    assert rgb.exists() and cmyk.exists()
