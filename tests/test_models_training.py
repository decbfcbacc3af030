"""Unit tests of rotation_utils.models and rotation_utils.training on tiny photos and few steps.

ImageNet weights are never downloaded: TORCH_HOME points into tmp_path and torch.hub's download
is replaced by a function that raises URLError, so no test reaches the network or ~/.cache.
"""
import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from rotation_utils import angles, training
from rotation_utils.models import (CheckpointExistsError, build_resnet18_regressor, count_parameters,
                                   load_checkpoint, save_checkpoint, set_trainable)
from rotation_utils.profiles import get_profile

RESNET18_FILE = "resnet18-f37072fd.pth"  # the file name of torchvision's IMAGENET1K_V1 weights
SUMMARY_KEYS = {"best_epoch", "stop_reason", "train_seconds", "device", "batch_size",
                "train_samples_per_epoch", "val_samples", "val", "history", "image_size",
                "num_outputs", "profile"}
HISTORY_KEYS = {"epoch", "train_loss", "val_loss", "val_mae_deg", "val_median_deg", "lr", "seconds"}
METRIC_KEYS = {"n", "mae_deg", "median_deg", "p90_deg", "within_5", "within_10", "within_15"}


# --------------------------------------------------------------------------- helpers

class DownloadBlocked:
    """Stands in for torch.hub's download: records the call and fails like an offline machine."""

    def __init__(self):
        self.calls = []

    def __call__(self, url, *args, **kwargs):
        self.calls.append(url)
        raise urllib.error.URLError("network disabled in the unit tests")


@pytest.fixture
def offline_torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME in tmp_path and a torch.hub that cannot download."""
    home = tmp_path / "torch-home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    blocked = DownloadBlocked()
    monkeypatch.setattr(torch.hub, "download_url_to_file", blocked)

    def no_urlopen(*args, **kwargs):
        raise urllib.error.URLError("network disabled in the unit tests")

    monkeypatch.setattr(torch.hub, "urlopen", no_urlopen, raising=False)
    return home, blocked


def make_photos(folder: Path, n: int, size=(64, 48)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rng = np.random.default_rng(i)
        w, h = size
        arr = np.zeros((h, w, 3), dtype=np.uint8)
        arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
        arr[..., 1] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
        arr[: h // 3] = rng.integers(0, 256, size=3)
        path = folder / f"p{i}.png"
        Image.fromarray(arr, "RGB").save(path)
        paths.append(path)
    return paths


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class TinyRegressor(nn.Module):
    """A few thousand parameters standing in for ResNet18 where only the loop is under test."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten())
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.features(x))


def tiny_profile(**changes):
    settings = dict(image_size=32, epochs=2, time_budget_s=None, batch_size=8, train_repeats=1, warmup_steps=0)
    settings.update(changes)
    return get_profile("quick", **settings)


def same_outputs(a: nn.Module, b: nn.Module) -> bool:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.allclose(a.eval()(x), b.eval()(x), atol=1e-6)


# --------------------------------------------------------------------------- the model

def test_regressor_head_is_dropout_and_linear_512_to_2():
    model, weights = build_resnet18_regressor(pretrained=False, verbose=False)
    assert weights == "random"
    assert isinstance(model.fc, nn.Sequential) and len(model.fc) == 2
    dropout, linear = model.fc
    assert isinstance(dropout, nn.Dropout) and dropout.p == pytest.approx(0.25)
    assert isinstance(linear, nn.Linear)
    assert (linear.in_features, linear.out_features) == (512, 2)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(3, 3, 64, 64))
    assert out.shape == (3, 2)
    assert torch.isfinite(out).all()


def test_regressor_other_heads_and_dropout():
    model, _ = build_resnet18_regressor(pretrained=False, dropout=0.5, num_outputs=5, verbose=False)
    assert model.fc[0].p == pytest.approx(0.5)
    assert model.fc[1].out_features == 5
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 48)).shape == (1, 5)


