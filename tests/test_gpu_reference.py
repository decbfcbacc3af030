"""scripts/gpu_reference.py at a tiny scale on the CPU: prepare the copies, train the candidate,
turn it into a shipped model with its out-of-collection figures (scripts/make_reference.py)."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def photos_root(tmp_path) -> Path:
    """Three collections of small photos with a bright top; the JPEGs of 'tall' are 90×120."""
    rng = np.random.default_rng(1)
    for collection, n, size in (("wide", 8, (96, 64)), ("tall", 6, (90, 120)), ("other", 4, (64, 64))):
        folder = tmp_path / "photos" / collection
        folder.mkdir(parents=True)
        for i in range(n):
            arr = rng.integers(0, 60, size=(size[1], size[0], 3), dtype=np.uint8)
            arr[: size[1] // 4] = 230
            Image.fromarray(arr).save(folder / f"{collection}{i}.jpg", quality=95)
    return tmp_path / "photos"


def test_prepare_copies_the_kept_collections_small_and_refuses_to_overwrite(photos_root, tmp_path, load_script):
    gpu = load_script("scripts/gpu_reference.py")
    out = tmp_path / "gpu"
    manifest = gpu.prepare(photos_root, ["other"], out, short_side=48, wheels=False)
    copies = sorted(p.relative_to(out / "photos").as_posix() for p in (out / "photos").rglob("*.jpg"))
    assert copies == sorted(p.relative_to(photos_root).as_posix() for p in photos_root.rglob("*.jpg")
                            if p.parent.name != "other")
    assert all(min(Image.open(p).size) == 48 for p in (out / "photos").rglob("*.jpg"))
    assert manifest["collections"] == ["tall", "wide"] and manifest["left_out"] == ["other"] and manifest["photos"] == 14
    assert json.loads((out / "manifest.json").read_text()) == manifest
    before = {p: p.read_bytes() for p in (out / "photos").rglob("*.jpg")}
    with pytest.raises(SystemExit, match="exists already"):
        gpu.prepare(photos_root, ["other"], out, short_side=32, wheels=False)
    assert {p: p.read_bytes() for p in (out / "photos").rglob("*.jpg")} == before
    with pytest.raises(SystemExit, match="no collection nowhere"):
        gpu.prepare(photos_root, ["nowhere"], tmp_path / "gpu2", wheels=False)
    with pytest.raises(SystemExit, match="every collection is left out"):
        gpu.prepare(photos_root, ["other", "tall", "wide"], tmp_path / "gpu3", wheels=False)


def test_the_gpu_recipe_is_the_shipped_models_with_what_a_gpu_changes(load_script):
    gpu = load_script("scripts/gpu_reference.py")
    from rotation_utils import profiles

    laptop = profiles.get_profile("laptop")
    profile = gpu.gpu_profile(420, workers=6)
    assert (profile.backbone, profile.image_size, profile.ema_decay, profile.lr_schedule) == \
        (laptop.backbone, laptop.image_size, laptop.ema_decay, "cosine")
    assert profile.time_budget_s == 420 and profile.batched_rotation and profile.num_workers == 6
    assert profile.augment == "photometric"
    with pytest.raises(ValueError):
        gpu.gpu_profile(0)


def test_train_there_then_make_the_shipped_model_here_with_out_of_collection_figures(photos_root, tmp_path,
                                                                                     load_script, monkeypatch):
    gpu = load_script("scripts/gpu_reference.py")
    make_reference = load_script("scripts/make_reference.py")
    out = tmp_path / "gpu"
    gpu.prepare(photos_root, ["other"], out, short_side=48, wheels=False)
    monkeypatch.setattr(gpu, "gpu_profile", lambda budget, device_is_gpu=True: __import__(
        "rotation_utils.profiles", fromlist=["get_profile"]).get_profile(
        "quick", weights="random", backbone="resnet18", image_size=32, batch_size=8, epochs=1, time_budget_s=None))
    summary = gpu.train(out / "photos", tmp_path / "run", budget_s=5, device="cpu")
    assert (tmp_path / "run" / "best.pt").is_file() and summary["n_train_photos"] + summary["n_val_photos"] == 14
    with pytest.raises(SystemExit, match="exists"):
        gpu.train(out / "photos", tmp_path / "run", budget_s=5, device="cpu")
    with pytest.raises(SystemExit, match="run `prepare` first"):
        gpu.train(tmp_path / "none", tmp_path / "run2", budget_s=5, device="cpu")

    shipped = tmp_path / "shipped"
    with pytest.raises(SystemExit, match="training photos"):  # the originals of other folders
        make_reference.main([str(tmp_path / "run"), str(shipped), "--images", str(photos_root / "wide")])
    assert make_reference.main([str(tmp_path / "run"), str(shipped), "--images", str(photos_root / "tall"),
                                "--images", str(photos_root / "wide"), "--name", "candidate",
                                "--left-out", str(photos_root / "other")]) == 0
    figures = json.loads((shipped / "held_out.json").read_text())
    unseen = figures["out_of_collection"]
    assert unseen["collections"] == ["other"] and unseen["photos"] == 4
    assert unseen["one_pass"]["n"] == 4 * 6 and 0 <= unseen["one_pass"]["mae_deg"] <= 180
    assert unseen["four_turns"]["n"] == 4 * 6
    trained = (shipped / "trained_on.txt").read_text().split()
    assert len([t for t in trained if not t.startswith("#")]) > 0
    with pytest.raises(SystemExit, match="are training photos"):
        make_reference.main([str(tmp_path / "run"), str(tmp_path / "shipped2"), "--images", str(photos_root / "tall"),
                             "--images", str(photos_root / "wide"), "--left-out", str(photos_root / "wide")])
