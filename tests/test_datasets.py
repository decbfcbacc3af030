"""Unit tests of rotation_utils.datasets: the split by photo, the PyTorch datasets and the
persistent FiftyOne dataset of rotated photos.

The FiftyOne database is the session's own (see ../conftest.py); every test uses a unique
dataset name, and the rotated files go under tmp_path or the session's data folder.
"""
import os
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rotation_utils import angles, config, datasets
from rotation_utils.datasets import (DatasetExistsError, FiftyOneRotationDataset, FixedRotationDataset,
                                     OnTheFlyRotationDataset, build_rotated_dataset, course_dataset_name,
                                     split_by_source)
from rotation_utils.profiles import get_profile

fo = pytest.importorskip("fiftyone")


# --------------------------------------------------------------------------- helpers

def make_photos(folder: Path, n: int, size=(64, 48), prefix="photo") -> list[Path]:
    """n small distinct photos (gradient, coloured top band), some in a sub-folder."""
    paths = []
    for i in range(n):
        rng = np.random.default_rng(100 + i)
        w, h = size
        arr = np.zeros((h, w, 3), dtype=np.uint8)
        arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
        arr[..., 1] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
        arr[..., 2] = (37 * i) % 256
        arr[: h // 4] = rng.integers(0, 256, size=3)
        sub = folder / ("sub" if i % 3 == 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"{prefix}{i}.jpg"
        Image.fromarray(arr, "RGB").save(path, quality=95)
        paths.append(path)
    return paths


def unique_name(label: str) -> str:
    return f"test-{label}-{uuid.uuid4().hex[:10]}"


def files_under(folder: Path) -> set[Path]:
    return {p for p in Path(folder).rglob("*") if p.is_file()} if Path(folder).exists() else set()


@pytest.fixture
def cleanup_datasets():
    """Names appended here are deleted after the test (the session database is temporary anyway)."""
    names = []
    yield names
    for name in names:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


# --------------------------------------------------------------------------- split_by_source

def test_split_by_source_puts_no_source_in_both_and_is_deterministic():
    ids = [f"photo_{i}.jpg" for i in range(20)]
    split = split_by_source(ids, 0.25, seed=3)
    assert set(split) == set(ids)
    assert set(split.values()) == {"train", "val"}
    assert sum(v == "val" for v in split.values()) == 5
    assert split_by_source(list(reversed(ids)), 0.25, seed=3) == split, "order of the ids must not matter"
    assert split_by_source(ids + ids, 0.25, seed=3) == split, "duplicates are one photo"
    other_seeds = [split_by_source(ids, 0.25, seed=s) for s in range(4, 10)]
    assert any(s != split for s in other_seeds), "the seed should change the split"


@pytest.mark.parametrize("n,fraction,expected_val", [
    (10, 0.1, 1), (10, 0.3, 3), (10, 0.5, 5), (7, 0.25, 2), (4, 0.01, 1), (2, 0.99, 1), (1, 0.5, 1),
])
def test_split_by_source_fractions(n, fraction, expected_val):
    split = split_by_source(range(n), fraction)
    n_val = sum(v == "val" for v in split.values())
    assert n_val == expected_val
    if n >= 2:
        assert n - n_val >= 1, "at least one photo is left for training"


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_by_source_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError):
        split_by_source(["a", "b", "c"], fraction)


def test_split_by_source_rejects_no_ids():
    with pytest.raises(ValueError):
        split_by_source([], 0.2)


# --------------------------------------------------------------------------- PyTorch datasets

def test_on_the_fly_dataset_gives_fresh_angles_and_consistent_targets(tmp_path):
    paths = make_photos(tmp_path, 3)
    ds = OnTheFlyRotationDataset(paths, image_size=32, border="crop", repeats=2, cache_short_side=48)
    assert len(ds) == 6
    torch.manual_seed(0)
    seen = []
    for _ in range(5):
        image, target, angle = ds[1]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert target.shape == (2,)
        assert 0.0 <= float(angle) < 360.0
        expected = torch.tensor([np.cos(np.radians(float(angle))), np.sin(np.radians(float(angle)))],
                                dtype=torch.float32)
        assert torch.allclose(target, expected, atol=1e-5)
        assert float(angles.decode_angle_deg(target[None])[0]) == pytest.approx(float(angle), abs=1e-3)
        seen.append(float(angle))
    assert len(set(seen)) == 5, "each access should draw a fresh angle"


def test_on_the_fly_dataset_images_are_normalised_photos(tmp_path):
    paths = make_photos(tmp_path, 2)
    ds = OnTheFlyRotationDataset(paths, image_size=40, border="reflect", hflip=False)  # no cache
    image, _, _ = ds[0]
    restored = datasets.denormalize(image)
    assert restored.shape == (3, 40, 40)
    assert float(restored.min()) >= 0.0 and float(restored.max()) <= 1.0
    assert float(image.std()) > 0.1, "a real picture, not a constant"


@pytest.mark.parametrize("border", ["alpha_mask", "zeros"])
def test_on_the_fly_dataset_rejects_bad_borders(tmp_path, border):
    with pytest.raises(ValueError):
        OnTheFlyRotationDataset(make_photos(tmp_path, 1), 32, border=border)


def test_on_the_fly_dataset_rejects_no_photos():
    with pytest.raises(ValueError):
        OnTheFlyRotationDataset([], 32)


def test_fixed_rotation_dataset_is_deterministic_across_instances(tmp_path):
    paths = make_photos(tmp_path, 3)
    a = FixedRotationDataset(paths, image_size=32, rotations=4, seed=5)
    b = FixedRotationDataset(paths, image_size=32, rotations=4, seed=5, cache_short_side=64)
    c = FixedRotationDataset(paths, image_size=32, rotations=4, seed=6)
    assert len(a) == 12
    assert a.samples == b.samples
    assert [s[0] for s in a.samples] == [0] * 4 + [1] * 4 + [2] * 4
    assert all(0.0 <= s[1] < 360.0 for s in a.samples)
    assert [s[1] for s in a.samples] != [s[1] for s in c.samples]
    for index in (0, 5, 11):
        ia, ta, aa = a[index]
        ib, tb, ab = b[index]
        again, _, _ = a[index]
        assert ia.shape == (3, 32, 32)
        assert torch.equal(ia, again), "the same sample twice must be the same tensor"
        assert float(aa) == pytest.approx(a.samples[index][1])
        assert torch.allclose(ta, angles.encode_angle_deg(aa))
        assert float(aa) == float(ab) and torch.allclose(ta, tb)


def test_fixed_rotation_dataset_with_a_cache_computes_each_item_once(tmp_path, monkeypatch):
    paths = make_photos(tmp_path, 2)
    # without a cache nothing is kept: items are recomputed from the files
    uncached = FixedRotationDataset(paths, image_size=32, rotations=3, seed=1)
    uncached[0]
    assert uncached._squares == {}
    cached = FixedRotationDataset(paths, image_size=32, rotations=3, seed=1, cache_short_side=48)
    first = [cached[i][0] for i in range(len(cached))]
    calls = []
    monkeypatch.setattr(datasets, "rotate_image", lambda *a, **k: calls.append(a) or None)
    second = [cached[i][0] for i in range(len(cached))]
    assert calls == [], "a cached item must not be rotated again"
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_fixed_rotation_dataset_errors(tmp_path):
    paths = make_photos(tmp_path, 1)
    with pytest.raises(ValueError):
        FixedRotationDataset(paths, 32, rotations=0)
    with pytest.raises(ValueError):
        FixedRotationDataset(paths, 32, border="alpha_mask")
    with pytest.raises(ValueError):
        FixedRotationDataset([], 32)


# --------------------------------------------------------------------------- FiftyOne dataset

def test_build_rotated_dataset_fields_tags_files_and_persistence(tmp_path, cleanup_datasets):
    photos = make_photos(tmp_path / "photos", 6)
    name = unique_name("build")
    cleanup_datasets.append(name)
    dataset = build_rotated_dataset(name, photos, rotations_per_photo=3, border="crop",
                                    val_fraction=0.34, seed=0, images_dir=tmp_path / "rotated",
                                    progress=False)
    assert dataset.name == name
    assert dataset.persistent
    assert len(dataset) == 18
    assert fo.load_dataset(name).persistent

    angle_values = dataset.values("angle_deg")
    assert all(isinstance(a, float) and 0.0 <= a < 360.0 for a in angle_values)
    assert len(set(angle_values)) == 18
    assert set(dataset.values("border")) == {"crop"}
    source_ids = dataset.values("source_id")
    assert set(source_ids) == {"photo0.jpg", "photo1.jpg", "sub/photo2.jpg", "photo3.jpg",
                               "photo4.jpg", "sub/photo5.jpg"}
    assert set(dataset.values("source_filepath")) == {str(p.resolve()) for p in photos}

    tags_by_source = {}
    for sid, tags in zip(source_ids, dataset.values("tags")):
        assert len(tags) == 1 and tags[0] in ("train", "val")
        tags_by_source.setdefault(sid, set()).add(tags[0])
    assert all(len(t) == 1 for t in tags_by_source.values()), "every copy of a photo shares its tag"
    train_sources = set(dataset.match_tags("train").values("source_id"))
    val_sources = set(dataset.match_tags("val").values("source_id"))
    assert train_sources and val_sources
    assert not train_sources & val_sources, "no photo in both train and val"
    assert len(val_sources) == 2
    # the command line's split (rotation-course train) holds out the same photos
    from rotation_utils.datasets import split_photos
    train_paths, val_paths = split_photos(photos, 0.34, seed=0)
    assert {str(p.resolve()) for p in val_paths} == set(dataset.match_tags("val").values("source_filepath"))
    assert {str(p.resolve()) for p in train_paths} == set(dataset.match_tags("train").values("source_filepath"))

    for filepath in dataset.values("filepath"):
        path = Path(filepath)
        assert path.is_file() and path.parent == tmp_path / "rotated"
        with Image.open(path) as image:
            assert image.mode == "RGB" and max(image.size) <= 64
    assert dataset.info["build"]["border"] == "crop"
    assert dataset.info["build"]["rotations_per_photo"] == 3


def test_build_rotated_dataset_angles_match_the_stored_images(tmp_path, cleanup_datasets):
    """The recorded angle is the one the image was turned by: the red upper half of a red/blue
    photo ends up in the direction 90° + θ (counter-clockwise from 'up')."""
    folder = tmp_path / "photos"
    folder.mkdir()
    image = Image.new("RGB", (64, 64), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 64, 32))
    photos = [folder / "marked.png", folder / "marked_too.png"]
    for photo in photos:
        image.save(photo)
    name = unique_name("angles")
    cleanup_datasets.append(name)
    dataset = build_rotated_dataset(name, photos, rotations_per_photo=4, border="crop",
                                    val_fraction=0.5, images_dir=tmp_path / "rotated", progress=False)
    checked = 0
    for filepath, angle in zip(dataset.values("filepath"), dataset.values("angle_deg")):
        arr = np.asarray(Image.open(filepath).convert("RGB")).astype(int)
        h, w = arr.shape[:2]
        red = (arr[..., 0] > 150) & (arr[..., 2] < 100)
        blue = (arr[..., 2] > 150) & (arr[..., 0] < 100)
        ys, xs = np.nonzero(red)
        yb, xb = np.nonzero(blue)
        assert len(xs) > 20 and len(xb) > 20, (filepath, angle)
        dx, dy = xs.mean() - xb.mean(), -(ys.mean() - yb.mean())  # from blue to red, y up
        observed = np.degrees(np.arctan2(dy, dx))
        assert angles.circular_absolute_error_deg(observed, 90.0 + angle) < 15.0, (filepath, angle, observed)
        checked += 1
    assert checked == 8