def test_parameter_count_is_resnet18_with_the_new_head():
    model, _ = build_resnet18_regressor(pretrained=False, verbose=False)
    reference = torchvision.models.resnet18(weights=None)
    plain = sum(p.numel() for p in reference.parameters())
    assert count_parameters(model) == plain - (512 * 1000 + 1000) + (512 * 2 + 2)


def test_pretrained_offline_falls_back_to_random_and_says_so(offline_torch_home, capsys):
    home, blocked = offline_torch_home
    model, weights = build_resnet18_regressor(pretrained=True)
    assert weights == "random"
    assert blocked.calls and RESNET18_FILE in blocked.calls[0], "the download should have been tried"
    printed = capsys.readouterr().out
    assert "could not be loaded" in printed and "random weights" in printed
    assert "URLError" in printed
    assert model.fc[1].out_features == 2
    assert not list(home.rglob("*.pth")), "nothing is cached after a failed download"


def test_pretrained_quiet_fallback_says_nothing_of_its_own(offline_torch_home, capsys):
    _, weights = build_resnet18_regressor(pretrained=True, verbose=False)
    assert weights == "random"
    assert "random weights" not in capsys.readouterr().out  # (torch.hub may still announce its download)


def test_pretrained_loads_cached_weights_from_torch_home(offline_torch_home, capsys):
    home, blocked = offline_torch_home
    torch.manual_seed(123)
    reference = torchvision.models.resnet18()  # random weights standing in for ImageNet's
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(reference.state_dict(), checkpoints / RESNET18_FILE)
    model, weights = build_resnet18_regressor(pretrained=True)
    assert weights == "imagenet"
    assert blocked.calls == [], "a cached file must not be downloaded again"
    assert "ImageNet weights loaded" in capsys.readouterr().out
    loaded = model.state_dict()
    compared = 0
    for key, value in reference.state_dict().items():
        if key.startswith("fc."):
            continue
        assert torch.equal(loaded[key], value), key
        compared += 1
    assert compared > 100
    assert model.fc[1].weight.shape == (2, 512)


def test_pretrained_with_a_corrupt_cached_file_falls_back(offline_torch_home, capsys):
    home, _ = offline_torch_home
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / RESNET18_FILE).write_bytes(b"not a checkpoint at all")
    _, weights = build_resnet18_regressor(pretrained=True)
    assert weights == "random"
    assert "random weights" in capsys.readouterr().out


def test_set_trainable():
    model, _ = build_resnet18_regressor(pretrained=False, verbose=False)
    total = count_parameters(model)
    assert set_trainable(model, "all") == total
    assert count_parameters(model, trainable_only=True) == total
    assert set_trainable(model, "head") == 512 * 2 + 2
    assert all(p.requires_grad == n.startswith("fc") for n, p in model.named_parameters())
    layer4 = sum(p.numel() for p in model.layer4.parameters())
    assert set_trainable(model, "layer4+head") == layer4 + 512 * 2 + 2
    assert not model.conv1.weight.requires_grad and model.layer4[0].conv1.weight.requires_grad
    assert set_trainable(model, "all") == total
    with pytest.raises(ValueError):
        set_trainable(model, "everything")


# --------------------------------------------------------------------------- checkpoints

def test_save_checkpoint_refuses_to_overwrite_and_keeps_the_old_file(tmp_path):
    model, _ = build_resnet18_regressor(pretrained=False, verbose=False)
    path = save_checkpoint(tmp_path / "run" / "best.pt", model, {"epoch": 1, "val_mae_deg": 12.5})
    assert path == tmp_path / "run" / "best.pt" and path.is_file()
    before = path.read_bytes()
    other, _ = build_resnet18_regressor(pretrained=False, verbose=False)
    with pytest.raises(CheckpointExistsError):
        save_checkpoint(path, other, {"epoch": 2})
    assert issubclass(CheckpointExistsError, FileExistsError)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["best.pt"], "no temporary file left"
    save_checkpoint(path, other, {"epoch": 2}, overwrite=True)
    assert path.read_bytes() != before
    assert torch.load(path, weights_only=True)["metadata"]["epoch"] == 2


