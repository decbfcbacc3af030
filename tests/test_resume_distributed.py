"""Exact resume (``last.pt`` every epoch, ``--resume``) and two processes under torchrun with gloo.

Small photos, a narrow ResNet18 from random weights (its head has dropout, so the random
states matter), one CPU thread: seconds per run.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rotation_utils import cli, evaluation, models, resume, training
from rotation_utils.profiles import get_profile
from test_backbones import band_photos

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROJECT = Path(__file__).resolve().parents[1]


def photos(folder: Path, n: int = 7, seed: int = 0) -> list[Path]:
    """``n`` small photos with a clear 'up' (those of the backbone tests)."""
    return band_photos(folder, n, seed)


def reference_profile(**changes):
    """The reference's step schedule (no clock in it), a tiny network, EMA and dropout on."""
    settings = dict(image_size=32, epochs=4, time_budget_s=None, batch_size=2, backbone="resnet18",
                    weights="random", width=8, lr_schedule="step", lr_step_epochs=1, lr_gamma=0.5,
                    warmup_steps=0, ema_decay=0.9, val_fraction=0.3, patience=10)
    settings.update(changes)
    return get_profile("quick", **settings)


def max_difference(a: Path, b: Path, key=("model_state",)) -> float:
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    for k in key:
        sa, sb = sa[k], sb[k]
    assert sa.keys() == sb.keys()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) if sa[k].numel() else 0.0 for k in sa)


def train(paths, profile, out, resume=False):
    torch.manual_seed(0)
    return training.train_on_photos(paths, profile, out, seed=0, device="cpu", progress=False, resume=resume)


def test_two_epochs_resumed_to_four_equal_four_straight(tmp_path):
    paths = photos(tmp_path / "photos")
    straight = train(paths, reference_profile(epochs=4), tmp_path / "straight")
    train(paths, reference_profile(epochs=2), tmp_path / "resumed")
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["training_state"]["epoch"] == 2
    resumed = train(paths, reference_profile(epochs=4), tmp_path / "resumed", resume=True)

    assert resumed["resumed"] is True and [r["epoch"] for r in resumed["history"]] == [1, 2, 3, 4]
    for name in ("last.pt", "best.pt"):
        assert max_difference(tmp_path / "straight" / name, tmp_path / "resumed" / name) <= 1e-6
    # the raw weights (not only their average) and the optimiser's moments agree too
    assert max_difference(tmp_path / "straight" / "last.pt", tmp_path / "resumed" / "last.pt",
                          ("training_state", "model")) <= 1e-6
    assert [r["val_mae_deg"] for r in straight["history"]] == pytest.approx(
        [r["val_mae_deg"] for r in resumed["history"]], abs=1e-6)
    results = [evaluation.evaluate_folder(tmp_path / run / "best.pt", tmp_path / "photos", rotations=2, device="cpu")
               for run in ("straight", "resumed")]
    assert json.dumps(results[0]) == json.dumps(results[1])