def test_build_rotated_dataset_reuses_the_same_settings(tmp_path, cleanup_datasets, capsys):
    photos = make_photos(tmp_path / "photos", 4)
    name = unique_name("reuse")
    cleanup_datasets.append(name)
    first = build_rotated_dataset(name, photos, rotations_per_photo=2, border="reflect",
                                  val_fraction=0.25, images_dir=tmp_path / "rotated", progress=False)
    ids = sorted(first.values("id"))
    files_before = files_under(tmp_path)
    again = build_rotated_dataset(name, photos, rotations_per_photo=2, border="reflect",
                                  val_fraction=0.25, images_dir=tmp_path / "rotated", progress=True)
    assert sorted(again.values("id")) == ids
    assert files_under(tmp_path) == files_before, "reusing must write no new file"
    assert "reusing" in capsys.readouterr().out
    assert not (tmp_path / "rotated-2").exists()


def test_build_rotated_dataset_refuses_other_settings_and_keeps_the_dataset(tmp_path, cleanup_datasets):
    photos = make_photos(tmp_path / "photos", 4)
    name = unique_name("refuse")
    cleanup_datasets.append(name)
    built = build_rotated_dataset(name, photos, rotations_per_photo=2, border="reflect",
                                  val_fraction=0.25, images_dir=tmp_path / "rotated", progress=False)
    ids = sorted(built.values("id"))
    files_before = files_under(tmp_path)
    for changes in ({"rotations_per_photo": 3}, {"border": "crop"}, {"seed": 1}, {"val_fraction": 0.5},
                    {"max_side": 32}):
        settings = dict(rotations_per_photo=2, border="reflect", val_fraction=0.25, seed=0)
        settings.update(changes)
        with pytest.raises(DatasetExistsError, match=name):
            build_rotated_dataset(name, photos, images_dir=tmp_path / "rotated", progress=False, **settings)
    with pytest.raises(DatasetExistsError):
        build_rotated_dataset(name, photos[:3], rotations_per_photo=2, border="reflect",
                              val_fraction=0.25, images_dir=tmp_path / "rotated", progress=False)
    assert isinstance(DatasetExistsError("x"), FileExistsError)
    kept = fo.load_dataset(name)
    assert len(kept) == 8
    assert sorted(kept.values("id")) == ids
    assert files_under(tmp_path) == files_before
    assert all(Path(p).is_file() for p in kept.values("filepath"))