def test_load_checkpoint_round_trip(tmp_path, capsys):
    model, _ = build_resnet18_regressor(pretrained=False, verbose=False)
    with torch.no_grad():
        model.fc[1].bias.fill_(0.3)  # something a fresh model would not have
    metadata = {"epoch": 3, "val_mae_deg": 7.25, "image_size": 32, "num_outputs": 2,
                "profile": {"name": "quick", "lr": 0.002}}
    path = save_checkpoint(tmp_path / "best.pt", model, metadata, note="extra value")
    loaded, meta = load_checkpoint(path)
    assert meta == metadata
    assert not loaded.training, "a loaded model is in eval mode"
    assert same_outputs(model, loaded)
    assert torch.load(path, weights_only=True)["note"] == "extra value"
    printed = capsys.readouterr().out
    assert "epoch 3" in printed and "7.25" in printed


def test_load_checkpoint_with_another_head(tmp_path):
    model, _ = build_resnet18_regressor(pretrained=False, num_outputs=4, verbose=False)
    path = save_checkpoint(tmp_path / "bins.pt", model, {"num_outputs": 4})
    loaded, _ = load_checkpoint(path, verbose=False)
    assert loaded.fc[1].out_features == 4
    assert same_outputs(model, loaded)


def test_load_checkpoint_of_a_data_parallel_model(tmp_path):
    model, _ = build_resnet18_regressor(pretrained=False, verbose=False)
    wrapped = nn.DataParallel(model)
    path = save_checkpoint(tmp_path / "dp.pt", wrapped, {})
    loaded, _ = load_checkpoint(path, verbose=False)
    assert same_outputs(model, loaded)


def test_load_checkpoint_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path)  # a folder is not a checkpoint file
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="notes.pt"):
        load_checkpoint(text)
    no_state = tmp_path / "dict.pt"
    torch.save({"weights": torch.zeros(3)}, no_state)
    with pytest.raises(ValueError, match="model_state"):
        load_checkpoint(no_state)
    a_list = tmp_path / "list.pt"
    torch.save([1, 2, 3], a_list)
    with pytest.raises(ValueError):
        load_checkpoint(a_list)


class _Unsafe:
    """An arbitrary pickled object: torch.load(weights_only=True) must refuse it."""


def test_load_checkpoint_refuses_arbitrary_pickles(tmp_path):
    path = tmp_path / "pickle.pt"
    torch.save({"model_state": {}, "payload": _Unsafe()}, path)
    with pytest.raises(ValueError):
        load_checkpoint(path, verbose=False)


def test_load_checkpoint_of_another_architecture_raises_value_error(tmp_path):
    path = tmp_path / "plain_resnet.pt"
    torch.save({"model_state": torchvision.models.resnet18(weights=None).state_dict(), "metadata": {}}, path)
    with pytest.raises(ValueError):
        load_checkpoint(path, verbose=False)


# --------------------------------------------------------------------------- training

def test_probe_batch_size_on_cpu_returns_the_default():
    model, _ = build_resnet18_regressor(pretrained=False, verbose=False)
    assert training.probe_batch_size(model, 32, device="cpu") == 64
    assert training.probe_batch_size(model, 224, device=torch.device("cpu"), cpu_default=16) == 16


