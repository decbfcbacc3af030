"""The training levers of issue 19: photometric augmentation and collection balancing
(rotation_utils.datasets, rotation_utils.loaders, ``rotation-course train --augment
--balance-collections --image-size --min-scale``)."""
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rotation_utils import cli, datasets, loaders
from rotation_utils.models import load_checkpoint
from rotation_utils.profiles import get_profile


def make_collections(root: Path, sizes: dict) -> list[Path]:
    """Small photos in one sub-folder per collection, each collection in its own colours."""
    paths = []
    for c, (name, n) in enumerate(sizes.items()):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n):
            arr = np.zeros((48, 64, 3), dtype=np.uint8)
            arr[..., c % 3] = np.linspace(40, 220, 64, dtype=np.uint8)[None, :]
            arr[:12] = 250 - 30 * c
            path = folder / f"{name}{i}.png"
            Image.fromarray(arr).save(path)
            paths.append(path)
    return paths


def test_photometric_augmentation_kinds():
    assert datasets.photometric_augmentation("none") is None
    with pytest.raises(ValueError, match="augment must be one of"):
        datasets.photometric_augmentation("mixup")
    photo = torch.randint(0, 256, (3, 40, 40), dtype=torch.uint8)
    augment = datasets.photometric_augmentation("photometric")
    torch.manual_seed(0)
    changed = [augment(photo) for _ in range(10)]
    assert all(x.shape == photo.shape and x.dtype == torch.uint8 for x in changed)
    assert sum(not torch.equal(x, photo) for x in changed) >= 7, "colour jitter alone applies 80% of the time"


def test_augmentation_changes_the_pixels_but_never_the_angle(tmp_path):
    paths = make_collections(tmp_path, {"a": 3})
    plain = datasets.OnTheFlyRotationDataset(paths, 32, cache_short_side=48)
    varied = datasets.OnTheFlyRotationDataset(paths, 32, cache_short_side=48, augment="photometric")
    differs = 0
    for index in range(6):
        torch.manual_seed(index)
        image_a, target_a, angle_a = plain[index % 3]
        torch.manual_seed(index)
        image_b, target_b, angle_b = varied[index % 3]
        assert float(angle_a) == float(angle_b) and torch.equal(target_a, target_b)
        differs += not torch.allclose(image_a, image_b)
    assert differs >= 3


def test_photo_collections_are_the_first_folder_under_the_common_root(tmp_path):
    paths = make_collections(tmp_path, {"bsds": 2, "sun": 3})
    (tmp_path / "bsds" / "deep").mkdir()
    deeper = tmp_path / "bsds" / "deep" / "x.png"
    Image.new("RGB", (8, 8)).save(deeper)
    assert datasets.photo_collections(paths + [deeper]) == ["bsds"] * 2 + ["sun"] * 3 + ["bsds"]
    single = make_collections(tmp_path / "one", {"only": 2})
    assert datasets.photo_collections(single) == [".", "."]  # one folder: no sub-folders to tell apart
    weights = datasets.collection_balancing_weights(paths)
    assert weights.tolist() == pytest.approx([0.5, 0.5, 1 / 3, 1 / 3, 1 / 3])
    assert float(weights.sum()) == pytest.approx(2.0)


def test_a_balanced_loader_draws_every_collection_about_equally(tmp_path):
    paths = make_collections(tmp_path, {"big": 30, "small": 3})
    profile = get_profile("quick", image_size=16, batch_size=33, balance_collections=True)
    loader = loaders.training_loader(paths, profile, seed=0)
    assert len(loader.sampler) == 33, "an epoch draws as many photos as there are"
    drawn = Counter()
    for _ in range(30):
        drawn.update(datasets.photo_collections(paths)[i] for i in loader.sampler)
    assert abs(drawn["small"] / sum(drawn.values()) - 0.5) < 0.06
    unbalanced = loaders.training_loader(paths, get_profile("quick", image_size=16, batch_size=33), seed=0)
    assert unbalanced.sampler.__class__.__name__ == "RandomSampler"
    again = loaders.training_loader(paths, profile, seed=0)
    assert list(again.sampler) == list(loaders.training_loader(paths, profile, seed=0).sampler), "seeded"


def test_train_records_the_levers_and_checks_their_values(tmp_path, capsys):
    make_collections(tmp_path / "photos", {"a": 4, "b": 3})
    code = cli.main(["train", "--images", str(tmp_path / "photos" / "a"), "--images", str(tmp_path / "photos" / "b"),
                     "--profile", "quick", "--weights", "random", "--backbone", "resnet18", "--epochs", "1",
                     "--augment", "photometric", "--balance-collections", "--image-size", "48", "--min-scale", "0.5",
                     "--out", str(tmp_path / "run"), "--device", "cpu", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    _, metadata = load_checkpoint(tmp_path / "run" / "best.pt", verbose=False)
    profile = metadata["profile"]
    assert (profile["augment"], profile["balance_collections"], profile["image_size"], profile["min_scale"]) == \
        ("photometric", True, 48, 0.5)
    assert metadata["image_size"] == 48
    for flag, value, message in (("--min-scale", "0", "--min-scale must be in"),
                                 ("--image-size", "8", "--image-size must be")):
        code = cli.main(["train", "--images", str(tmp_path / "photos"), flag, value, "--out", str(tmp_path / "r2")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "r2").exists()


def test_an_older_run_without_the_new_fields_still_resumes_under_the_same_recipe():
    from rotation_utils import resume

    asked = get_profile("quick").to_dict()
    saved = {k: v for k, v in asked.items() if k not in ("augment", "balance_collections")}
    assert resume.profile_differences(saved, asked) == []
    assert resume.profile_differences(saved, {**asked, "augment": "photometric"}) == \
        ["augment: saved 'none', asked 'photometric'"]