def test_build_rotated_dataset_never_writes_into_a_non_empty_folder(tmp_path, cleanup_datasets):
    photos = make_photos(tmp_path / "photos", 3)
    occupied = tmp_path / "rotated"
    occupied.mkdir()
    precious = occupied / "precious.jpg"
    precious.write_bytes(b"the user's file")
    (tmp_path / "rotated-2").mkdir()
    (tmp_path / "rotated-2" / "also-taken.txt").write_text("x")
    name = unique_name("folder")
    cleanup_datasets.append(name)
    dataset = build_rotated_dataset(name, photos, rotations_per_photo=2, border="crop",
                                    val_fraction=0.34, images_dir=occupied, progress=False)
    folders = {Path(p).parent for p in dataset.values("filepath")}
    assert folders == {tmp_path / "rotated-3"}
    assert sorted(p.name for p in occupied.iterdir()) == ["precious.jpg"]
    assert precious.read_bytes() == b"the user's file"
    assert sorted(p.name for p in (tmp_path / "rotated-2").iterdir()) == ["also-taken.txt"]


def test_build_rotated_dataset_default_folder_is_in_the_session_data_dir(tmp_path, cleanup_datasets):
    photos = make_photos(tmp_path / "photos", 2)
    name = unique_name("default-dir")
    cleanup_datasets.append(name)
    dataset = build_rotated_dataset(name, photos, rotations_per_photo=1, border="crop",
                                    val_fraction=0.5, progress=False)
    data_dir = Path(os.environ["ROTATION_COURSE_DATA_DIR"]).resolve()
    assert config.data_dir().resolve() == data_dir
    for filepath in dataset.values("filepath"):
        assert Path(filepath).resolve().parent == data_dir / name