def test_make_loaders_batches_and_sizes(tmp_path):
    paths = make_photos(tmp_path, 5)
    profile = tiny_profile(batch_size=2, train_repeats=2)
    train_loader, val_loader = training.make_loaders(paths[:3], paths[3:], profile, val_rotations=3, seed=0)
    assert len(train_loader.dataset) == 6
    assert len(val_loader.dataset) == 6
    images, targets, angle_deg = next(iter(train_loader))
    assert images.shape == (2, 3, 32, 32) and targets.shape == (2, 2) and angle_deg.shape == (2,)
    assert torch.allclose(targets, angles.encode_angle_deg(angle_deg), atol=1e-6)
    v1 = [a for _, _, batch in val_loader for a in batch.tolist()]
    v2 = [a for _, _, batch in training.make_loaders(paths[:3], paths[3:], profile, val_rotations=3)[1]
          for a in batch.tolist()]
    assert v1 == v2, "validation angles are seeded"


def test_make_loaders_rejects_photos_in_both_splits(tmp_path):
    paths = make_photos(tmp_path, 4)
    with pytest.raises(ValueError, match="both"):
        training.make_loaders(paths[:3], paths[2:], tiny_profile())


def test_make_loaders_rejects_the_same_photo_under_two_spellings(tmp_path, monkeypatch):
    paths = make_photos(tmp_path / "photos", 4)
    monkeypatch.chdir(tmp_path)
    relative = Path("photos") / paths[0].name
    assert relative.resolve() == paths[0].resolve()
    with pytest.raises(ValueError):
        training.make_loaders([relative, paths[1]], [paths[0], paths[2]], tiny_profile())


def tiny_loop_state(model, lr=1e-3):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return training.LoopState(model, optimizer, scheduler, torch.amp.GradScaler("cpu", enabled=False),
                              torch.device("cpu"))


def test_train_one_epoch_reduces_to_a_dict_and_respects_a_deadline(tmp_path):
    paths = make_photos(tmp_path, 4)
    train_loader, _ = training.make_loaders(paths[:3], paths[3:], tiny_profile(batch_size=1, train_repeats=2))
    state = tiny_loop_state(TinyRegressor())
    stats = training.train_one_epoch(state, train_loader, deadline=0.0, progress=False)  # long past
    assert stats["stopped_early"] is True
    assert stats["samples"] == 1 and state.step == 1
    assert np.isfinite(stats["loss"]) and stats["loss"] >= 0
    stats = training.train_one_epoch(state, train_loader, progress=False)
    assert stats["stopped_early"] is False and stats["samples"] == 6 and state.step == 7


