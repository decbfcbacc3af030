"""benchmarks/generalisation.py: folds by collection, in- and out-of-collection scores, a reused run checked."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def photos_root(tmp_path) -> Path:
    """Three small collections of photos with a bright top (an unmistakable 'up')."""
    rng = np.random.default_rng(0)
    for collection, n in (("alpha", 10), ("beta", 10), ("gamma", 6)):
        folder = tmp_path / "photos" / collection
        folder.mkdir(parents=True)
        for i in range(n):
            arr = rng.integers(0, 40, size=(48, 64, 3), dtype=np.uint8)
            arr[:14] = rng.integers(200, 256, size=3)
            Image.fromarray(arr).save(folder / f"{collection}{i}.png")
    return tmp_path / "photos"


def test_a_fold_keeps_the_left_out_collection_apart(photos_root, load_script):
    gen = load_script("benchmarks/generalisation.py")
    assert gen.collections(photos_root) == ["alpha", "beta", "gamma"]
    kept, out = gen.fold_photos(photos_root, ["gamma"])
    assert len(kept) == 20 and len(out) == 6
    assert all(p.parent.name != "gamma" for p in kept) and all(p.parent.name == "gamma" for p in out)
    with pytest.raises(SystemExit, match="no collection delta"):
        gen.fold_photos(photos_root, ["delta"])


def test_arguments_are_checked(photos_root, tmp_path, load_script):
    gen = load_script("benchmarks/generalisation.py")
    with pytest.raises(SystemExit):
        gen.main(["--photos", str(photos_root)])  # neither --leave-out nor --loco
    with pytest.raises(SystemExit):
        gen.main(["--photos", str(photos_root), "--leave-out", "gamma", "--recipes", "huge"])
    with pytest.raises(SystemExit, match="no such folder"):
        gen.main(["--photos", str(tmp_path / "nowhere"), "--leave-out", "gamma"])


def test_one_fold_end_to_end_scores_both_sides_and_refuses_a_run_of_other_photos(photos_root, tmp_path, capsys,
                                                                                    load_script):
    gen = load_script("benchmarks/generalisation.py")
    out = tmp_path / "result.json"
    assert gen.main(["--photos", str(photos_root), "--leave-out", "gamma", "--recipes", "random_resnet18",
                     "--time-budget", "1", "--work", str(tmp_path / "runs"), "--out", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    assert row["left_out"] == ["gamma"] and row["recipe"] == "random_resnet18" and row["train_photos"] < 20
    assert row["out_of_collection"]["n"] == 6 * 6, "every left-out photo × the 6 validation rotations"
    assert row["in_collection"]["n"] == 6 * (20 - row["train_photos"])
    assert 0 <= row["out_of_collection"]["mae_deg"] <= 180
    assert row["out_over_in"] == pytest.approx(row["out_of_collection"]["mae_deg"] / row["in_collection"]["mae_deg"])
    assert "random_resnet18" in capsys.readouterr().out
    run = tmp_path / "runs" / "gamma-random_resnet18"
    with pytest.raises(SystemExit, match="did not train on this fold"):
        gen.main(["--photos", str(photos_root), "--leave-out", "beta", "--recipes", "random_resnet18",
                  "--reuse", f"random_resnet18={run}", "--out", str(out)])