def test_build_rotated_dataset_alpha_mask_writes_rgba_png(tmp_path, cleanup_datasets):
    photos = make_photos(tmp_path / "photos", 2)
    name = unique_name("alpha")
    cleanup_datasets.append(name)
    dataset = build_rotated_dataset(name, photos, rotations_per_photo=1, border="alpha_mask",
                                    val_fraction=0.5, seed=0, images_dir=tmp_path / "rotated", progress=False)
    for filepath in dataset.values("filepath"):
        assert filepath.endswith(".png")
        with Image.open(filepath) as image:
            assert image.mode == "RGBA"


def test_build_rotated_dataset_max_side_shrinks_the_photos(tmp_path, cleanup_datasets):
    photos = make_photos(tmp_path / "photos", 2, size=(96, 64))
    name = unique_name("max-side")
    cleanup_datasets.append(name)
    dataset = build_rotated_dataset(name, photos, rotations_per_photo=1, border="reflect",
                                    val_fraction=0.5, images_dir=tmp_path / "rotated", max_side=48,
                                    progress=False)
    for filepath in dataset.values("filepath"):
        with Image.open(filepath) as image:
            assert image.size == (48, 32), "reflect keeps the (shrunk) size"
    assert dataset.info["build"]["max_side"] == 48


def test_course_dataset_builds_once_with_the_profile_settings(tmp_path):
    photos = make_photos(tmp_path / "photos", 4)
    profile = get_profile("quick", rotations_per_photo=1, val_fraction=0.25)
    name = course_dataset_name(profile, photos)
    try:
        dataset = datasets.course_dataset(profile, photos, progress=False)
        assert dataset.name == name and dataset.persistent
        assert len(dataset) == 4
        assert set(dataset.values("border")) == {profile.border}
        assert dataset.info["build"]["rotations_per_photo"] == 1
        again = datasets.course_dataset(profile, photos, progress=False)
        assert sorted(again.values("id")) == sorted(dataset.values("id"))
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def test_course_dataset_leaves_a_dataset_whose_files_are_gone_and_uses_the_next_name(tmp_path, capsys):
    photos = make_photos(tmp_path / "photos", 4)
    profile = get_profile("quick", rotations_per_photo=1, val_fraction=0.25)
    name = course_dataset_name(profile, photos)
    try:
        first = datasets.course_dataset(profile, photos, progress=False)
        lost = first.values("filepath")
        for path in lost:  # as after deleting the project folder and cloning it again
            os.remove(path)
        capsys.readouterr()
        second = datasets.course_dataset(profile, photos, progress=True)
        said = capsys.readouterr().out
        assert second.name == f"{name}-2" and len(second) == 4
        assert all(os.path.exists(p) for p in second.values("filepath"))
        assert "files are gone" in said and "left untouched" in said and f"{name}-2" in said
        # the broken dataset is still there, as it was
        assert fo.dataset_exists(name) and fo.load_dataset(name).values("filepath") == lost
        # the next call reuses the new dataset instead of building a third one
        third = datasets.course_dataset(profile, photos, progress=False)
        assert third.name == second.name and sorted(third.values("id")) == sorted(second.values("id"))
        assert not fo.dataset_exists(f"{name}-3")
    finally:
        for stale in (name, f"{name}-2", f"{name}-3"):
            if fo.dataset_exists(stale):
                fo.delete_dataset(stale)