def test_train_one_epoch_steps_the_optimizer_and_the_schedule(tmp_path):
    paths = make_photos(tmp_path, 4)
    train_loader, _ = training.make_loaders(paths[:3], paths[3:], tiny_profile(batch_size=2, train_repeats=2))
    model = TinyRegressor()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)
    state = training.LoopState(model, optimizer, scheduler, torch.amp.GradScaler("cpu", enabled=False),
                               torch.device("cpu"))
    training.train_one_epoch(state, train_loader, progress=False)
    assert state.step == 3
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.5 ** 3)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_fit_writes_checkpoints_and_summary(tmp_path):
    paths = make_photos(tmp_path / "photos", 6)
    # float32 and the default memory format, so that re-evaluating gives the very same numbers
    profile = tiny_profile(cpu_bf16=False, channels_last=False)
    train_loader, val_loader = training.make_loaders(paths[:4], paths[4:], profile, val_rotations=2)
    torch.manual_seed(0)
    model, _ = build_resnet18_regressor(pretrained=False, verbose=False)
    out = tmp_path / "run"
    summary = training.fit(model, train_loader, val_loader, profile, out, device="cpu", progress=False,
                           extra_metadata={"weights": "random"})
    assert {p.name for p in out.iterdir()} == {"best.pt", "last.pt", "training_summary.json"}
    assert SUMMARY_KEYS <= set(summary)
    on_disk = json.loads((out / "training_summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert summary["weights"] == "random"
    assert summary["image_size"] == 32 and summary["num_outputs"] == 2
    assert summary["profile"]["name"] == "quick" and summary["profile"]["epochs"] == 2
    assert summary["device"] == "cpu"
    assert summary["batch_size"] == 8
    assert summary["train_samples_per_epoch"] == 4 and summary["val_samples"] == 4
    assert summary["train_seconds"] > 0
    assert summary["stop_reason"] == "all 2 epochs done"

    history = summary["history"]
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(HISTORY_KEYS <= set(row) for row in history)
    assert all(0.0 <= row["val_mae_deg"] <= 180.0 for row in history)
    best_row = min(history, key=lambda row: row["val_mae_deg"])
    assert summary["best_epoch"] == best_row["epoch"]
    assert METRIC_KEYS <= set(summary["val"])
    assert summary["val"]["n"] == 4
    assert summary["val"]["mae_deg"] == pytest.approx(best_row["val_mae_deg"])

    best, best_meta = load_checkpoint(out / "best.pt", verbose=False)
    assert best_meta["epoch"] == summary["best_epoch"]
    assert best_meta["val_mae_deg"] == pytest.approx(best_row["val_mae_deg"])
    assert best_meta["image_size"] == 32
    last = torch.load(out / "last.pt", weights_only=True)
    assert last["metadata"]["epoch"] == 2
    state = last["training_state"]
    assert state["epoch"] == 2 and state["step"] == 2 * len(train_loader)
    assert {"model", "ema", "optimizer", "scheduler", "scaler", "rng"} <= set(state)
    assert summary["world_size"] == 1 and summary["resumed"] is False
    _, last_meta = load_checkpoint(out / "last.pt", verbose=False)
    assert last_meta["val_mae_deg"] == pytest.approx(history[-1]["val_mae_deg"])

    # The best checkpoint reproduces its validation MAE.
    from rotation_utils.evaluation import evaluate_loader
    again = evaluate_loader(best, val_loader, device="cpu")
    assert again["summary"]["mae_deg"] == pytest.approx(best_row["val_mae_deg"], abs=1e-3)


def test_fit_refuses_an_existing_best_checkpoint(tmp_path):
    paths = make_photos(tmp_path / "photos", 3)
    profile = tiny_profile(epochs=1)
    train_loader, val_loader = training.make_loaders(paths[:2], paths[2:], profile, val_rotations=1)
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.pt").write_bytes(b"earlier run")
    model = TinyRegressor()
    with pytest.raises(CheckpointExistsError):
        training.fit(model, train_loader, val_loader, profile, out, device="cpu", progress=False)
    assert (out / "best.pt").read_bytes() == b"earlier run"
    assert {p.name for p in out.iterdir()} == {"best.pt"}, "nothing written before refusing"
    summary = training.fit(model, train_loader, val_loader, profile, out, device="cpu", progress=False,
                           overwrite=True)
    assert (out / "best.pt").read_bytes() != b"earlier run"
    assert summary["best_epoch"] == 1


def test_fit_stops_at_the_time_budget(tmp_path):
    paths = make_photos(tmp_path / "photos", 3)
    profile = tiny_profile(epochs=50, time_budget_s=1e-6, batch_size=1)
    train_loader, val_loader = training.make_loaders(paths[:2], paths[2:], profile, val_rotations=1)
    model = TinyRegressor()
    summary = training.fit(model, train_loader, val_loader, profile, tmp_path / "run", device="cpu",
                           progress=False)
    assert len(summary["history"]) == 1
    assert "time budget" in summary["stop_reason"]
    assert (tmp_path / "run" / "best.pt").is_file()


def test_fit_stops_early_without_improvement(tmp_path):
    paths = make_photos(tmp_path / "photos", 3)
    profile = tiny_profile(epochs=6, patience=1, lr=0.0, weight_decay=0.0)  # lr 0: nothing improves
    train_loader, val_loader = training.make_loaders(paths[:2], paths[2:], profile, val_rotations=1)
    model = TinyRegressor()
    summary = training.fit(model, train_loader, val_loader, profile, tmp_path / "run", device="cpu",
                           progress=False)
    assert len(summary["history"]) == 2
    assert summary["best_epoch"] == 1
    assert "early stopping" in summary["stop_reason"]


def test_train_on_photos_errors(tmp_path):
    paths = make_photos(tmp_path / "photos", 2)
    with pytest.raises(ValueError):
        training.train_on_photos(paths[:1], tiny_profile(), tmp_path / "run", progress=False)
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.pt").write_bytes(b"keep me")
    with pytest.raises(CheckpointExistsError):
        training.train_on_photos(paths, tiny_profile(), out, progress=False)
    assert (out / "best.pt").read_bytes() == b"keep me"


def test_default_device_is_cuda_only_when_visible():
    assert training.default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------- narrower ResNet18, schedule

def test_resnet18_of_width_32_has_every_stage_halved():
    from rotation_utils.models import resnet18_of_width
    narrow = resnet18_of_width(32)
    assert narrow.conv1.out_channels == 32
    assert [getattr(narrow, f"layer{i}")[-1].conv2.out_channels for i in range(1, 5)] == [32, 64, 128, 256]
    assert narrow.fc.in_features == 256
    # about a quarter of the parameters of the standard network (convolutions scale with width²)
    ratio = count_parameters(narrow) / count_parameters(torchvision.models.resnet18(weights=None))
    assert 0.2 < ratio < 0.3
    assert resnet18_of_width(64).conv1.out_channels == 64


@pytest.mark.parametrize("width", [4, 0, -8, 12.5])
def test_resnet18_of_width_rejects_bad_widths(width):
    from rotation_utils.models import resnet18_of_width
    with pytest.raises(ValueError, match="width"):
        resnet18_of_width(width)


def test_narrow_regressor_says_it_has_no_imagenet_weights_and_never_downloads(offline_torch_home, capsys):
    _, blocked = offline_torch_home
    model, weights = build_resnet18_regressor(pretrained=True, width=32)
    assert weights == "random"
    assert "width 32" in capsys.readouterr().out
    assert blocked.calls == []
    head = model.fc[-1]
    assert isinstance(model.fc[0], nn.Dropout) and (head.in_features, head.out_features) == (256, 2)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 96, 96)).shape == (2, 2)


