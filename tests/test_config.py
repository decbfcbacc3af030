"""The profile switch, the folders read from variables, and paths shown in outputs."""
import os
from pathlib import Path

import pytest

from rotation_utils import config, profiles


def test_get_profile_by_name_variable_and_overrides(monkeypatch):
    monkeypatch.setenv("ROTATION_COURSE_PROFILE", "workshop")
    assert profiles.get_profile().name == "workshop"
    quick = profiles.get_profile("quick", epochs=3)
    assert quick.epochs == 3 and quick.image_size == profiles.PROFILES["quick"].image_size
    assert profiles.get_profile("quick").epochs == profiles.PROFILES["quick"].epochs
    with pytest.raises(ValueError, match="unknown profile"):
        profiles.get_profile("huge")
    with pytest.raises(ValueError, match="unknown profile fields"):
        profiles.get_profile("quick", not_a_field=1)


def test_full_profile_is_the_reference_protocol():
    full = profiles.PROFILES["full"]
    assert (full.max_photos, full.rotations_per_photo, full.image_size) == (30000, 6, 224)
    assert full.pretrained and full.lr == 1e-3 and full.weight_decay == 1e-4 and full.grad_clip == 1.0
    assert full.dataset_name == "coco-2017-rotated"


def test_image_folders_relative_to_cwd_then_project_root(monkeypatch, tmp_path):
    folder = config.PROJECT_ROOT / "tests"  # exists relative to the project root
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ROTATION_COURSE_IMAGES", "tests")
    assert config.image_folders() == [config.PROJECT_ROOT / "tests"]
    (tmp_path / "tests").mkdir()
    assert config.image_folders() == [Path("tests")]  # the cwd wins when it has the folder
    assert folder.is_dir()


def test_image_folders_several_and_missing(monkeypatch, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    monkeypatch.setenv("ROTATION_COURSE_IMAGES", f"{a}{os.pathsep}{b}")
    assert config.image_folders() == [a, b]
    monkeypatch.setenv("ROTATION_COURSE_IMAGES", str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match="typo"):
        config.image_folders()
    monkeypatch.delenv("ROTATION_COURSE_IMAGES")
    assert config.image_folders() == []


@pytest.mark.parametrize("path", ["/tmp/some/where/file.jpg", "/var/lib/x/y"])
def test_display_path_hides_machine_paths_outside_the_workspace(path):
    shown = config.display_path(path)
    assert not shown.startswith("/") and shown.endswith("/".join(Path(path).parts[-2:]))


def test_display_path_is_relative_inside_the_project(monkeypatch):
    monkeypatch.chdir(config.PROJECT_ROOT / "tests")
    assert config.display_path(config.PROJECT_ROOT / "data" / "x.jpg") == os.path.join("..", "data", "x.jpg")
    assert config.display_path(Path.home() / "photos") in ("~/photos",) or not config.display_path(
        Path.home() / "photos").startswith("/")


def test_run_dir_and_data_dir_follow_their_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("ROTATION_COURSE_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("ROTATION_COURSE_DATA_DIR", str(tmp_path / "data"))
    assert config.run_dir() == tmp_path / "run" and (tmp_path / "run").is_dir()
    assert config.data_dir() == tmp_path / "data" and (tmp_path / "data").is_dir()


def test_seed_everything_repeats_numbers():
    import numpy as np
    import torch

    config.seed_everything(3)
    first = (np.random.rand(), torch.rand(1).item())
    config.seed_everything(3)
    assert (np.random.rand(), torch.rand(1).item()) == first


def test_laptop_profile_is_the_quick_recipe_with_a_longer_clock():
    quick, laptop = profiles.PROFILES["quick"].to_dict(), profiles.PROFILES["laptop"].to_dict()
    differs = {k for k in quick if quick[k] != laptop[k]}
    assert differs == {"name", "description", "time_budget_s", "epochs"}
    assert laptop["time_budget_s"] == 1200.0 > quick["time_budget_s"]
    assert list(profiles.PROFILES) == ["quick", "laptop", "workshop", "full"]


def test_quick_profile_starts_from_offline_imagenet_weights():
    quick = profiles.PROFILES["quick"]
    assert (quick.backbone, quick.weights) == ("efficientnet_lite0", "imagenet") and quick.pretrained
    assert profiles.PROFILES["full"].backbone == "resnet18"  # the reference architecture


def test_clock_scale_reads_its_variable_and_refuses_nonsense(monkeypatch):
    monkeypatch.delenv(config.TEST_CLOCK_VARIABLE, raising=False)
    assert config.clock_scale() == 1.0
    monkeypatch.setenv(config.TEST_CLOCK_VARIABLE, "0.25")
    assert config.clock_scale() == 0.25
    for bad in ("0", "-1", "2", "fast", "nan"):
        monkeypatch.setenv(config.TEST_CLOCK_VARIABLE, bad)
        with pytest.raises(ValueError, match="ROTATION_COURSE_TEST_CLOCK"):
            config.clock_scale()


def test_the_test_clock_shortens_a_training_budget_and_only_notebook_cells_get_it(monkeypatch, tmp_path, request):
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from rotation_utils import training

    root_conftest = str(Path(__file__).resolve().parents[1] / "conftest.py")
    conftest = next(p for p in request.config.pluginmanager.get_plugins()
                    if getattr(p, "__file__", None) == root_conftest)

    angles_deg = torch.rand(8) * 360
    targets = torch.stack([torch.cos(torch.deg2rad(angles_deg)), torch.sin(torch.deg2rad(angles_deg))], 1)
    data = TensorDataset(torch.randn(8, 4), targets, angles_deg)
    loader = DataLoader(data, batch_size=4)
    profile = profiles.get_profile("quick", time_budget_s=40.0, epochs=1, ema_decay=None, channels_last=False,
                                   warmup_steps=0)
    monkeypatch.setenv(config.TEST_CLOCK_VARIABLE, "0.25")
    summary = training.fit(nn.Linear(4, 2), loader, loader, profile, tmp_path / "run", progress=False)
    assert summary["profile"]["time_budget_s"] == 10.0

    class Item:
        def __init__(self, path):
            self.fspath = path

    conftest.pytest_runtest_setup(Item(tmp_path / "tests" / "test_x.py"))
    assert config.clock_scale() == 1.0
    conftest.pytest_runtest_setup(Item(tmp_path / "notebooks" / "04_x.ipynb"))
    assert config.clock_scale() == float(conftest.NOTEBOOK_CLOCK) < 1
    conftest.pytest_runtest_setup(Item(tmp_path / "tests" / "test_x.py"))
    assert config.clock_scale() == 1.0