def test_a_run_killed_after_epoch_two_resumes_exactly_with_the_quick_recipe(tmp_path, monkeypatch):
    """The quick profile's cosine schedule with warm-up, bound by epochs: a run stopped after
    its second ``last.pt`` and resumed ends where the uninterrupted run ends."""
    paths = photos(tmp_path / "photos")
    profile = get_profile("quick", image_size=32, epochs=4, time_budget_s=None, batch_size=2,
                          backbone="resnet18", weights="random", width=8, warmup_steps=3, val_fraction=0.3)
    train(paths, profile, tmp_path / "straight")

    real_save = training.save_checkpoint
    saves = {"last": 0}

    def save_then_die(path, *args, **kwargs):
        real_save(path, *args, **kwargs)
        if Path(path).name == "last.pt":
            saves["last"] += 1
            if saves["last"] == 2:
                raise KeyboardInterrupt("killed after epoch 2")

    monkeypatch.setattr(training, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(paths, profile, tmp_path / "killed")
    monkeypatch.setattr(training, "save_checkpoint", real_save)
    assert not (tmp_path / "killed" / "training_summary.json").exists()
    train(paths, profile, tmp_path / "killed", resume=True)
    assert max_difference(tmp_path / "straight" / "last.pt", tmp_path / "killed" / "last.pt") <= 1e-6


def test_resume_is_refused_under_another_recipe_with_the_differences_listed(tmp_path):
    paths = photos(tmp_path / "photos")
    train(paths, reference_profile(epochs=1), tmp_path / "run")
    before = (tmp_path / "run" / "last.pt").read_bytes()
    with pytest.raises(ValueError) as err:
        train(paths, reference_profile(epochs=2, lr=5e-4, image_size=40), tmp_path / "run", resume=True)
    assert "lr: saved 0.001, asked 0.0005" in str(err.value) and "image_size: saved 32, asked 40" in str(err.value)
    with pytest.raises(ValueError, match="backbone"):
        train(paths, reference_profile(epochs=2, backbone="efficientnet_lite0", width=64), tmp_path / "run",
              resume=True)
    with pytest.raises(ValueError, match="photos_digest"):
        train(paths[:-1] + [photos(tmp_path / "other", 1, seed=5)[0].rename(tmp_path / "other" / "x.png")],
              reference_profile(epochs=2), tmp_path / "run", resume=True)
    assert (tmp_path / "run" / "last.pt").read_bytes() == before, "a refused resume writes nothing"


def test_resume_without_a_run_or_a_training_state_is_a_clear_error(tmp_path):
    paths = photos(tmp_path / "photos", 3)
    with pytest.raises(FileNotFoundError, match="no run folder"):
        train(paths, reference_profile(epochs=1), tmp_path / "missing", resume=True)
    (tmp_path / "old").mkdir()
    torch.save({"model_state": {}, "metadata": {}}, tmp_path / "old" / "last.pt")
    with pytest.raises(ValueError, match="no training state"):
        train(paths, reference_profile(epochs=1), tmp_path / "old", resume=True)


def test_cli_resume_takes_the_runs_own_profile_and_binds_by_epochs(tmp_path, capsys):
    photos(tmp_path / "photos", 5)
    common = ["--images", str(tmp_path / "photos"), "--backbone", "resnet18", "--weights", "random",
              "--device", "cpu", "--no-progress", "--profile", "laptop"]
    assert cli.main(["train", *common, "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "training_summary.json").read_text())
    assert summary["profile"]["time_budget_s"] is None and summary["profile"]["epochs"] == 1
    assert summary["stop_reason"] == "all 1 epochs done"
    # resumed with no --profile: the run's own (laptop), two more epochs
    assert cli.main(["train", "--images", str(tmp_path / "photos"), "--device", "cpu", "--no-progress",
                     "--resume", str(tmp_path / "run"), "--epochs", "3"]) == 0
    summary = json.loads((tmp_path / "run" / "training_summary.json").read_text())
    assert [row["epoch"] for row in summary["history"]] == [1, 2, 3] and summary["profile"]["name"] == "laptop"
    capsys.readouterr()
    # under another profile: refused, exit status 2, the differences named
    assert cli.main(["train", *common[:-2], "--profile", "quick", "--epochs", "4",
                     "--resume", str(tmp_path / "run")]) == 2
    assert "name: saved 'laptop', asked 'quick'" in capsys.readouterr().err


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_cli_refuses_epochs_below_one(tmp_path, capsys, epochs):
    photos(tmp_path / "photos", 3)
    assert cli.main(["train", "--images", str(tmp_path / "photos"), "--out", str(tmp_path / "run"),
                     "--epochs", epochs]) == 2
    assert "--epochs must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_fit_refuses_zero_epochs(tmp_path):
    paths = photos(tmp_path / "photos", 3)
    with pytest.raises(ValueError, match="epochs must be"):
        train(paths, reference_profile(epochs=0), tmp_path / "run")


def test_checkpoint_with_nan_weights_or_odd_metadata_is_refused(tmp_path):
    model = models.build_regressor("resnet18", "random", width=8, verbose=False)
    models.save_checkpoint(tmp_path / "good.pt", model, {"backbone": "resnet18", "width": 8})
    models.load_checkpoint(tmp_path / "good.pt", verbose=False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["fc.1.weight"][0, 0] = float("nan")
    torch.save({"model_state": state, "metadata": {"backbone": "resnet18", "width": 8}}, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match="not finite.*fc.1.weight"):
        models.load_checkpoint(tmp_path / "nan.pt", verbose=False)
    for name, metadata, match in (("list.pt", ["resnet18"], "metadata is a list"),
                                  ("width.pt", {"backbone": "resnet18", "width": "wide"}, "whole numbers"),
                                  ("backbone.pt", {"backbone": 18}, "must be a name")):
        torch.save({"model_state": model.state_dict(), "metadata": metadata}, tmp_path / name)
        with pytest.raises(ValueError, match=match):
            models.load_checkpoint(tmp_path / name, verbose=False)


def test_profile_differences_lists_each_field():
    a, b = get_profile("quick").to_dict(), get_profile("quick", lr=2e-3, epochs=3).to_dict()
    assert resume.profile_differences(a, b) == ["lr: saved 0.001, asked 0.002"]


def test_two_processes_with_gloo_train_one_epoch_and_the_checkpoint_evaluates(tmp_path):
    photos(tmp_path / "photos", 9)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "rotation_utils.cli", "train", "--images", str(tmp_path / "photos"),
               "--out", str(tmp_path / "run"), "--backbone", "resnet18", "--weights", "random",
               "--epochs", "1", "--device", "cpu"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("best epoch 1") == 1, "rank 0 alone prints the result"
    assert "2 processes (gloo)" in done.stdout
    summary = json.loads((tmp_path / "run" / "training_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["val_samples"] == summary["val"]["n"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.pt", "last.pt", "training_summary.json"]
    model, metadata = models.load_checkpoint(tmp_path / "run" / "best.pt", verbose=False)
    assert metadata["profile"]["epochs"] == 1
    result = evaluation.evaluate_folder(tmp_path / "run" / "best.pt", tmp_path / "photos", rotations=2, device="cpu")
    assert result["n"] == 18 and 0.0 <= result["mae_deg"] <= 180.0
    # the two processes shared the validation set: one process measuring the same photos agrees
    from rotation_utils.datasets import split_photos
    _, val_paths = split_photos(sorted((tmp_path / "photos").iterdir()), metadata["profile"]["val_fraction"], 0)
    profile = get_profile("quick", **{k: v for k, v in metadata["profile"].items() if k != "name"})
    model = model.to(memory_format=torch.channels_last)  # as trained and validated (the quick profile's)
    again = evaluation.evaluate_loader(model, training.validation_loader(val_paths, profile), device="cpu")
    assert again["summary"]["n"] == summary["val"]["n"]
    assert again["summary"]["mae_deg"] == pytest.approx(summary["val"]["mae_deg"], abs=1e-3)


def test_compile_wraps_only_the_training_step_and_checkpoints_stay_plain(tmp_path, monkeypatch):
    """``--compile``: the loop trains through torch.compile's wrapper (stood in for here: a real
    compile on the CPU takes a minute), while best.pt and last.pt hold the plain network."""
    calls = []

    class Compiled(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self._orig_mod = inner

        def forward(self, x):
            calls.append(len(x))
            return self._orig_mod(x)

    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: Compiled(module))
    paths = photos(tmp_path / "photos", 5)
    summary = train(paths, reference_profile(epochs=1, compile=True), tmp_path / "run")
    assert calls and sum(calls) == summary["train_samples_per_epoch"] - summary["train_samples_per_epoch"] % 2
    models.load_checkpoint(tmp_path / "run" / "best.pt", verbose=False)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["training_state"]["model"]
    assert not any(key.startswith("_orig_mod") for key in state)