def test_fit_records_the_width_and_load_checkpoint_rebuilds_it(tmp_path):
    paths = make_photos(tmp_path / "photos", 4)
    profile = tiny_profile(epochs=1, width=16, channels_last=True)
    train_loader, val_loader = training.make_loaders(paths[:3], paths[3:], profile, val_rotations=2)
    torch.manual_seed(0)
    model, _ = build_resnet18_regressor(pretrained=False, verbose=False, width=16)
    summary = training.fit(model, train_loader, val_loader, profile, tmp_path / "run", device="cpu",
                           progress=False)
    assert summary["width"] == 16
    loaded, metadata = load_checkpoint(tmp_path / "run" / "best.pt", verbose=False)
    assert metadata["width"] == 16 and loaded.conv1.out_channels == 16
    from rotation_utils.evaluation import evaluate_loader
    again = evaluate_loader(loaded, val_loader, device="cpu", cpu_bf16=profile.cpu_bf16)
    # bfloat16 kernels differ a little between memory formats: hundredths of a degree
    assert again["summary"]["mae_deg"] == pytest.approx(summary["val"]["mae_deg"], abs=0.2)


def test_cosine_schedule_over_epochs_falls_from_lr_to_zero():
    profile = tiny_profile(epochs=2, lr=0.01, lr_schedule="cosine", time_budget_s=None)
    rates = [training.lr_factor(step, profile, steps_per_epoch=5) for step in range(10)]
    assert rates[0] == pytest.approx(1.0)
    assert rates[5] == pytest.approx(0.5)  # half-way: half the rate
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert rates[-1] == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.9)))