def test_course_dataset_gives_up_after_max_tries(tmp_path):
    photos = make_photos(tmp_path / "photos", 2)
    profile = get_profile("quick", rotations_per_photo=1, val_fraction=0.5)
    name = course_dataset_name(profile, photos)
    other = get_profile("quick", rotations_per_photo=2, val_fraction=0.5)  # built differently
    try:
        datasets.build_rotated_dataset(name, photos, rotations_per_photo=2, border=other.border,
                                       val_fraction=0.5, seed=0, progress=False)
        with pytest.raises(DatasetExistsError):
            datasets.course_dataset(profile, photos, progress=False, max_tries=1)
        assert len(fo.load_dataset(name)) == 4, "the existing dataset must be left as it was"
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


def test_build_rotated_dataset_skips_unreadable_photos(tmp_path, cleanup_datasets, capsys):
    photos = make_photos(tmp_path / "photos", 3)
    broken = tmp_path / "photos" / "broken.jpg"
    broken.write_bytes(b"")
    name = unique_name("skip")
    cleanup_datasets.append(name)
    dataset = build_rotated_dataset(name, photos + [broken], rotations_per_photo=2, border="crop",
                                    val_fraction=0.25, images_dir=tmp_path / "rotated", progress=False)
    assert "broken.jpg" not in " ".join(dataset.values("source_id"))
    assert set(dataset.values("source_id")) == {"photo0.jpg", "photo1.jpg", "sub/photo2.jpg"}
    assert "broken.jpg" in capsys.readouterr().out


def test_build_rotated_dataset_argument_errors(tmp_path):
    photos = make_photos(tmp_path / "photos", 2)
    name = unique_name("errors")
    with pytest.raises(ValueError):
        build_rotated_dataset(name, photos, border="zeros", progress=False)
    with pytest.raises(ValueError):
        build_rotated_dataset(name, photos, rotations_per_photo=0, progress=False)
    with pytest.raises(ValueError):
        build_rotated_dataset(name, [], progress=False)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError):
        build_rotated_dataset(name, [empty], images_dir=tmp_path / "out", progress=False)
    assert not fo.dataset_exists(name), "a failed build must leave no dataset behind"


