"""Head pose (notebook 08): readers, sign conventions, augmentation labels, baselines, HopeNet.

The sign conventions are checked on the labels themselves: the PnP baseline on AFLW2000's own
landmarks must give its labels back, and a flipped or turned face must give the labels that
flip_pose / rotate_pose say.
"""
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import torch
from PIL import Image

from rotation_utils import cli
from rotation_utils import headpose as hp

HEAD_POSE = Path(os.environ.get(hp.HEAD_POSE_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data" / "head_pose")


@pytest.fixture(scope="module")
def head_pose_dir() -> Path:
    if not (HEAD_POSE / "aflw2000_sample").is_dir():
        pytest.skip("../shared/data/head_pose is not here")
    return HEAD_POSE


@pytest.fixture(scope="module")
def aflw(head_pose_dir):
    train, _ = hp.load_aflw2000(head_pose_dir / "aflw2000_more")
    test, _ = hp.load_aflw2000(head_pose_dir / "aflw2000_sample")
    return train, test


@pytest.fixture(scope="module")
def mean_shape(aflw):
    return hp.mean_face_shape(aflw[0])


# --------------------------------------------------------------------------- readers

def test_read_pose_mat_converts_radians_to_degrees_in_aflw_order(head_pose_dir):
    mat = head_pose_dir / "aflw2000_sample" / "image00050.mat"
    raw = sio.loadmat(mat)["Pose_Para"][0]
    sample = hp.read_pose_mat(mat)
    assert sample.pitch_deg == pytest.approx(math.degrees(raw[0]))
    assert sample.yaw_deg == pytest.approx(math.degrees(raw[1]))
    assert sample.roll_deg == pytest.approx(math.degrees(raw[2]))
    assert sample.landmarks.shape == (68, 2) and sample.landmarks_3d.shape == (68, 3)
    assert sample.image_path.name == "image00050.jpg"
    x0, y0, x1, y1 = sample.box
    assert 0 <= x0 < x1 <= 450 and 0 <= y0 < y1 <= 450


def test_mat_without_pose_is_refused_by_name(tmp_path):
    sio.savemat(tmp_path / "face.mat", {"pt2d": np.zeros((2, 21))})
    with pytest.raises(hp.HeadPoseError, match=r"face\.mat.*Pose_Para"):
        hp.read_pose_mat(tmp_path / "face.mat")
    (tmp_path / "broken.mat").write_bytes(b"not a mat file")
    with pytest.raises(hp.HeadPoseError, match=r"broken\.mat"):
        hp.read_pose_mat(tmp_path / "broken.mat")
    with pytest.raises(FileNotFoundError):
        hp.read_pose_mat(tmp_path / "missing.mat")


def test_load_aflw2000_drops_beyond_99_degrees_and_names_them(head_pose_dir):
    samples, skipped = hp.load_aflw2000(head_pose_dir / "aflw2000_more")
    assert len(samples) == 43
    assert sorted(name for name, _ in skipped) == ["image00032.jpg", "image00088.jpg", "image00091.jpg"]
    assert all("beyond ±99°" in reason for _, reason in skipped)
    assert max(np.abs(s.angles_deg).max() for s in samples) <= 99
    everything, skipped_none = hp.load_aflw2000(head_pose_dir / "aflw2000_more", max_abs_deg=None)
    assert len(everything) == 46 and skipped_none == []


def test_load_aflw2000_skips_unpaired_files(tmp_path, head_pose_dir):
    src = head_pose_dir / "aflw2000_sample"
    shutil.copy(src / "image00050.jpg", tmp_path)
    shutil.copy(src / "image00050.mat", tmp_path)
    shutil.copy(src / "image00081.jpg", tmp_path)  # no .mat
    shutil.copy(src / "image00251.mat", tmp_path)  # no .jpg
    sio.savemat(tmp_path / "nopose.mat", {"pt2d": np.zeros((2, 21))})
    Image.new("RGB", (64, 64)).save(tmp_path / "nopose.jpg")
    samples, skipped = hp.load_aflw2000(tmp_path)
    assert [s.image_path.name for s in samples] == ["image00050.jpg"]
    reasons = dict(skipped)
    assert "no .mat" in reasons["image00081.jpg"]
    assert "no image" in reasons["image00251.mat"]
    assert "Pose_Para" in reasons["nopose.mat"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(hp.HeadPoseError, match="no usable"):
        hp.load_aflw2000(tmp_path / "empty")


def test_300w_lp_sample_reads_68_landmarks_from_pt2d(head_pose_dir):
    samples, skipped = hp.load_aflw2000(head_pose_dir / "aflw2000_sample" / "300w_lp_sample")
    assert len(samples) == 1 and not skipped
    sample = samples[0]
    assert sample.source == "300w_lp" and sample.landmarks.shape == (68, 2) and sample.landmarks_3d is None
    with Image.open(sample.image_path) as image:
        width, height = image.size
    inside = (sample.landmarks[:, 0] >= 0) & (sample.landmarks[:, 0] <= width) & (sample.landmarks[:, 1] <= height)
    assert inside.mean() > 0.9


def test_pointing04_labels_come_from_the_name_and_split_by_person(head_pose_dir):
    samples, skipped = hp.load_pointing04(head_pose_dir / "pointing04")
    assert len(samples) == 2418 and not skipped
    one = next(s for s in samples if s.image_path.name == "person08123-30+45.jpg")
    assert (one.yaw_deg, one.pitch_deg, one.person) == (45.0, -30.0, "08") and math.isnan(one.roll_deg)
    x0, y0, x1, y1 = one.box
    assert 0 <= x0 < x1 <= 384 and 0 <= y0 < y1 <= 288
    train, test = hp.person_split(samples, 0.25, seed=0)
    assert len(train) + len(test) == len(samples)
    assert not {s.person for s in train} & {s.person for s in test}
    assert len({s.person for s in test}) >= 3


# --------------------------------------------------------------------------- conventions

def test_pose_matrix_round_trips_and_has_the_documented_signs():
    rng = np.random.default_rng(0)
    angles = rng.uniform(-80, 80, size=(50, 3))
    back = hp.pose_from_matrix(hp.pose_matrix(*angles.T))
    assert np.allclose(back, angles, atol=1e-9)
    nose = np.array([0.0, 0.0, -1.0])  # the frontal face's nose points at the camera (z away from it)
    top = np.array([0.0, -1.0, 0.0])   # the top of its head is up (y down)
    assert (hp.pose_matrix(30, 0, 0) @ nose)[0] < 0   # yaw > 0: the nose goes to the image's left
    assert (hp.pose_matrix(0, 30, 0) @ nose)[1] < 0   # pitch > 0: it looks up
    assert (hp.pose_matrix(0, 0, 30) @ top)[0] > 0    # roll > 0: the head tilts to the image's right


def test_the_matrix_convention_fits_the_aflw2000_labels(aflw):
    """Turned back to the front with their own labels, all faces are one face; with the yaw's
    sign wrong (a plausible mistake) they are not."""
    train, _ = aflw

    def spread(flip_yaw):
        shapes = [hp.pose_matrix((-1 if flip_yaw else 1) * s.yaw_deg, s.pitch_deg, s.roll_deg).T
                  @ hp.normalised_landmarks(s.landmarks_3d).T for s in train]
        return float(np.var(np.stack(shapes), axis=0).sum(axis=0).mean())

    assert spread(False) < 0.01
    assert spread(True) > 10 * spread(False)


def test_pnp_on_aflw2000_landmarks_gives_its_labels_back(aflw, mean_shape):
    _, test = aflw
    predicted = np.stack([hp.solve_pnp_pose(s.landmarks, mean_shape, (450, 450)) for s in test])
    errors = hp.pose_errors(predicted, np.stack([s.angles_deg for s in test]))
    assert errors["n"] == 16
    assert errors["yaw_mae_deg"] < 3 and errors["roll_mae_deg"] < 3 and errors["mae_deg"] < 5
    far = np.stack([hp.solve_pnp_pose(s.landmarks, mean_shape, (450, 450), focal_px=4000) for s in test])
    assert hp.pose_errors(far, np.stack([s.angles_deg for s in test]))["pitch_mae_deg"] < errors["pitch_mae_deg"]


def test_mean_face_is_left_right_symmetric_under_flip_68(mean_shape):
    mirrored = mean_shape.copy()
    mirrored[:, 0] *= -1
    assert np.abs(mirrored[hp.FLIP_68] - mean_shape).mean() < 0.02
    assert np.abs(mirrored - mean_shape).mean() > 0.1  # without renumbering it is not
    assert sorted(hp.FLIP_68) == list(range(68)) and np.array_equal(hp.FLIP_68[hp.FLIP_68], np.arange(68))


def test_flip_pose_matches_pnp_on_flipped_landmarks(aflw, mean_shape):
    for s in aflw[1][:6]:
        plain = hp.solve_pnp_pose(s.landmarks, mean_shape, (450, 450))
        flipped = hp.solve_pnp_pose(hp.flip_landmarks(s.landmarks, 450), mean_shape, (450, 450))
        assert np.allclose(flipped, hp.flip_pose(plain), atol=0.5)


def test_rotate_pose_is_exact_and_roll_minus_phi_is_not_for_a_turned_face(aflw, mean_shape):
    turned = max(aflw[1], key=lambda s: abs(s.yaw_deg))
    assert abs(turned.yaw_deg) > 40
    plain = hp.solve_pnp_pose(turned.landmarks, mean_shape, (450, 450))
    centre = (225.0, 225.0)  # about the principal point, an image turn is a camera roll exactly
    for phi in (-30.0, 20.0):
        after = hp.solve_pnp_pose(hp.rotate_landmarks(turned.landmarks, phi, centre), mean_shape, (450, 450))
        exact = hp.rotate_pose(plain, phi)
        naive = plain - np.array([0.0, 0.0, phi])
        assert np.abs(after - exact).max() < 0.5
        assert np.abs(after - naive).max() > 5
    frontal = np.array([0.0, 0.0, 5.0])
    assert np.allclose(hp.rotate_pose(frontal, 25.0), [0.0, 0.0, -20.0], atol=1e-6)
    assert abs(hp.rotate_pose([0.0, 10.0, 5.0], 25.0)[0]) > 3  # a raised face: the yaw changes too
    many = np.array([[60.0, 0.0, 0.0], [10.0, -20.0, 5.0]])
    assert np.allclose(hp.rotate_pose(many, [30.0, -10.0]), [hp.rotate_pose(many[0], 30.0), hp.rotate_pose(many[1], -10.0)])
    assert np.allclose(hp.rotate_pose(many, 30.0)[1], hp.rotate_pose(many[1], 30.0))


def test_rotate_landmarks_agrees_with_pil_rotate():
    image = Image.new("L", (101, 101))
    image.putpixel((80, 50), 255)
    turned = np.asarray(image.rotate(90, center=(50, 50)))
    y, x = np.unravel_index(turned.argmax(), turned.shape)
    assert np.allclose(hp.rotate_landmarks([[80, 50]], 90, (50, 50)), [[x, y]], atol=1)


def test_pose_errors_leaves_out_unlabelled_roll():
    truth = np.array([[10.0, 0.0, np.nan], [20.0, 5.0, np.nan]])
    errors = hp.pose_errors(truth + [1.0, 2.0, 0.0], truth)
    assert errors["yaw_mae_deg"] == pytest.approx(1) and errors["pitch_mae_deg"] == pytest.approx(2)
    assert errors["roll_mae_deg"] is None and errors["mae_deg"] == pytest.approx(1.5)
    with pytest.raises(ValueError):
        hp.pose_errors(np.zeros((2, 3)), np.zeros((3, 3)))


# --------------------------------------------------------------------------- crops and the dataset

def _synthetic(tmp_path, mode="RGB", side=200, name="face.jpg", seed=1):
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 255, size=(side, side, 3), dtype=np.uint8)
    image = Image.fromarray(array)
    image = image.convert(mode)
    path = tmp_path / name
    image.save(path)
    return hp.HeadPoseSample(path, 30.0, -10.0, 5.0, box=(60, 60, 140, 140))


def test_dataset_flip_and_turn_update_the_labels(tmp_path):
    sample = _synthetic(tmp_path)
    dataset = hp.HeadPoseDataset([sample] * 40, size=64, train=True, max_roll_deg=30, seed=3)
    plain = hp.HeadPoseDataset([sample], size=64)
    base_image, base_angles = plain[0]
    assert torch.allclose(base_angles, torch.tensor([30.0, -10.0, 5.0]))
    flips = 0
    for i in range(40):
        flip, phi = dataset.augmentation(i)
        image, angles = dataset[i]
        expected = hp.rotate_pose(hp.flip_pose(sample.angles_deg) if flip else sample.angles_deg, phi)
        assert np.allclose(angles.numpy(), expected, atol=1e-4)
        assert -30 <= phi <= 30
        flips += flip
    assert 5 < flips < 35
    dataset.max_roll_deg = 0.0
    for i in range(40):
        flip, _ = dataset.augmentation(i)
        if flip:
            image, _ = dataset[i]
            assert torch.allclose(image, base_image.flip(-1), atol=1e-5)
            break


def test_dataset_turns_unlabelled_roll_only_when_told(tmp_path):
    sample = _synthetic(tmp_path)
    sample.roll_deg = math.nan
    kept = hp.HeadPoseDataset([sample] * 10, size=32, train=True, seed=0)
    assert all(math.isnan(kept[i][1][2]) for i in range(10))
    assumed = hp.HeadPoseDataset([sample] * 10, size=32, train=True, unlabelled_roll_deg=0.0, seed=0)
    assert all(math.isfinite(assumed[i][1][2]) for i in range(10))


def test_small_and_grayscale_faces(tmp_path):
    gray = _synthetic(tmp_path, mode="L", name="gray.png")
    image, _ = hp.HeadPoseDataset([gray], size=32)[0]
    assert image.shape == (3, 32, 32)
    tiny = hp.HeadPoseSample(gray.image_path, 0, 0, 0, box=(10, 10, 15, 15))
    with pytest.raises(hp.HeadPoseError, match=r"gray\.png.*too small"):
        hp.HeadPoseDataset([tiny], size=32)
    nothing = hp.HeadPoseSample(gray.image_path, 0, 0, 0)
    with pytest.raises(hp.HeadPoseError, match="no landmarks and no face box"):
        hp.face_box(nothing)


# --------------------------------------------------------------------------- HopeNet

def test_bins_decode_exactly_at_their_centres():
    centres = hp.bin_centres_deg()
    assert len(centres) == 66 and centres[0] == pytest.approx(-97.5) and centres[-1] == pytest.approx(97.5)
    assert torch.equal(hp.angle_to_bin(centres), torch.arange(66))
    assert hp.angle_to_bin(torch.tensor([-99.0, 98.99, 150.0, -150.0])).tolist() == [0, 65, 65, 0]
    logits = torch.full((66, 66), -1e4)
    logits[torch.arange(66), torch.arange(66)] = 0.0
    assert torch.allclose(hp.expected_angle_deg(logits), centres, atol=1e-4)


def test_hopenet_loss_is_lowest_at_the_truth_and_skips_nan():
    truth = torch.tensor([[12.0, -40.0, float("nan")]])
    bins = hp.angle_to_bin(torch.nan_to_num(truth))
    good = torch.full((1, 3, 66), -10.0)
    good[0, torch.arange(3), bins[0]] = 10.0
    bad = good.roll(5, dims=-1)
    for alpha in (0.0, 1.0, 2.0):
        assert hp.hopenet_loss(good, truth, alpha) < hp.hopenet_loss(bad, truth, alpha)
    logits = torch.zeros(1, 3, 66, requires_grad=True)
    loss = hp.hopenet_loss(logits, truth, 1.0)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[0, 2].abs().sum() == 0
    assert hp.hopenet_loss(logits, torch.full((1, 3), float("nan"))) == 0


def test_small_cnn_hopenet_learns_and_its_checkpoint_round_trips(tmp_path, one_torch_thread):
    samples = [_synthetic(tmp_path, name=f"f{i}.png", seed=i) for i in range(4)]
    for s, yaw in zip(samples, (-60.0, -20.0, 20.0, 60.0)):
        s.yaw_deg = yaw
    dataset = hp.HeadPoseDataset(samples, size=32)
    model = hp.HeadPoseNet("small_cnn")
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 3, 66)
    fitted = hp.train_headpose(model, dataset, epochs=30, batch_size=4, alpha=1.0, lr=3e-3)
    assert fitted["loss"][-1] < fitted["loss"][0] / 2
    path = hp.save_headpose_checkpoint(model, tmp_path / "run" / "headpose.pt", {"size": 32})
    with pytest.raises(FileExistsError):
        hp.save_headpose_checkpoint(model, path, {"size": 32})
    loaded, meta = hp.load_headpose_checkpoint(path)
    assert meta["size"] == 32 and meta["backbone"] == "small_cnn"
    assert np.allclose(hp.predict_headpose(loaded, dataset), hp.predict_headpose(model, dataset), atol=1e-5)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt"):
        hp.load_headpose_checkpoint(tmp_path / "junk.pt")


def test_landmark_mlp_beats_the_mean_pose(aflw):
    train, test = aflw
    truth = np.stack([s.angles_deg for s in test])
    mlp = hp.pose_errors(hp.predict_landmark_mlp(hp.fit_landmark_mlp(train, copies=5), test), truth)
    mean = hp.pose_errors(np.tile(np.stack([s.angles_deg for s in train]).mean(0), (len(test), 1)), truth)
    assert mlp["mae_deg"] < mean["mae_deg"] / 2


# --------------------------------------------------------------------------- FiftyOne and the command line

def test_faces_dataset_has_angles_and_68_keypoints(aflw):
    train, _ = aflw
    dataset = hp.faces_dataset("test-faces", train[:3])
    first = dataset.first()
    assert dataset.count() == 3
    assert first["yaw_deg"] == pytest.approx(train[0].yaw_deg)
    points = first["landmarks"].keypoints[0].points
    assert len(points) == 68 and all(0 <= x <= 1 for x, _ in points)
    assert hp.faces_dataset("test-faces", train[:3]) is not None  # same photos: reused
    from rotation_utils.datasets import DatasetExistsError
    with pytest.raises(DatasetExistsError):
        hp.faces_dataset("test-faces", train[3:5])
    import fiftyone as fo
    assert fo.load_dataset("test-faces").count() == 3  # left untouched
    other = hp.course_faces_dataset(train[3:5], base="test-faces", verbose=False)
    assert other.name == "test-faces-2" and other.count() == 2 and fo.load_dataset("test-faces").count() == 3


def test_cli_headpose_evaluate_pnp_json(head_pose_dir, capsys):
    status = cli.main(["headpose", "evaluate", "--images", str(head_pose_dir / "aflw2000_sample"), "--method", "pnp",
                       "--fit-on", str(head_pose_dir / "aflw2000_more"), "--json"])
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 16 and result["angles"] == ["yaw", "pitch", "roll"]
    assert result["mae_deg"] == pytest.approx(np.mean([result[f"{a}_mae_deg"] for a in hp.ANGLES]))


def test_cli_headpose_refuses_bad_requests(head_pose_dir, capsys, tmp_path):
    sample = str(head_pose_dir / "aflw2000_sample")
    assert cli.main(["headpose", "evaluate", "--images", sample, "--method", "pnp", "--fit-on", sample]) == 2
    assert "share 16 faces" in capsys.readouterr().err
    assert cli.main(["headpose", "evaluate", "--images", sample, "--method", "pnp"]) == 2
    assert "--fit-on" in capsys.readouterr().err
    assert cli.main(["headpose", "evaluate", "--images", str(head_pose_dir / "pointing04"), "--method", "mlp",
                     "--fit-on", str(head_pose_dir / "aflw2000_more")]) == 2
    assert "Pointing'04" in capsys.readouterr().err
    assert cli.main(["headpose", "evaluate", "--images", str(tmp_path / "nowhere"), "--method", "pnp"]) == 2


def test_cli_headpose_train_then_evaluate_model(tmp_path, head_pose_dir, capsys, one_torch_thread):
    folder = tmp_path / "faces"
    folder.mkdir()
    for name in ("image00050", "image00081", "image00251"):
        for suffix in (".jpg", ".mat"):
            (folder / f"{name}{suffix}").symlink_to(head_pose_dir / "aflw2000_sample" / f"{name}{suffix}")
    args = ["headpose", "train", "--images", str(folder), "--out", str(tmp_path / "run"), "--backbone", "small_cnn",
            "--epochs", "1", "--size", "32"]
    assert cli.main(args) == 0
    assert cli.main(args) == 2 and "exists" in capsys.readouterr().err
    assert cli.main(["headpose", "evaluate", "--images", str(folder), "--method", "model",
                     "--checkpoint", str(tmp_path / "run" / "headpose.pt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 3 and result["method"] == "model"


def test_dlib_landmarks_land_near_the_labelled_ones(aflw):
    pytest.importorskip("dlib")
    face = aflw[1][0]
    points = hp.dlib_landmarks(face.image_path)
    assert points is not None and points.shape == (68, 2)
    side = max(face.box[2] - face.box[0], face.box[3] - face.box[1])
    assert np.linalg.norm(points - face.landmarks, axis=1).mean() < 0.1 * side


def test_cli_headpose_pnp_with_dlib_landmarks(head_pose_dir, capsys):
    pytest.importorskip("dlib")
    status = cli.main(["headpose", "evaluate", "--images", str(head_pose_dir / "aflw2000_sample"), "--method", "pnp",
                       "--fit-on", str(head_pose_dir / "aflw2000_more"), "--landmarks", "dlib", "--json"])
    assert status == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["landmarks"] == "dlib" and result["n"] + result["no_face_found"] == 16
    assert captured.err.count("no face found by Dlib") == result["no_face_found"]


def test_head_pose_dir_says_what_to_do_and_reads_relative_paths(monkeypatch, tmp_path):
    monkeypatch.delenv(hp.HEAD_POSE_ENV, raising=False)
    with pytest.raises(hp.HeadPoseDataUnavailable, match="ROTATION_COURSE_HEAD_POSE"):
        hp.head_pose_dir()
    monkeypatch.setenv(hp.HEAD_POSE_ENV, str(tmp_path / "missing"))
    with pytest.raises(hp.HeadPoseDataUnavailable, match="does not exist"):
        hp.head_pose_dir()
    (tmp_path / "faces").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(hp.HEAD_POSE_ENV, "faces")
    assert hp.head_pose_dir().resolve() == (tmp_path / "faces").resolve()


def test_normalised_landmarks_forget_the_place_and_size_of_the_face():
    rng = np.random.default_rng(0)
    face = rng.normal(size=(68, 2))
    moved = 3.5 * face + np.array([120.0, -40.0])
    out = hp.normalised_landmarks(moved)
    np.testing.assert_allclose(out, hp.normalised_landmarks(face), atol=1e-12)
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-12)
    assert np.sqrt((out ** 2).sum(axis=1).mean()) == pytest.approx(1.0)
    assert not np.allclose(hp.normalised_landmarks(face * np.array([1.0, 2.0])), out)  # a stretch is not forgotten


# --------------------------------------------------------------------------- the schematic face (no data)

def test_schematic_face_is_normalised_symmetric_and_looks_at_the_camera():
    face = hp.schematic_face()
    assert face.shape == (68, 3) and np.isfinite(face).all()
    assert np.allclose(face.mean(axis=0), 0.0, atol=1e-12)
    assert math.isclose(np.sqrt((face ** 2).sum(axis=1).mean()), 1.0)
    assert np.allclose(face[hp.FLIP_68] * [-1, 1, 1], face)  # its mirror is itself, renumbered
    nose_tip, chin, brow = face[30], face[8], face[19]
    assert nose_tip[2] == face[:, 2].min()  # the nose tip is nearest the camera
    assert chin[1] > nose_tip[1] > brow[1]  # y points down: brow, nose, chin
    assert face[36, 0] < face[39, 0] < 0 < face[42, 0] < face[45, 0]  # eye corners left to right


def test_project_face_then_pnp_gives_the_pose_back_and_noise_costs_little():
    face = hp.schematic_face()
    rng = np.random.default_rng(3)
    for pose in [(0.0, 0.0, 0.0), (30.0, -10.0, 20.0), (-65.0, 25.0, -15.0)]:
        exact = hp.project_face(face, pose, focal_px=450, face_radius_px=90)
        assert np.allclose(hp.solve_pnp_pose(exact, face, (450, 450), 450), pose, atol=1e-6)
        noisy = hp.project_face(face, pose, focal_px=450, face_radius_px=90, noise_px=1.0, rng=rng)
        assert 0 < np.abs(noisy - exact).max() < 6
        assert np.abs(hp.solve_pnp_pose(noisy, face, (450, 450), 450) - pose).max() < 2.0
    frontal = hp.project_face(face, (0.0, 0.0, 0.0), focal_px=450, face_radius_px=90)
    assert np.allclose(frontal.mean(axis=0), (225, 225), atol=5)  # the face sits in the middle
    assert 80 < np.sqrt(((frontal - frontal.mean(axis=0)) ** 2).sum(axis=1).mean()) < 100  # about 90 px
    with pytest.raises(ValueError):
        hp.project_face(face, (0, 0, 0), focal_px=0)


def test_yaw_turns_the_nose_to_the_images_left_and_roll_turns_clockwise():
    face = hp.schematic_face()
    centre = hp.project_face(face, (0.0, 0.0, 0.0), 450)[30]
    assert hp.project_face(face, (30.0, 0.0, 0.0), 450)[30][0] < centre[0] - 10  # nose to the image's left
    assert hp.project_face(face, (0.0, 30.0, 0.0), 450)[30][1] < centre[1] - 5  # looking up: nose goes up
    rolled = hp.project_face(face, (0.0, 0.0, 30.0), 450)
    top = rolled[27] - rolled[8]  # chin to the top of the nose: "up" in the image
    assert top[0] > 0  # the top of the head tilts to the image's right: clockwise


def test_flip_and_turn_labels_hold_on_the_schematic_face_without_data():
    face = hp.schematic_face()
    for pose in [(45.0, -20.0, 15.0), (70.0, 10.0, -5.0)]:
        points = hp.project_face(face, pose, 450)
        mirrored = hp.solve_pnp_pose(hp.flip_landmarks(points, 450), face, (450, 450), 450)
        assert np.allclose(mirrored, hp.flip_pose(pose), atol=1e-6)
        turned = hp.solve_pnp_pose(hp.rotate_landmarks(points, 30.0, (225, 225)), face, (450, 450), 450)
        assert np.allclose(turned, hp.rotate_pose(pose, 30.0), atol=1e-6)
        assert np.abs(turned - np.subtract(pose, (0, 0, 30))).max() > 10  # "roll − φ" is wrong here


def test_enable_data_cells_needs_ipython(monkeypatch):
    monkeypatch.setattr("IPython.get_ipython", lambda: None)  # as in a plain script
    with pytest.raises(RuntimeError, match="IPython"):
        hp.enable_data_cells(True)


def test_enable_data_cells_runs_or_skips_a_marked_cell(capsys):
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    try:
        hp.enable_data_cells(False, "no folder")
        shell.run_cell_magic("head_pose_data", "", "ran = True")
        assert "ran" not in shell.user_ns and "skipped" in capsys.readouterr().out
        hp.enable_data_cells(True)
        shell.run_cell_magic("head_pose_data", "", "ran = True")
        assert shell.user_ns["ran"] is True
        with pytest.raises(ZeroDivisionError):
            shell.run_cell_magic("head_pose_data", "", "1 / 0")
    finally:
        shell.user_ns.pop("ran", None)