def test_cosine_schedule_over_a_time_budget_reaches_zero_when_time_is_up():
    profile = tiny_profile(epochs=40, lr_schedule="cosine", time_budget_s=100.0)
    assert training.lr_factor(0, profile, 5, elapsed_s=0.0) == pytest.approx(1.0)
    assert training.lr_factor(1, profile, 5, elapsed_s=50.0) == pytest.approx(0.5)
    assert training.lr_factor(2, profile, 5, elapsed_s=200.0) == pytest.approx(0.0)  # past the budget
    # without the clock it is a plain function of the step
    assert training.lr_factor(100, profile, 5) == pytest.approx(0.5)


def test_step_schedule_per_step_is_the_reference_step_lr():
    profile = tiny_profile(epochs=30, lr_schedule="step", lr_step_epochs=10, lr_gamma=0.1)
    factors = [training.lr_factor(step, profile, steps_per_epoch=3) for step in range(0, 90, 3)]
    assert factors == pytest.approx([1.0] * 10 + [0.1] * 10 + [0.01] * 10)


def test_fit_with_the_cosine_schedule_lowers_the_rate_every_epoch(tmp_path):
    paths = make_photos(tmp_path / "photos", 5)
    profile = tiny_profile(epochs=3, lr_schedule="cosine", train_repeats=2)
    train_loader, val_loader = training.make_loaders(paths[:4], paths[4:], profile, val_rotations=1)
    summary = training.fit(TinyRegressor(), train_loader, val_loader, profile, tmp_path / "run",
                           device="cpu", progress=False)
    rates = [row["lr"] for row in summary["history"]]
    assert rates[0] <= profile.lr and all(a > b for a, b in zip(rates, rates[1:]))


def test_fit_rejects_an_unknown_schedule_before_writing_anything(tmp_path):
    paths = make_photos(tmp_path / "photos", 3)
    profile = tiny_profile(epochs=1, lr_schedule="linear")
    train_loader, val_loader = training.make_loaders(paths[:2], paths[2:], profile, val_rotations=1)
    with pytest.raises(ValueError, match="lr_schedule"):
        training.fit(TinyRegressor(), train_loader, val_loader, profile, tmp_path / "run", device="cpu",
                     progress=False)
    assert not (tmp_path / "run" / "best.pt").exists()


@pytest.mark.parametrize("aspect", [1.0, 4 / 3, 3 / 2, 2.0])
def test_photo_cache_side_keeps_full_resolution_at_45_degrees(aspect):
    from rotation_utils.rotation import largest_inscribed_rectangle
    profile = get_profile("quick")
    side = training.photo_cache_side(profile)
    assert side == round(1.5 * profile.image_size)
    w, h = largest_inscribed_rectangle(side * aspect, side, 45.0)
    assert min(w, h) - 2 >= profile.image_size  # rotate_image trims 2 more pixels
    assert training.photo_cache_side(get_profile("workshop")) is None  # workers read the files


def test_for_inference_is_channels_last_on_cpu_with_the_same_outputs():
    from rotation_utils import evaluation
    from rotation_utils.precision import for_inference, inference_input

    torch.manual_seed(0)
    model = build_resnet18_regressor(pretrained=False, verbose=False)[0].eval()
    images = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        expected = model(images)
        fast = for_inference(model, "cpu")
        assert fast is model and not model.training
        assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
        batch = inference_input(images, "cpu")
        assert batch.is_contiguous(memory_format=torch.channels_last) and torch.equal(batch, images)
        torch.testing.assert_close(fast(batch), expected, atol=1e-5, rtol=1e-4)
        # the turns of evaluation.turn_average on channels-last inputs give the same answers
        torch.testing.assert_close(evaluation.turn_average(fast, batch), evaluation.turn_average(model, images),
                                   atol=1e-5, rtol=1e-4)
    assert inference_input(torch.zeros(3, 8, 8), "cpu").is_contiguous()  # not a batch: only moved
