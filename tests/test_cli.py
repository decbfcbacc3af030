"""Unit tests of rotation_utils.evaluation and the ``rotation-course`` command line.

One tiny training run (quick profile, 1 epoch, 6 photos of 64×48 pixels) is shared by the
module; ImageNet weights are never downloaded (TORCH_HOME in a temporary folder, torch.hub's
download replaced by one that raises URLError).
"""
import contextlib
import io
import json
import math
import shutil
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from rotation_utils.profiles import get_profile
from rotation_utils import angles, cli, evaluation
from rotation_utils.datasets import FixedRotationDataset
from rotation_utils.models import load_checkpoint

METRIC_KEYS = {"n", "mae_deg", "median_deg", "p90_deg", "within_5", "within_10", "within_15"}
N_PHOTOS = 6


def make_photos(folder: Path, n: int, size=(64, 48)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rng = np.random.default_rng(50 + i)
        w, h = size
        arr = np.zeros((h, w, 3), dtype=np.uint8)
        arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
        arr[..., 2] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
        arr[: h // 3] = rng.integers(0, 256, size=3)
        path = folder / f"photo{i}.jpg"
        Image.fromarray(arr, "RGB").save(path, quality=95)
        paths.append(path)
    return paths


def _blocked_download(url, *args, **kwargs):
    raise urllib.error.URLError("network disabled in the unit tests")


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """No ImageNet download, one torch thread (a small shared CPU), for the whole module."""
    home = tmp_path_factory.mktemp("torch-home")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        mp.setattr(torch.hub, "_hub_dir", None, raising=False)
        mp.setattr(torch.hub, "download_url_to_file", _blocked_download)
        mp.setattr(torch.hub, "urlopen", _blocked_download, raising=False)
        yield home
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def photos_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    make_photos(folder, N_PHOTOS)
    return folder


@pytest.fixture(scope="module")
def trained_run(offline, photos_dir, tmp_path_factory):
    """A run folder written by ``rotation-course train`` (quick profile, one epoch)."""
    run = tmp_path_factory.mktemp("run")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["train", "--images", str(photos_dir), "--profile", "quick", "--out", str(run),
                         "--epochs", "1", "--max-photos", str(N_PHOTOS), "--device", "cpu",
                         "--seed", "0", "--no-progress"])
    return run, {"code": code, "out": out.getvalue(), "err": err.getvalue()}


def run_cli(argv, capsys):
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def evaluate_argv(run, photos_dir, seed=0, rotations=2, json_flag=True, border="crop"):
    argv = ["evaluate", "--checkpoint", str(run / "best.pt"), "--images", str(photos_dir),
            "--rotations", str(rotations), "--seed", str(seed), "--border", border]
    return argv + (["--json"] if json_flag else [])


# --------------------------------------------------------------------------- train

def test_train_writes_best_checkpoint_and_summary(trained_run):
    run, capture = trained_run
    assert capture["code"] == 0, capture["err"]
    assert (run / "best.pt").is_file()
    assert (run / "last.pt").is_file()
    summary = json.loads((run / "training_summary.json").read_text())
    assert summary["weights"] == "imagenet", "offline, the quick profile's ImageNet weights come from a package"
    assert summary["backbone"] == "efficientnet_lite0"
    assert summary["image_size"] == get_profile("quick").image_size
    assert summary["profile"]["name"] == "quick" and summary["profile"]["epochs"] == 1
    assert summary["n_train_photos"] + summary["n_val_photos"] == N_PHOTOS
    assert summary["n_val_photos"] >= 1 and summary["n_train_photos"] >= 1
    assert len(summary["history"]) == 1
    assert METRIC_KEYS <= set(summary["val"])
    assert "best epoch 1" in capture["out"]
    assert "best.pt" in capture["out"] and "training_summary.json" in capture["out"]
    assert "efficientnet_lite0: imagenet weights" in capture["out"]
    _, metadata = load_checkpoint(run / "best.pt", verbose=False)
    assert metadata["epoch"] == 1 and metadata["image_size"] == get_profile("quick").image_size


def test_train_refuses_an_existing_best_checkpoint(trained_run, photos_dir, capsys):
    run, _ = trained_run
    before = (run / "best.pt").read_bytes()
    summary_before = (run / "training_summary.json").read_text()
    code, out, err = run_cli(["train", "--images", str(photos_dir), "--out", str(run), "--epochs", "1",
                              "--device", "cpu", "--no-progress"], capsys)
    assert code == 2
    assert "error" in err and "best.pt" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert (run / "best.pt").read_bytes() == before
    assert (run / "training_summary.json").read_text() == summary_before


def test_train_overwrite_replaces_the_checkpoint(offline, photos_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"an old, broken checkpoint")
    code, out, err = run_cli(["train", "--images", str(photos_dir), "--out", str(run), "--epochs", "1",
                              "--max-photos", "3", "--device", "cpu", "--no-progress", "--overwrite"], capsys)
    assert code == 0, err
    _, metadata = load_checkpoint(run / "best.pt", verbose=False)
    assert metadata["n_train_photos"] + metadata["n_val_photos"] == 3, "--max-photos limits the photos"


def test_train_errors_exit_2_without_traceback(offline, photos_dir, tmp_path, capsys):
    code, _, err = run_cli(["train", "--images", str(tmp_path / "missing"), "--out", str(tmp_path / "r1")], capsys)
    assert code == 2 and "missing" in err and "Traceback" not in err
    one = tmp_path / "one"
    make_photos(one, 1)
    code, _, err = run_cli(["train", "--images", str(one), "--out", str(tmp_path / "r2"), "--epochs", "1",
                            "--no-progress"], capsys)
    assert code == 2 and "2 photos" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    code, _, err = run_cli(["train", "--images", str(bad), "--out", str(tmp_path / "r3")], capsys)
    assert code == 2 and "usable" in err
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r3").exists()


def test_argument_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--out", "somewhere"])  # --images is required
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["evaluate", "--checkpoint", "x.pt", "--images", "d", "--border", "alpha_mask"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2
    capsys.readouterr()


# --------------------------------------------------------------------------- evaluate

def test_evaluate_prints_exactly_one_json_object(trained_run, photos_dir, capsys):
    run, _ = trained_run
    code, out, err = run_cli(evaluate_argv(run, photos_dir), capsys)
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line of JSON, got {out!r}"
    result = json.loads(lines[0])
    assert isinstance(result, dict)
    assert METRIC_KEYS <= set(result)
    assert set(result) - METRIC_KEYS <= {"skipped", "head", "max_angle_deg"}, \
        "only the documented skipped count, head and angle range besides"
    assert result["max_angle_deg"] is None, "a full-circle model is evaluated on the whole circle"
    assert result["n"] == N_PHOTOS * 2
    assert 0.0 <= result["mae_deg"] <= 180.0
    assert 0.0 <= result["median_deg"] <= result["p90_deg"] <= 180.0
    assert 0.0 <= result["within_5"] <= result["within_10"] <= result["within_15"] <= 1.0
    for key in ("within_5", "within_10", "within_15"):
        assert math.isclose(result[key] * result["n"], round(result[key] * result["n"]), abs_tol=1e-9)


def test_evaluate_same_seed_same_numbers(trained_run, photos_dir, capsys):
    run, _ = trained_run
    first = json.loads(run_cli(evaluate_argv(run, photos_dir, seed=0), capsys)[1])
    second = json.loads(run_cli(evaluate_argv(run, photos_dir, seed=0), capsys)[1])
    other = json.loads(run_cli(evaluate_argv(run, photos_dir, seed=1), capsys)[1])
    assert first == second
    assert other["n"] == first["n"]
    assert other["mae_deg"] != first["mae_deg"], "another seed draws other angles"


def test_evaluate_matches_the_documented_protocol(trained_run, photos_dir, capsys):
    """n = photos × rotations; seeded angles uniform in [0, 360); crop border; centred square."""
    run, _ = trained_run
    result = json.loads(run_cli(evaluate_argv(run, photos_dir, seed=3, rotations=3), capsys)[1])
    model, metadata = load_checkpoint(run / "best.pt", verbose=False)
    photos = sorted(photos_dir.glob("*.jpg"))
    dataset = FixedRotationDataset(photos, metadata["image_size"], rotations=3, seed=3, border="crop")
    errors = []
    with torch.no_grad():
        for image, _, angle in dataset:
            predicted = angles.decode_angle_deg(model(image[None]).float())[0]
            errors.append(float(angles.circular_absolute_error_deg(predicted, angle)))
    errors = np.array(errors)
    assert result["n"] == len(errors) == N_PHOTOS * 3
    assert result["mae_deg"] == pytest.approx(errors.mean(), abs=1e-3)
    assert result["median_deg"] == pytest.approx(np.median(errors), abs=1e-3)
    assert result["within_15"] == pytest.approx(np.mean(errors <= 15.0))


def test_evaluate_human_readable_output(trained_run, photos_dir, capsys):
    run, _ = trained_run
    code, out, _ = run_cli(evaluate_argv(run, photos_dir, json_flag=False, border="reflect"), capsys)
    assert code == 0
    assert f"{N_PHOTOS * 2} rotated samples" in out and "MAE" in out and "°" in out


def test_evaluate_errors_exit_2_with_a_clear_message(trained_run, photos_dir, tmp_path, capsys):
    run, _ = trained_run
    code, out, err = run_cli(["evaluate", "--checkpoint", str(tmp_path / "nothing.pt"),
                              "--images", str(photos_dir), "--json"], capsys)
    assert code == 2
    assert out == ""
    assert "rotation-course evaluate: error" in err and "nothing.pt" in err
    assert "Traceback" not in err

    code, out, err = run_cli(["evaluate", "--checkpoint", str(run / "best.pt"),
                              "--images", str(tmp_path / "no-such-folder"), "--json"], capsys)
    assert code == 2 and out == ""
    assert "no-such-folder" in err and "Traceback" not in err

    fake = tmp_path / "fake.pt"
    fake.write_text("not a checkpoint")
    code, _, err = run_cli(["evaluate", "--checkpoint", str(fake), "--images", str(photos_dir)], capsys)
    assert code == 2 and "fake.pt" in err

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "truncated.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF")
    code, _, err = run_cli(["evaluate", "--checkpoint", str(run / "best.pt"), "--images", str(bad)], capsys)
    assert code == 2 and "usable" in err


def test_evaluate_folder_skips_bad_files_and_counts_them(trained_run, photos_dir, tmp_path):
    run, _ = trained_run
    mixed = tmp_path / "mixed"
    shutil.copytree(photos_dir, mixed)
    (mixed / "empty.jpg").write_bytes(b"")
    (mixed / "notes.png").write_text("text")
    result = evaluation.evaluate_folder(run / "best.pt", mixed, rotations=1, seed=0)
    assert result["n"] == N_PHOTOS
    assert result["skipped"] == 2


def test_evaluate_on_a_few_real_photos(trained_run, shared_photos, tmp_path):
    run, _ = trained_run
    few = tmp_path / "few"  # links, not copies, to three real photos
    few.mkdir()
    for path in sorted(shared_photos.rglob("*.jpg"))[:3]:
        (few / path.name).symlink_to(path)
    result = evaluation.evaluate_folder(run / "best.pt", few, rotations=1, seed=0)
    assert result["n"] == 3 and 0.0 <= result["mae_deg"] <= 180.0


# --------------------------------------------------------------------------- evaluation functions

class AngleReader(nn.Module):
    """Predicts (cos, sin) of (the angle written in pixel [0, 0, 0]) + offset degrees."""

    def __init__(self, offset_deg: float, scale: float = 1.0):
        super().__init__()
        self.offset = nn.Parameter(torch.tensor(float(offset_deg)), requires_grad=False)
        self.scale = scale

    def forward(self, x):
        return self.scale * angles.encode_angle_deg(x[:, 0, 0, 0] + self.offset)


def _angle_loader(true_deg):
    true = torch.tensor(true_deg, dtype=torch.float32)
    images = torch.zeros(len(true), 3, 4, 4)
    images[:, 0, 0, 0] = true
    return DataLoader(TensorDataset(images, angles.encode_angle_deg(true), true), batch_size=3)


@pytest.mark.parametrize("offset", [0.0, 7.0, -30.0, 200.0])
def test_predict_reports_circular_errors_and_loss(offset):
    true_deg = [0.0, 10.0, 90.0, 179.0, 355.0, 359.5, 200.0]
    result = evaluation.predict(AngleReader(offset, scale=0.5), _angle_loader(true_deg))
    expected_error = min(abs(offset) % 360, 360 - abs(offset) % 360)
    assert result["predicted_deg"].shape == (7,)
    assert np.all((result["predicted_deg"] >= 0) & (result["predicted_deg"] < 360))
    assert np.allclose(result["error_deg"], expected_error, atol=1e-3)
    assert np.allclose(result["true_deg"], true_deg)
    assert np.allclose(result["vector_norm"], 0.5, atol=1e-5)
    assert result["outputs"].shape == (7, 2)
    # Mean over the two components of |0.5·u(θ + δ) − u(θ)|² = 0.25 + 1 − cos δ.
    delta = math.radians(offset)
    expected_loss = (0.25 + 1.0 - 2 * 0.5 * math.cos(delta)) / 2
    assert result["loss"] == pytest.approx(expected_loss, abs=1e-4)


def test_evaluate_loader_adds_the_summary():
    result = evaluation.evaluate_loader(AngleReader(12.0), _angle_loader([5.0, 100.0, 300.0]))
    summary = result["summary"]
    assert METRIC_KEYS <= set(summary)
    assert summary["n"] == 3
    assert summary["mae_deg"] == pytest.approx(12.0, abs=1e-3)
    assert summary["within_10"] == 0.0 and summary["within_15"] == 1.0


def test_evaluate_folder_errors(offline, photos_dir, tmp_path):
    with pytest.raises(FileNotFoundError):
        evaluation.evaluate_folder(tmp_path / "missing.pt", photos_dir)


# --------------------------------------------------------------------------- the console script

def test_console_script_help():
    script = Path(sys.executable).parent / "rotation-course"
    if not script.exists():
        pytest.skip("the rotation-course script is not installed in this environment")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout and "evaluate" in done.stdout
    assert "rotation-course" in done.stdout


def test_small_tilt_training_is_recorded_and_evaluated_in_its_range(offline, photos_dir, tmp_path, capsys):
    run = tmp_path / "tilt"
    code, out, err = run_cli(["train", "--images", str(photos_dir), "--out", str(run), "--epochs", "1",
                              "--max-photos", "3", "--device", "cpu", "--no-progress", "--max-angle", "15"], capsys)
    assert code == 0, err
    _, metadata = load_checkpoint(run / "best.pt", verbose=False)
    assert metadata["max_angle_deg"] == 15 and metadata["profile"]["max_angle_deg"] == 15
    code, out, _ = run_cli(evaluate_argv(run, photos_dir), capsys)
    assert code == 0 and json.loads(out)["max_angle_deg"] == 15
    code, out, _ = run_cli(evaluate_argv(run, photos_dir) + ["--max-angle", "180"], capsys)
    assert json.loads(out)["max_angle_deg"] == 180
    code, _, err = run_cli(evaluate_argv(run, photos_dir) + ["--tta"], capsys)
    assert code == 2 and "±15°" in err
    assert run_cli(["train", "--images", str(photos_dir), "--out", str(tmp_path / "bad"), "--max-angle", "0"],
                   capsys)[0] == 2


def test_small_tilt_angles_stay_in_their_range(photos_dir):
    from rotation_utils.datasets import FixedRotationDataset, OnTheFlyRotationDataset

    paths = sorted(photos_dir.glob("*.png")) or sorted(photos_dir.iterdir())
    fixed = FixedRotationDataset(paths[:3], 32, rotations=20, max_angle_deg=15)
    signed = [((a + 180) % 360) - 180 for _, a in fixed.samples]
    assert max(abs(a) for a in signed) <= 15 and min(signed) < -5 and max(signed) > 5
    drawn = OnTheFlyRotationDataset(paths[:2], 32, max_angle_deg=10)
    angles_seen = [((float(drawn[i % 2][2]) + 180) % 360) - 180 for i in range(40)]
    assert max(abs(a) for a in angles_seen) <= 10 and min(angles_seen) < 0 < max(angles_seen)