def test_fiftyone_rotation_dataset_over_the_val_view(tmp_path, cleanup_datasets):
    photos = make_photos(tmp_path / "photos", 6)
    name = unique_name("torch")
    cleanup_datasets.append(name)
    dataset = build_rotated_dataset(name, photos, rotations_per_photo=2, border="crop",
                                    val_fraction=0.34, images_dir=tmp_path / "rotated", progress=False)
    view = dataset.match_tags("val")
    ds = FiftyOneRotationDataset(view, image_size=32)
    assert len(ds) == len(view) == 4
    assert set(ds.source_ids) == set(view.values("source_id"))
    for index in range(len(ds)):
        image, target, angle = ds[index]
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        assert float(angle) == pytest.approx(view.values("angle_deg")[index])
        assert torch.allclose(target, angles.encode_angle_deg(angle), atol=1e-6)
    # Evaluation mode is deterministic; training mode crops at random.
    assert torch.equal(ds[0][0], ds[0][0])
    train_ds = FiftyOneRotationDataset(dataset.match_tags("train"), image_size=32, train=True)
    assert len(train_ds) == 8


def test_fiftyone_rotation_dataset_rejects_bad_views(tmp_path, cleanup_datasets):
    name = unique_name("plain")
    cleanup_datasets.append(name)
    plain = fo.Dataset(name)
    plain.add_sample(fo.Sample(filepath=str(make_photos(tmp_path, 1)[0])))
    with pytest.raises(ValueError, match="angle_deg"):
        FiftyOneRotationDataset(plain, 32)
    photos = make_photos(tmp_path / "photos", 2)
    built_name = unique_name("empty-view")
    cleanup_datasets.append(built_name)
    built = build_rotated_dataset(built_name, photos, rotations_per_photo=1, border="crop",
                                  val_fraction=0.5, images_dir=tmp_path / "rotated", progress=False)
    with pytest.raises(ValueError):
        FiftyOneRotationDataset(built.match_tags("no-such-tag"), 32)


def test_course_dataset_name_depends_on_the_photos(tmp_path):
    quick = get_profile("quick")
    a = make_photos(tmp_path / "a", 3, prefix="alpha")
    b = make_photos(tmp_path / "b", 3, prefix="beta")
    name_a = course_dataset_name(quick, a)
    assert name_a.startswith(quick.dataset_name)
    assert name_a == course_dataset_name(quick, list(a)), "the same photos give the same name"
    assert name_a != course_dataset_name(quick, b)
    assert name_a != course_dataset_name(quick, a[:2])
    assert course_dataset_name(get_profile("workshop"), a).startswith(get_profile("workshop").dataset_name)


def test_course_dataset_name_differs_for_other_photos_with_the_same_file_names(tmp_path):
    quick = get_profile("quick")
    a = make_photos(tmp_path / "camera_a", 3)
    b = make_photos(tmp_path / "camera_b", 3)  # same relative names, other folder
    assert course_dataset_name(quick, a) != course_dataset_name(quick, b)


def test_build_rotated_dataset_does_not_reuse_a_dataset_of_other_photos(tmp_path, cleanup_datasets):
    a = make_photos(tmp_path / "camera_a", 2)
    b = make_photos(tmp_path / "camera_b", 2)
    name = unique_name("same-names")
    cleanup_datasets.append(name)
    build_rotated_dataset(name, a, rotations_per_photo=1, border="crop", val_fraction=0.5,
                          images_dir=tmp_path / "rot", progress=False)
    try:
        again = build_rotated_dataset(name, b, rotations_per_photo=1, border="crop", val_fraction=0.5,
                                      images_dir=tmp_path / "rot", progress=False)
    except DatasetExistsError:
        return  # refusing is correct
    assert set(again.values("source_filepath")) == {str(p.resolve()) for p in b}


# --------------------------------------------------------------------------- resumable, parallel, lean builds

def dataset_rows(dataset, root: Path):
    """(file path relative to root or absolute, angle, tag, source id) of every sample, in order."""
    rows = []
    for sample in dataset.iter_samples():
        path = Path(sample.filepath)
        shown = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
        rows.append((shown, round(sample.angle_deg, 6), tuple(sample.tags), sample.source_id))
    return rows


