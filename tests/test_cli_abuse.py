"""`rotation-course` driven as a hostile or clumsy user would (issue 22): no input is ever lost,
every output is checked before it is called done, and every user error is one line and exit 2.

Each test runs the command line in-process (``cli.main``) on small synthetic photos and tiny
real checkpoints (``tiny_checkpoint`` of conftest.py; where the angle must be known, the
``FixedAngle`` stand-in of test_straighten.py), and asserts the message, the exit status and that
every input's bytes are unchanged (``_hashes`` of test_straighten.py, links included).
"""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import torch
from PIL import Image

from rotation_utils import cli
from test_straighten import META, FixedAngle, _hashes, _photo


@pytest.fixture(autouse=True)
def _quiet_and_single_threaded(one_torch_thread, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")  # no progress bars among the messages
    monkeypatch.delenv("ROTATION_COURSE_DEBUG", raising=False)


def run(argv, capsys):
    """(exit status, stdout, stderr) of ``rotation-course ARGV``."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str, command: str) -> str:
    """The one error line of ``rotation-course COMMAND``; fails on a traceback or on more lines."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(f"rotation-course {command}: ")]
    assert len(lines) == 1, err
    return lines[0]


def fixed_angle(monkeypatch, angle_deg: float):
    """`straighten` reads its checkpoint as a model that always answers ``angle_deg``."""
    import rotation_utils.models as models

    monkeypatch.setattr(models, "load_checkpoint", lambda *a, **k: (FixedAngle(angle_deg), META))


def no_temporary_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*.tmp")] if folder.exists() else True


# --------------------------------------------------------------------------- four ways files were lost

@pytest.mark.parametrize("link", ["folder", "photo"])
def test_a_link_inside_out_that_leads_to_an_input_is_refused_before_anything_is_written(tmp_path, tiny_checkpoint,
                                                                                       capsys, link):
    photos = tmp_path / "in"
    _photo(photos / "sub" / "x.jpg", 1)
    _photo(photos / "y.jpg", 2)
    out = tmp_path / "out"
    if link == "folder":  # the case: out/sub → in/sub
        out.mkdir()
        (out / "sub").symlink_to(photos / "sub", target_is_directory=True)
        shown = out / "sub"
    else:  # a link to one input photo where its output would go
        (out / "sub").mkdir(parents=True)
        (out / "sub" / "x.jpg").symlink_to(photos / "sub" / "x.jpg")
        shown = out / "sub" / "x.jpg"
    checkpoint = tiny_checkpoint()
    before = _hashes(tmp_path)
    code, _, err = run(["straighten", photos, "--checkpoint", checkpoint, "--out", out, "--overwrite",
                        "--rule", "always"], capsys)
    line = error_line(err, "straighten")
    assert code == 2
    assert f"{shown} is a link to" in line and "nothing was written" in line
    assert _hashes(tmp_path) == before, "an input (or anything else) changed"
    assert not (out / "y.jpg").exists()


@pytest.mark.parametrize("through_link", [False, True])
def test_export_never_replaces_its_own_checkpoint(tmp_path, tiny_checkpoint, capsys, through_link):
    checkpoint = tiny_checkpoint()
    out = checkpoint
    if through_link:
        out = tmp_path / "model.pt"
        out.symlink_to(checkpoint)
    before = _hashes(tmp_path)
    code, _, err = run(["export", "--checkpoint", checkpoint, "--format", "torchscript", "--out", out,
                        "--overwrite"], capsys)
    line = error_line(err, "export")
    assert code == 2 and "would replace the checkpoint" in line and "even with --overwrite" in line
    assert ("through a link" in line) == through_link
    assert _hashes(tmp_path) == before


def test_straightened_tiffs_decode_and_keep_their_metadata_without_layout_tags(tmp_path, monkeypatch, capsys):
    fixed_angle(monkeypatch, 20.0)
    folder = tmp_path / "in"
    described = Image.Exif()
    described[271], described[306], described[315] = "Course camera", "2024:05:01 10:00:00", "A learner"
    with_sub = Image.Exif()
    for tag, value in described.items():
        with_sub[tag] = value
    with_sub.get_ifd(0x8769)[0x9003] = "2024:05:01 09:59:58"  # DateTimeOriginal, in the EXIF sub-directory
    _photo(folder / "plain.tif", 1, exif=with_sub.tobytes(), dpi=(300, 300))
    _photo(folder / "lzw.tif", 2, compression="tiff_lzw", exif=described.tobytes())
    grey = (np.tile(np.linspace(0, 65535, 80), (60, 1))).astype(np.uint16)
    Image.fromarray(grey).save(folder / "grey16.tif")
    before = _hashes(tmp_path)
    code, out, err = run(["straighten", folder, "--checkpoint", "any.pt", "--out", tmp_path / "out",
                          "--rule", "always", "--json"], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    records = {r["path"]: r for r in map(json.loads, out.splitlines())}
    assert {name: r["action"] for name, r in records.items()} == dict.fromkeys(
        ["grey16.tif", "lzw.tif", "plain.tif"], "straightened")
    for name in records:
        with Image.open(tmp_path / "out" / name) as written:
            written.load()  # before: "image file is truncated" (plain), "encoder error -8" (LZW, skipped)
            exif = written.getexif()
            assert written.format == "TIFF" and written.mode == "RGB"
            assert exif.get(256) == written.width and exif.get(258) == (8, 8, 8), "the layout is the output's own"
            if name != "grey16.tif":
                assert exif.get(271) == "Course camera" and exif.get(306) == "2024:05:01 10:00:00"
                assert exif.get(0x0112, 1) == 1
            if name == "plain.tif":
                assert exif.get_ifd(0x8769).get(0x9003) == "2024:05:01 09:59:58"
                assert written.info.get("dpi") == pytest.approx((300, 300))
    with Image.open(tmp_path / "out" / "lzw.tif") as written:
        assert written.info.get("compression") == "tiff_lzw", "a lossless compression is kept"
    assert _hashes(tmp_path / "in") == {k: v for k, v in before.items() if "/in/" in k}


def test_jpeg_png_and_webp_keep_their_metadata(tmp_path, monkeypatch, capsys):
    from PIL import ImageCms, PngImagePlugin

    fixed_angle(monkeypatch, 20.0)
    folder = tmp_path / "in"
    exif = Image.Exif()
    exif[271], exif[0x0112] = "Course camera", 1
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 09:59:58"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="1" dc:title="t"/></x:xmpmeta>'
    _photo(folder / "p.jpg", 1, exif=exif.tobytes(), icc_profile=srgb, xmp=xmp, comment=b"a comment", dpi=(240, 240))
    text = PngImagePlugin.PngInfo()
    text.add_text("Title", "a title")
    _photo(folder / "p.png", 2, exif=exif.tobytes(), pnginfo=text, dpi=(240, 240))
    _photo(folder / "p.webp", 3, exif=exif.tobytes(), xmp=xmp, lossless=True)
    before = _hashes(folder)
    code, out, err = run(["straighten", folder, "--checkpoint", "any.pt", "--out", tmp_path / "out",
                          "--rule", "always", "--json"], capsys)
    assert code == 0 and {json.loads(line)["action"] for line in out.splitlines()} == {"straightened"}, err
    for name in ("p.jpg", "p.png", "p.webp"):
        with Image.open(tmp_path / "out" / name) as written:
            written.load()
            kept = written.getexif()
            assert kept.get(271) == "Course camera" and kept.get_ifd(0x8769).get(0x9003) == "2024:05:01 09:59:58"
    with Image.open(tmp_path / "out" / "p.jpg") as written:
        info = written.info
        assert info["icc_profile"] == srgb and info["comment"] == b"a comment" and b'dc:title="t"' in info["xmp"]
        assert info["dpi"] == pytest.approx((240, 240))
    with Image.open(tmp_path / "out" / "p.png") as written:
        assert written.info["Title"] == "a title" and written.info["dpi"] == pytest.approx((240, 240), rel=1e-3)
    with Image.open(tmp_path / "out" / "p.webp") as written:
        assert b'dc:title="t"' in written.info["xmp"]
    assert _hashes(folder) == before


def test_an_output_that_does_not_read_back_is_skipped_never_reported_done(tmp_path, monkeypatch, capsys):
    fixed_angle(monkeypatch, 20.0)
    photo = _photo(tmp_path / "in" / "p.png", 1)
    before = _hashes(tmp_path / "in")
    real_save = Image.Image.save

    def broken_encoder(self, fp, *args, **kwargs):  # writes a file, but half of it: as the TIFF bug did
        real_save(self, fp, *args, **kwargs)
        if str(fp).endswith(".tmp"):
            os.truncate(fp, os.path.getsize(fp) // 2)

    monkeypatch.setattr(Image.Image, "save", broken_encoder)
    code, out, err = run(["straighten", photo.parent, "--checkpoint", "any.pt", "--out", tmp_path / "out",
                          "--rule", "always", "--json"], capsys)
    record = json.loads(out.splitlines()[0])
    assert record["action"] == "skipped" and "does not read back" in record["reason"], record
    assert code == 1, "nothing could be done"
    assert not (tmp_path / "out" / "p.png").exists() and no_temporary_files(tmp_path / "out")
    assert _hashes(tmp_path / "in") == before


def test_photos_with_the_same_relative_name_never_overwrite_each_other(tmp_path, monkeypatch, capsys):
    fixed_angle(monkeypatch, 0.0)  # unchanged: byte-for-byte copies show which photo went where
    first = _photo(tmp_path / "a" / "x.jpg", 1)
    taken = _photo(tmp_path / "b" / "x-2.jpg", 2)  # a real photo already called x-2.jpg
    second = _photo(tmp_path / "b" / "x.jpg", 3)
    out = tmp_path / "out"
    before = _hashes(tmp_path)
    argv = ["straighten", tmp_path / "a", tmp_path / "b", "--checkpoint", "any.pt", "--out", out, "--rule", "always"]
    code, _, err = run(argv, capsys)  # before: b/x.jpg overwrote a/x.jpg's output, even without --overwrite
    assert code == 0, err
    assert f"note: {second}: written as x-3.jpg" in err
    assert (out / "x.jpg").read_bytes() == first.read_bytes()
    assert (out / "x-2.jpg").read_bytes() == taken.read_bytes()
    assert (out / "x-3.jpg").read_bytes() == second.read_bytes()
    assert {k: v for k, v in _hashes(tmp_path).items() if "/out/" not in k} == before
    code, _, err = run(argv, capsys)  # the same plan again: everything is there already
    assert code == 0 and "0 straightened, 0 unchanged, 3 skipped" in err
    code, out_lines, _ = run(["straighten", tmp_path / "a", first, "--checkpoint", "any.pt", "--out",
                              tmp_path / "twice", "--rule", "always", "--json"], capsys)
    assert code == 0 and len(out_lines.splitlines()) == 1, "the same photo given twice is done once"


# --------------------------------------------------------------------------- one line and exit 2

@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("command", ["straighten", "evaluate"])
def test_device_cuda_without_a_gpu(tmp_path, tiny_checkpoint, capsys, command):
    _photo(tmp_path / "in" / "p.jpg", 1)
    checkpoint = tiny_checkpoint()
    before = _hashes(tmp_path)
    argv = (["straighten", tmp_path / "in", "--out", tmp_path / "out"] if command == "straighten"
            else ["evaluate", "--images", tmp_path / "in", "--rotations", "1"])
    code, _, err = run(argv + ["--checkpoint", checkpoint, "--device", "cuda"], capsys)
    assert code == 2 and "--device cuda: no CUDA GPU can be used here" in error_line(err, command)
    assert _hashes(tmp_path) == before


CONTRADICTIONS = {
    "von_mises on 2 outputs": ({"head": "von_mises"}, 2,
                               "the von_mises head, which needs 3 outputs, but its network has 2"),
    "bins 0": ({"head": "bins_expected", "bins": 0}, 2, "gives 0 bins"),
    "image_size -5": ({"image_size": -5}, None, "an input size of -5 pixels"),
}


@pytest.mark.parametrize("command", ["straighten", "export", "evaluate"])
@pytest.mark.parametrize("case", list(CONTRADICTIONS))
def test_checkpoint_metadata_that_contradicts_its_weights(tmp_path, tiny_checkpoint, capsys, case, command):
    metadata, outputs, expected = CONTRADICTIONS[case]
    checkpoint = tiny_checkpoint("odd.pt", outputs=outputs, **metadata)
    _photo(tmp_path / "in" / "p.jpg", 1)
    before = _hashes(tmp_path)
    argv = {"straighten": ["straighten", tmp_path / "in", "--out", tmp_path / "out"],
            "export": ["export", "--format", "torchscript", "--out", tmp_path / "e.pt"],
            "evaluate": ["evaluate", "--images", tmp_path / "in", "--rotations", "1"]}[command]
    code, _, err = run(argv + ["--checkpoint", checkpoint], capsys)  # before: IndexError, ZeroDivisionError
    line = error_line(err, command)
    assert code == 2 and "odd.pt" in line and expected in line
    assert _hashes(tmp_path) == before, "nothing written, nothing changed"


def test_evaluate_with_a_billion_rotations(tmp_path, tiny_checkpoint, capsys):
    _photo(tmp_path / "in" / "p.jpg", 1)
    checkpoint = tiny_checkpoint()
    before = _hashes(tmp_path)
    code, _, err = run(["evaluate", "--checkpoint", checkpoint, "--images", tmp_path / "in",
                        "--rotations", "1000000000"], capsys)  # before: tried to allocate 7.45 GiB
    assert code == 2
    assert "--rotations must be a whole number from 1 to 360" in error_line(err, "evaluate")
    assert _hashes(tmp_path) == before


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder on a full disk: a 256 kB tmpfs filled up where it can be mounted (root), else
    one whose files fail with ENOSPC half-way through Python's write, as a full disk makes them."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = False
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") and sys.platform == "linux":
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                                 capture_output=True).returncode == 0
    try:
        if mounted:
            handle = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
            try:
                while True:
                    os.write(handle, b"\0" * 4096)
            except OSError as err:
                assert err.errno == errno.ENOSPC
            finally:
                os.close(handle)
        else:
            real = Path.write_bytes

            def write_bytes(self, data):
                if folder in Path(os.path.abspath(self)).parents:
                    real(self, data[: len(data) // 2])
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return real(self, data)

            monkeypatch.setattr(Path, "write_bytes", write_bytes)
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def test_export_to_a_full_disk(tmp_path, tiny_checkpoint, full_disk, capsys):
    checkpoint = tiny_checkpoint()
    before = _hashes(tmp_path)
    # before: PyTorch's "[enforce fail at inline_container.cc:672] unexpected pos", a SIGABRT for
    # TorchScript, and a hidden .tmp left behind
    code, _, err = run(["export", "--checkpoint", checkpoint, "--format", "torchscript", "--out",
                        full_disk / "m.pt"], capsys)
    line = error_line(err, "export")
    assert code == 2 and "the disk is full" in line and str(full_disk / "m.pt") in line
    assert "inline_container" not in err
    assert not (full_disk / "m.pt").exists() and no_temporary_files(full_disk)
    assert _hashes(tmp_path) == before


def test_train_on_a_full_disk(tmp_path, full_disk, capsys):
    photos = tmp_path / "photos"
    for i in range(3):
        _photo(photos / f"p{i}.jpg", i, size=(64, 48))
    before = _hashes(photos)
    code, _, err = run(["train", "--images", photos, "--out", full_disk / "run", "--epochs", "1", "--backbone",
                        "resnet18", "--weights", "random", "--device", "cpu", "--no-progress"], capsys)
    line = error_line(err, "train")
    assert code == 2 and "the disk is full" in line and "inline_container" not in err
    assert not (full_disk / "run" / "best.pt").exists() and no_temporary_files(full_disk)
    assert _hashes(photos) == before


def test_export_to_a_folder(tmp_path, tiny_checkpoint, capsys):
    checkpoint = tiny_checkpoint()
    (tmp_path / "exports").mkdir()
    before = _hashes(tmp_path)
    code, _, err = run(["export", "--checkpoint", checkpoint, "--format", "onnx", "--out", tmp_path / "exports",
                        "--overwrite"], capsys)  # before: IsADirectoryError
    line = error_line(err, "export")
    assert code == 2 and "is a folder; name the file to write" in line and "model.onnx" in line
    assert _hashes(tmp_path) == before and not list((tmp_path / "exports").iterdir())


def test_a_missing_input_is_called_missing(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint = tiny_checkpoint()
    before = _hashes(tmp_path)
    code, _, err = run(["straighten", "nope.jpg", "--checkpoint", checkpoint, "--out", "o"], capsys)
    # before: "--out o is inside the input folder nope.jpg"
    assert code == 2 and error_line(err, "straighten").endswith("error: no such file or folder: nope.jpg")
    assert _hashes(tmp_path) == before and not Path("o").exists()


def test_a_photo_into_a_folder_beside_it_is_safe_and_onto_itself_is_not(tmp_path, tiny_checkpoint, capsys,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    _photo(tmp_path / "a.jpg", 1)
    checkpoint = tiny_checkpoint()
    before = _hashes(tmp_path)
    code, _, err = run(["straighten", "a.jpg", "--checkpoint", checkpoint, "--out", "upright"], capsys)
    assert code == 0, err  # before: refused as "inside the input folder a.jpg"
    with Image.open(tmp_path / "upright" / "a.jpg") as written:
        written.load()
    code, _, err = run(["straighten", "a.jpg", "--checkpoint", checkpoint, "--out", ".", "--overwrite"], capsys)
    assert code == 2 and "would put the upright copy of a.jpg on the photo itself" in error_line(err, "straighten")
    assert {k: v for k, v in _hashes(tmp_path).items() if "/upright/" not in k} == before


def _face_pair(folder: Path, name: str, pose, landmarks, seed: int):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (120, 120, 3), dtype=np.uint8)).save(
        folder / f"{name}.jpg")
    sio.savemat(folder / f"{name}.mat", {"Pose_Para": pose, "pt3d_68": landmarks})


@pytest.fixture
def faces(tmp_path):
    """AFLW2000-style folders: fit/ (4 good pairs), mixed/ (4 good, one Pose_Para of strings, one
    NaN in pt3d_68), bad/ (only bad pairs)."""
    rng = np.random.default_rng(0)
    face = np.stack([rng.uniform(20, 100, 68), rng.uniform(20, 100, 68), rng.uniform(-10, 10, 68)])
    nan = face.copy()
    nan[0, 5] = np.nan
    for i in range(4):
        pose = np.array([[0.1 * i, 0.2, -0.1, 0, 0, 0, 1]])
        _face_pair(tmp_path / "fit", f"fit{i}", pose, face + rng.normal(0, 1, face.shape), i)
        _face_pair(tmp_path / "mixed", f"good{i}", pose, face + rng.normal(0, 1, face.shape), 10 + i)
    for folder in ("mixed", "bad"):
        _face_pair(tmp_path / folder, "strings", np.array(["a", "b", "c"]), face, 20)
        _face_pair(tmp_path / folder, "nan", np.array([[0.1, 0.2, 0.3]]), nan, 21)
    return tmp_path


def test_one_bad_mat_file_is_skipped_by_name(faces, capsys):
    before = _hashes(faces)
    code, out, err = run(["headpose", "evaluate", "--images", faces / "mixed", "--method", "pnp",
                          "--fit-on", faces / "fit"], capsys)  # before: "could not convert string to float"
    assert code == 0, err
    assert "skipped strings.mat: Pose_Para is not numbers" in err
    assert "skipped nan.mat: pt3d_68 holds 1 values that are not finite" in err
    assert out.startswith("4 faces (aflw2000)")
    assert _hashes(faces) == before


def test_a_folder_of_only_bad_pairs_says_why(faces, capsys):
    before = _hashes(faces)
    code, _, err = run(["headpose", "evaluate", "--images", faces / "bad", "--method", "pnp",
                        "--fit-on", faces / "fit"], capsys)  # before: no reason given
    line = error_line(err, "headpose evaluate")
    assert code == 2 and "no usable image + .mat pair (2 files skipped" in line
    assert "nan.mat: pt3d_68 holds" in line and "strings.mat: Pose_Para is not numbers" in line
    assert _hashes(faces) == before


def test_an_unreadable_photo_is_called_unreadable(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import builtins

    locked = _photo(tmp_path / "in" / "locked.jpg", 1)
    _photo(tmp_path / "in" / "open.jpg", 2)
    checkpoint = tiny_checkpoint()
    before = _hashes(tmp_path)
    locked.chmod(0)
    try:
        with monkeypatch.context() as patch:
            if os.geteuid() == 0:  # root reads any file: the system's answer to anyone else, given here
                real_open = builtins.open

                def guarded(file, *args, **kwargs):
                    if str(file) == str(locked):
                        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
                    return real_open(file, *args, **kwargs)

                patch.setattr(builtins, "open", guarded)
            code, out, err = run(["straighten", tmp_path / "in", "--checkpoint", checkpoint, "--out",
                                  tmp_path / "out", "--json"], capsys)
    finally:
        locked.chmod(0o644)
    records = {r["path"]: r for r in map(json.loads, out.splitlines())}
    assert code == 0 and records["open.jpg"]["action"] != "skipped"
    # before: "corrupt or truncated image ([Errno 13] Permission denied: ...)"
    assert records["locked.jpg"]["reason"] == "cannot be read (Permission denied)"
    assert {k: v for k, v in _hashes(tmp_path).items() if "/out/" not in k} == before


def test_a_photo_over_the_decompression_bomb_limit_says_so(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    _photo(tmp_path / "in" / "big.jpg", 1)  # 80×60: 4,800 pixels, over a limit of 3,000 (a 90-Mpx photo's case)
    checkpoint = tiny_checkpoint()
    before = _hashes(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)
    code, out, err = run(["straighten", tmp_path / "in", "--checkpoint", checkpoint, "--out", tmp_path / "out",
                          "--json"], capsys)
    record = json.loads(out)
    assert code == 1 and record["action"] == "skipped"
    # before: "not a readable image (DecompressionBombWarning)"
    assert record["reason"].startswith("4,800 pixels (0.0 megapixels), more than the limit of 3,000 that guards "
                                       "against decompression bombs")
    assert _hashes(tmp_path) == before


@pytest.mark.parametrize("command", ["straighten", "export"])
def test_a_checkpoint_of_random_bytes(tmp_path, capsys, command):
    checkpoint = tmp_path / "random.pt"
    checkpoint.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _photo(tmp_path / "in" / "p.jpg", 1)
    before = _hashes(tmp_path)
    argv = (["straighten", tmp_path / "in", "--out", tmp_path / "out"] if command == "straighten"
            else ["export", "--format", "onnx", "--out", tmp_path / "m.onnx"])
    code, _, err = run(argv + ["--checkpoint", checkpoint], capsys)
    line = error_line(err, command)
    assert code == 2 and "random.pt is not a readable checkpoint: it is not a PyTorch file" in line
    assert "weights_only" not in err, "never PyTorch's advice to load it unsafely"
    assert _hashes(tmp_path) == before


NUMBERS = [  # (sub-command, flag, value, expected message)
    ("evaluate", "--seed", "-1", "--seed must be a whole number from 0 to 4294967295, got -1"),
    ("train", "--seed", "-1", "--seed must be a whole number from 0 to 4294967295, got -1"),
    ("headpose train", "--seed", "-1", "--seed must be a whole number from 0 to 4294967295, got -1"),
    ("train", "--max-photos", "0", "--max-photos must be at least 1, got 0"),
    ("train", "--max-photos", "-1", "--max-photos must be at least 1, got -1"),
    ("straighten", "--min-confidence", "nan", "--min-confidence must be a number ≥ 0, got nan"),
    ("straighten", "--max-angle", "nan", "--max-angle must be a number of degrees in (0, 180], got nan"),
    ("straighten", "--batch-size", "0", "--batch-size must be a whole number from 1 to 4096, got 0"),
    ("evaluate", "--rotations", "0", "--rotations must be a whole number from 1 to 360"),
    ("headpose evaluate", "--focal-px", "0", "--focal-px must be a positive number of pixels, got 0"),
    ("headpose evaluate", "--focal-px", "-100", "--focal-px must be a positive number of pixels, got -100"),
    ("headpose train", "--alpha", "nan", "--alpha must be a number ≥ 0, got nan"),
    ("headpose train", "--max-roll", "-5", "--max-roll must be a number of degrees in [0, 180], got -5"),
]


@pytest.mark.parametrize("command,flag,value,expected", NUMBERS, ids=[f"{c} {f} {v}" for c, f, v, _ in NUMBERS])
def test_numeric_flags_are_checked_with_their_name(tmp_path, tiny_checkpoint, capsys, command, flag, value, expected):
    _photo(tmp_path / "in" / "p.jpg", 1)
    checkpoint = tiny_checkpoint()
    before = _hashes(tmp_path)
    argv = {"evaluate": ["evaluate", "--checkpoint", checkpoint, "--images", tmp_path / "in"],
            "train": ["train", "--images", tmp_path / "in", "--out", tmp_path / "run"],
            "straighten": ["straighten", tmp_path / "in", "--checkpoint", checkpoint, "--out", tmp_path / "out"],
            "headpose evaluate": ["headpose", "evaluate", "--images", tmp_path / "in", "--method", "pnp",
                                  "--fit-on", tmp_path / "in"],
            "headpose train": ["headpose", "train", "--images", tmp_path / "in", "--out", tmp_path / "run"]}[command]
    code, _, err = run(argv + [flag, value], capsys)
    assert code == 2 and expected in error_line(err, command)
    assert _hashes(tmp_path) == before, "nothing written"


# --------------------------------------------------------------------------- permissions, leftovers, the handler

def test_outputs_get_the_input_permission_bits(tmp_path, capsys, monkeypatch):
    fixed_angle(monkeypatch, 20.0)
    shared = _photo(tmp_path / "in" / "shared.jpg", 1)
    private = _photo(tmp_path / "in" / "private.png", 2)
    shared.chmod(0o644)
    private.chmod(0o640)
    before = _hashes(tmp_path / "in")
    code, _, err = run(["straighten", tmp_path / "in", "--checkpoint", "any.pt", "--out", tmp_path / "out",
                        "--rule", "always"], capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "shared.jpg").stat().st_mode & 0o777 == 0o644  # before: 0600
    assert (tmp_path / "out" / "private.png").stat().st_mode & 0o777 == 0o640
    assert _hashes(tmp_path / "in") == before


def test_an_export_gets_a_new_file_mode_not_a_temporary_one(tmp_path, tiny_checkpoint, capsys):
    checkpoint = tiny_checkpoint()
    before = _hashes(tmp_path)
    umask = os.umask(0o022)
    try:
        code, _, err = run(["export", "--checkpoint", checkpoint, "--format", "torchscript", "--out",
                            tmp_path / "e.pt"], capsys)
    finally:
        os.umask(umask)
    assert code == 0, err
    for written in (tmp_path / "e.pt", tmp_path / "e.pt.json"):
        assert written.stat().st_mode & 0o777 == 0o644  # before: 0600
    assert {k: v for k, v in _hashes(tmp_path).items() if k in before} == before


def test_a_temporary_file_left_by_a_killed_run_is_removed_by_the_next(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    photo = _photo(tmp_path / "in" / "p.jpg", 1)
    before = _hashes(tmp_path / "in")
    killed = subprocess.run(  # a real SIGKILL in the middle of writing an output
        [sys.executable, "-c", "import os, signal, sys\n"
         "from rotation_utils.config import write_atomically\n"
         "def half(tmp):\n    open(tmp, 'wb').write(b'half a photo')\n    os.kill(os.getpid(), signal.SIGKILL)\n"
         "write_atomically(sys.argv[1], half)", str(out / "p.jpg")],
        env={**os.environ, "PYTHONPATH": str(Path(cli.__file__).parents[1])}, capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    left = [p.name for p in out.iterdir()]
    assert len(left) == 1 and left[0].startswith(".p.jpg.") and left[0].endswith(".tmp")
    fixed_angle(monkeypatch, 0.0)
    code, _, err = run(["straighten", photo.parent, "--checkpoint", "any.pt", "--out", out], capsys)
    assert code == 0 and f"note: removed 1 temporary file(s) that an interrupted run left in {out}" in err
    assert [p.name for p in out.iterdir()] == ["p.jpg"] and (out / "p.jpg").read_bytes() == photo.read_bytes()
    assert _hashes(tmp_path / "in") == before


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import rotation_utils.export as export

    checkpoint = tiny_checkpoint()
    argv = ["export", "--checkpoint", checkpoint, "--format", "onnx", "--out", tmp_path / "exports"]
    (tmp_path / "exports").mkdir()
    code, _, err = run(argv, capsys)
    assert code == 2 and "is a folder" in error_line(err, "export")
    for debug in (argv + ["--debug"], ["--debug"] + argv):  # after the sub-command or before it
        code, _, err = run(debug, capsys)
        last = err.strip().splitlines()[-1]
        assert code == 2 and "Traceback (most recent call last)" in err
        assert last.startswith("rotation-course export: error: ") and "is a folder" in last

    def bug(*args, **kwargs):
        raise TypeError("an internal mistake")

    monkeypatch.setattr(export, "export_model", bug)
    code, _, err = run(argv[:-1] + [tmp_path / "m.onnx"], capsys)
    assert code == 1 and "internal error: TypeError: an internal mistake" in err and "--debug" in err
    assert "Traceback" not in err

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "export_model", interrupted)
    code, _, err = run(argv[:-1] + [tmp_path / "m.onnx"], capsys)
    assert code == 130 and "interrupted" in err and "Traceback" not in err