def test_a_killed_build_run_again_ends_with_the_same_dataset_and_no_duplicates(tmp_path, cleanup_datasets,
                                                                                 monkeypatch):
    photos = make_photos(tmp_path / "photos", 6)
    settings = dict(rotations_per_photo=3, border="random_background", val_fraction=0.34, seed=0, progress=False,
                    workers=1)
    clean_name, name = unique_name("clean"), unique_name("killed")
    cleanup_datasets.extend([clean_name, name])
    clean = build_rotated_dataset(clean_name, photos, images_dir=tmp_path / "clean", **settings)

    real_save, saved = datasets._save_atomically, []

    def save_then_die(image, out):
        if len(saved) == 7:  # two photos done, the third half-written
            raise KeyboardInterrupt("killed")
        real_save(image, out)
        saved.append(out)

    monkeypatch.setattr(datasets, "_save_atomically", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        build_rotated_dataset(name, photos, images_dir=tmp_path / "rotated", **settings)
    assert not fo.dataset_exists(name), "no dataset until every photo is done"
    assert not list((tmp_path / "rotated").glob(".*.tmp*")), "no half-written file left behind"
    monkeypatch.setattr(datasets, "_save_atomically", lambda image, out: (saved.append(out), real_save(image, out)))
    saved.clear()
    dataset = build_rotated_dataset(name, photos, images_dir=tmp_path / "rotated", **settings)
    assert len(saved) == 18 - 6, "the two photos written before the kill are not rotated again"
    assert len(dataset) == 18 == len(set(dataset.values("filepath")))
    assert dataset_rows(dataset, tmp_path / "rotated") == dataset_rows(clean, tmp_path / "clean")
    for a, b in zip(sorted((tmp_path / "rotated").glob("*.jpg")), sorted((tmp_path / "clean").glob("*.jpg"))):
        assert a.read_bytes() == b.read_bytes(), "the same pixels, the noise of random_background included"


def test_another_build_never_resumes_into_a_folder_of_other_settings(tmp_path, cleanup_datasets):
    photos = make_photos(tmp_path / "photos", 3)
    first, second = unique_name("a"), unique_name("b")
    cleanup_datasets.extend([first, second])
    build_rotated_dataset(first, photos, rotations_per_photo=1, border="crop", images_dir=tmp_path / "rotated",
                          progress=False)
    other = build_rotated_dataset(second, photos, rotations_per_photo=2, border="crop",
                                  images_dir=tmp_path / "rotated", progress=False)
    assert {Path(p).parent for p in other.values("filepath")} == {tmp_path / "rotated-2"}


def test_threads_build_the_same_dataset_as_one(tmp_path, cleanup_datasets):
    photos = make_photos(tmp_path / "photos", 8)
    one, many = unique_name("one"), unique_name("many")
    cleanup_datasets.extend([one, many])
    a = build_rotated_dataset(one, photos, rotations_per_photo=2, border="reflect", images_dir=tmp_path / "one",
                              progress=False, workers=1)
    b = build_rotated_dataset(many, photos, rotations_per_photo=2, border="reflect", images_dir=tmp_path / "many",
                              progress=False, workers=4)
    assert dataset_rows(a, tmp_path / "one") == dataset_rows(b, tmp_path / "many")


def test_a_lean_build_keeps_the_validation_copies_and_the_training_photos(tmp_path, cleanup_datasets):
    photos = make_photos(tmp_path / "photos", 9)
    name = unique_name("lean")
    cleanup_datasets.append(name)
    dataset = build_rotated_dataset(name, photos, rotations_per_photo=6, border="reflect", val_fraction=0.34,
                                    images_dir=tmp_path / "rotated", progress=False, train_rotations=False)
    train, val = dataset.match_tags("train"), dataset.match_tags("val")
    n_val_photos = len(set(val.values("source_id")))
    assert len(val) == 6 * n_val_photos and len(train) == 9 - n_val_photos
    assert set(train.values("filepath")) == set(train.values("source_filepath")), "the photos themselves"
    assert set(train.values("angle_deg")) == {0.0} and set(train.values("rotated")) == {False}
    assert set(val.values("rotated")) == {True}
    assert len(list((tmp_path / "rotated").glob("*.jpg"))) == 6 * n_val_photos, "no file for training photos"
    assert all(Path(p).read_bytes() for p in photos), "the photos are only referenced, never touched"
    assert dataset.info["build"]["train_rotations"] is False
    # the course's loaders read training photos from it as from a full build
    from rotation_utils import training
    profile = get_profile("quick", image_size=32, batch_size=4)
    train_loader, val_loader, train_paths = training.course_loaders(profile, dataset)
    assert len(train_paths) == 9 - n_val_photos and len(val_loader.dataset) == 6 * n_val_photos
