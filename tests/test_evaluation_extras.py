"""Unit tests of the newer evaluation helpers, Grad-CAM border analysis and their figures.

rotation_utils.evaluation: coverage_curve, error_by_true_angle, chance_summary,
format_comparison, link_photos. rotation_utils.gradcam: border_fill_mask, cam_mass_share,
gradcam_for_loader (a tiny random ResNet18 at 32 px). rotation_utils.plots:
plot_prediction_gallery, plot_coverage. Expected values are computed independently of the
code under test wherever possible (closed forms, hand-worked examples, rotate_image's alpha).
"""
import math
import os
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from rotation_utils import angles, plots, rotation
from rotation_utils.datasets import IMAGENET_MEAN, IMAGENET_STD
from rotation_utils.evaluation import (REFERENCE_SUMMARY, chance_summary, coverage_curve,
                                       error_by_true_angle, format_comparison, link_photos)
from rotation_utils.gradcam import border_fill_mask, cam_mass_share, compute_gradcam, gradcam_for_loader


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def independent_circular_error(a, b):
    """min(|a − b| mod 360, 360 − that), written out without rotation_utils."""
    d = np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) % 360.0
    return np.minimum(d, 360.0 - d)


# =========================================================================== coverage_curve

def test_coverage_curve_default_keeps_one_more_sample_each_step():
    errors = np.array([10.0, 2.0, 30.0, 4.0, 6.0])
    confidence = np.array([0.5, 0.9, 0.1, 0.8, 0.7])
    curve = coverage_curve(errors, confidence)
    assert np.array_equal(curve["kept"], [1, 2, 3, 4, 5])
    assert np.allclose(curve["coverage"], [0.2, 0.4, 0.6, 0.8, 1.0])
    # Most confident first: 2 (0.9), 4 (0.8), 6 (0.7), 10 (0.5), 30 (0.1).
    assert np.allclose(curve["mae_deg"], [2.0, 3.0, 4.0, 5.5, 10.4])
    assert np.allclose(curve["within_5"], [1.0, 1.0, 2 / 3, 0.5, 0.4])


def test_coverage_curve_at_full_coverage_is_the_overall_mae():
    rng = np.random.default_rng(0)
    errors = rng.uniform(0, 180, 97)
    confidence = rng.normal(size=97)
    curve = coverage_curve(errors, confidence, coverages=[0.2, 1.0])
    assert curve["kept"][-1] == 97
    assert curve["mae_deg"][-1] == pytest.approx(errors.mean(), rel=1e-12)
    assert curve["within_5"][-1] == pytest.approx(np.mean(errors <= 5.0))
    default = coverage_curve(errors, confidence)
    assert default["mae_deg"][-1] == pytest.approx(errors.mean(), rel=1e-12)


def test_coverage_curve_anti_correlated_confidence_keeps_the_smallest_errors():
    rng = np.random.default_rng(1)
    errors = rng.uniform(0, 40, 50)
    confidence = -errors  # the surer, the smaller the error
    curve = coverage_curve(errors, confidence)
    smallest_first = np.sort(errors)
    for k in (1, 5, 10, 25, 50):
        assert curve["mae_deg"][k - 1] == pytest.approx(smallest_first[:k].mean())
        assert curve["within_5"][k - 1] == pytest.approx(np.mean(smallest_first[:k] <= 5.0))
    assert curve["mae_deg"][0] == pytest.approx(errors.min())
    assert np.all(np.diff(curve["mae_deg"]) >= -1e-12), "abstaining on the worst: the curve only rises"
    # and the opposite confidence keeps the largest errors first
    worst = coverage_curve(errors, errors)
    assert worst["mae_deg"][0] == pytest.approx(errors.max())
    assert np.all(np.diff(worst["mae_deg"]) <= 1e-12)


def test_coverage_curve_explicit_coverages_keep_ceil_of_share_times_n():
    errors = np.arange(10, dtype=float)  # 0 … 9
    confidence = 100.0 - errors  # keeps the smallest errors first
    coverages = [1e-6, 0.1, 0.25, 0.3, 0.5, 0.7, 1.0]
    curve = coverage_curve(errors, confidence, coverages)
    # ceil(c · 10) by hand; 0.3 · 10 and 0.7 · 10 are 3 and 7 exactly, not 4 and 8
    assert np.array_equal(curve["kept"], [1, 1, 3, 3, 5, 7, 10])
    assert np.allclose(curve["coverage"], coverages)
    assert np.allclose(curve["mae_deg"], [0.0, 0.0, 1.0, 1.0, 2.0, 3.0, 4.5])
    assert np.allclose(curve["within_5"], [1.0, 1.0, 1.0, 1.0, 1.0, 6 / 7, 0.6])


def test_coverage_curve_ties_keep_the_earlier_sample_first():
    errors = np.array([7.0, 1.0, 3.0, 20.0])
    curve = coverage_curve(errors, np.ones(4))
    assert np.allclose(curve["mae_deg"], [7.0, 4.0, 11 / 3, 31 / 4])
    mixed = coverage_curve(errors, [1.0, 2.0, 2.0, 1.0])  # 1, 3 (tied, in order), then 7, 20
    assert np.allclose(mixed["mae_deg"], [1.0, 2.0, 11 / 3, 31 / 4])


def test_coverage_curve_shares_k_over_n_keep_exactly_k_samples():
    # (k / n) · n is not always k in floating point: 7 / 25 · 25 = 7.000000000000001
    n = 25
    errors = np.arange(n, dtype=float)
    curve = coverage_curve(errors, -errors, coverages=np.arange(1, n + 1) / n)
    assert np.array_equal(curve["kept"], np.arange(1, n + 1))
    assert np.allclose(curve["mae_deg"], np.arange(n) / 2)


def test_coverage_curve_many_ties_keep_the_original_order():
    rng = np.random.default_rng(5)
    confidence = rng.integers(0, 3, 200).astype(float)
    errors = rng.uniform(0, 180, 200)
    order = sorted(range(200), key=lambda i: -confidence[i])  # Python's sort is stable
    curve = coverage_curve(errors, confidence)
    assert np.allclose(curve["mae_deg"], np.cumsum(errors[order]) / np.arange(1, 201))


def test_coverage_curve_uninformative_confidence_stays_flat():
    rng = np.random.default_rng(2)
    errors = rng.uniform(0, 180, 20000)
    curve = coverage_curve(errors, rng.uniform(size=20000), coverages=[0.25, 0.5, 0.75, 1.0])
    assert np.allclose(curve["mae_deg"], errors.mean(), atol=3.0)


@pytest.mark.parametrize("errors, confidence, coverages", [
    ([], [], None),
    ([1.0, 2.0], [1.0], None),
    ([1.0, 2.0], [1.0, 2.0, 3.0], None),
    ([1.0, 2.0], [1.0, 2.0], [0.0]),
    ([1.0, 2.0], [1.0, 2.0], [0.5, 1.5]),
    ([1.0, 2.0], [1.0, 2.0], [-0.1]),
    ([1.0, 2.0], [1.0, 2.0], [float("nan")]),
])
def test_coverage_curve_rejects_bad_input(errors, confidence, coverages):
    with pytest.raises(ValueError):
        coverage_curve(errors, confidence, coverages)


# =========================================================================== error_by_true_angle

def test_error_by_true_angle_hand_worked_bins():
    # wrapped: 5, 25, 35, 350, 10, 5 → bins 0, 0, 1, 11, 0, 0 (30° wide)
    true_deg = [5.0, 25.0, 35.0, -10.0, 370.0, 725.0]
    errors = [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]
    result = error_by_true_angle(true_deg, errors)
    assert np.allclose(result["bin_start_deg"], np.arange(0, 360, 30))
    assert np.allclose(result["bin_center_deg"], np.arange(15, 360, 30))
    expected_count = np.zeros(12, dtype=int)
    expected_count[[0, 1, 11]] = [4, 1, 1]
    assert np.array_equal(result["count"], expected_count)
    assert result["mae_deg"][0] == pytest.approx((1 + 3 + 9 + 11) / 4)
    assert result["mae_deg"][1] == pytest.approx(5.0)
    assert result["mae_deg"][11] == pytest.approx(7.0)
    empty = expected_count == 0
    assert np.all(np.isnan(result["mae_deg"][empty]))
    assert np.issubdtype(result["count"].dtype, np.integer)


def test_error_by_true_angle_bin_edges_and_other_widths():
    result = error_by_true_angle([0.0, 89.999, 90.0, 359.999, 360.0], [1.0, 2.0, 4.0, 8.0, 16.0],
                                 bin_width_deg=90)
    assert np.array_equal(result["count"], [3, 1, 0, 1]), "a bin holds its start, not its end"
    assert np.allclose(result["mae_deg"][[0, 1, 3]], [(1 + 2 + 16) / 3, 4.0, 8.0])
    assert np.allclose(result["bin_center_deg"], [45, 135, 225, 315])
    fine = error_by_true_angle(np.arange(0, 360, 1.0), np.ones(360), bin_width_deg=22.5)
    assert len(fine["count"]) == 16 and fine["count"].sum() == 360
    assert np.allclose(fine["mae_deg"], 1.0)
    tensors = error_by_true_angle(torch.tensor([10.0, 200.0]), torch.tensor([3.0, 5.0]), 180)
    assert np.allclose(tensors["mae_deg"], [3.0, 5.0])


@pytest.mark.parametrize("true_deg, errors, width", [
    ([1.0, 2.0], [1.0], 30),
    ([1.0, 2.0], [1.0, 2.0], 7),
    ([1.0, 2.0], [1.0, 2.0], 50),
    ([1.0, 2.0], [1.0, 2.0], -30),
])
def test_error_by_true_angle_rejects_bad_input(true_deg, errors, width):
    with pytest.raises(ValueError):
        error_by_true_angle(true_deg, errors, bin_width_deg=width)


def test_error_by_true_angle_zero_width_is_a_value_error():
    with pytest.raises(ValueError):
        error_by_true_angle([1.0, 2.0], [1.0, 2.0], bin_width_deg=0)


# =========================================================================== chance_summary

def test_chance_summary_closed_form_of_a_uniform_guess():
    chance = chance_summary()
    # the circular error of a uniform guess is uniform on [0, 180]
    assert chance["mae_deg"] == pytest.approx(90.0)
    assert chance["median_deg"] == pytest.approx(90.0)
    assert chance["p90_deg"] == pytest.approx(0.9 * 180)
    for t in (5, 10, 15):
        assert chance[f"within_{t}"] == pytest.approx(t / 180)
    assert set(chance) == set(angles.summarize_errors([1.0])) - {"n"}


def test_chance_summary_matches_simulated_random_guessing():
    rng = np.random.default_rng(3)
    true_deg = rng.uniform(0, 360, 200_000)
    guess_deg = rng.uniform(0, 360, 200_000)
    simulated = angles.summarize_errors(independent_circular_error(guess_deg, true_deg))
    chance = chance_summary()
    for key in ("mae_deg", "median_deg", "p90_deg"):
        assert chance[key] == pytest.approx(simulated[key], abs=1.0), key
    for key in ("within_5", "within_10", "within_15"):
        assert chance[key] == pytest.approx(simulated[key], abs=0.004), key


def test_chance_summary_is_a_fresh_dict():
    chance_summary()["mae_deg"] = -1.0
    assert chance_summary()["mae_deg"] == pytest.approx(90.0)


# =========================================================================== format_comparison

def test_format_comparison_rows_values_and_missing_metrics():
    mine = angles.summarize_errors([1.0, 2.0, 3.0, 10.0])
    table = format_comparison({"reference": REFERENCE_SUMMARY, "chance": chance_summary(), "mine": mine})
    assert not table.endswith("\n")
    lines = table.split("\n")
    assert len(lines) == 4
    header = lines[0]
    for label in ("n", "MAE", "median", "p90", "within 5°", "within 10°", "within 15°"):
        assert label in header
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert list(rows) == ["reference", "chance", "mine"]
    assert rows["reference"] == ["–", "4.57°", "1.74°", "5.63°", "88.1%", "94.8%", "96.1%"]  # as published; no n
    assert rows["chance"] == ["–", "90.00°", "90.00°", "162.00°", "2.8%", "5.6%", "8.3%"]
    # n 4, MAE 4, median 2.5, p90 3 + 0.7·7 = 7.9, shares 3/4, 4/4, 4/4
    assert rows["mine"] == ["4", "4.00°", "2.50°", "7.90°", "75.0%", "100.0%", "100.0%"]


def test_format_comparison_is_fixed_width_with_aligned_columns():
    long_name = "a rather long model name, 40 characters"
    table = format_comparison({"x": {"mae_deg": 12.345, "within_5": 0.0, "n": np.int64(7)},
                               long_name: {"mae_deg": 1.0, "p90_deg": None}})
    lines = table.split("\n")
    assert len({len(line) for line in lines}) == 1, "every line has the same width"
    assert lines[2].startswith(long_name)
    # each header ends where the cells of its column end (right-aligned columns)
    mae_end = lines[0].index("MAE") + len("MAE")
    assert lines[1][:mae_end].endswith("12.35°") and lines[2][:mae_end].endswith("1.00°")
    n_end = lines[0].index(" n ") + 2
    assert lines[1][:n_end].endswith("7") and lines[2][:n_end].endswith("–")
    w5_end = lines[0].index("within 5°") + len("within 5°")
    assert lines[1][:w5_end].endswith("0.0%"), "a share of 0 is a value, not a missing metric"
    p90_end = lines[0].index("p90") + len("p90")
    assert lines[2][:p90_end].endswith("–"), "None is shown as missing"


def test_format_comparison_needs_a_row():
    with pytest.raises(ValueError):
        format_comparison({})


# =========================================================================== link_photos

def make_photo(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def snapshot(folder: Path) -> dict:
    return {p.name: (p.is_symlink(), os.lstat(p).st_ino) for p in folder.iterdir()}


def test_link_photos_same_names_from_different_folders_do_not_clash(tmp_path):
    first = make_photo(tmp_path / "a" / "photo.jpg", b"first photo")
    second = make_photo(tmp_path / "b" / "photo.jpg", b"second photo, longer")
    third = make_photo(tmp_path / "b" / "other.png", b"third")
    folder = tmp_path / "deep" / "linked"
    assert link_photos([first, second, third], folder) == folder
    assert sorted(p.name for p in folder.iterdir()) == ["0000_photo.jpg", "0001_photo.jpg", "0002_other.png"]
    assert (folder / "0000_photo.jpg").read_bytes() == b"first photo"
    assert (folder / "0001_photo.jpg").read_bytes() == b"second photo, longer"
    assert (folder / "0002_other.png").read_bytes() == b"third"
    for entry, photo in zip(sorted(folder.iterdir()), [first, second, third]):
        if entry.is_symlink():
            assert entry.resolve() == photo.resolve()


def test_link_photos_links_are_absolute_so_relative_paths_work(tmp_path, monkeypatch):
    make_photo(tmp_path / "photos" / "p.jpg", b"pixels")
    monkeypatch.chdir(tmp_path)
    folder = link_photos([Path("photos") / "p.jpg"], "out")
    entry = tmp_path / "out" / "0000_p.jpg"
    assert Path(folder).resolve() == (tmp_path / "out").resolve()
    if entry.is_symlink():
        assert os.path.isabs(os.readlink(entry))
    monkeypatch.chdir(tmp_path / "photos")
    assert entry.read_bytes() == b"pixels"


def test_link_photos_rerun_reuses_the_folder(tmp_path):
    photos = [make_photo(tmp_path / "src" / f"{k}.jpg", bytes([k]) * (k + 1)) for k in range(3)]
    folder = tmp_path / "linked"
    link_photos(photos, folder)
    before = snapshot(folder)
    assert link_photos(photos, folder) == folder
    assert snapshot(folder) == before, "the same entries, not recreated"
    assert link_photos([str(p) for p in photos], str(folder)) == Path(folder)


def test_link_photos_refuses_a_foreign_file_and_deletes_nothing(tmp_path):
    photos = [make_photo(tmp_path / "src" / f"{k}.jpg", b"x" * (k + 1)) for k in range(2)]
    folder = tmp_path / "linked"
    link_photos(photos, folder)
    foreign = folder / "notes.txt"
    foreign.write_text("mine")
    with pytest.raises(FileExistsError):
        link_photos(photos, folder)
    assert foreign.read_text() == "mine"
    assert {"0000_0.jpg", "0001_1.jpg", "notes.txt"} == {p.name for p in folder.iterdir()}
    assert all(p.is_file() for p in photos)


def test_link_photos_refuses_a_different_selection_and_deletes_nothing(tmp_path):
    photos = [make_photo(tmp_path / "src" / f"{k}.jpg", b"x" * (k + 1)) for k in range(3)]
    folder = tmp_path / "linked"
    link_photos(photos[:2], folder)
    before = snapshot(folder)
    with pytest.raises(FileExistsError):
        link_photos([photos[2], photos[1]], folder)  # 0000_2.jpg is new, 0000_0.jpg is foreign
    with pytest.raises(FileExistsError):
        link_photos(photos[:1], folder)  # 0001_1.jpg is not asked for any more
    assert snapshot(folder) == before
    assert all(p.is_file() for p in photos)


def test_link_photos_missing_photo_creates_nothing(tmp_path):
    real = make_photo(tmp_path / "src" / "a.jpg", b"a")
    folder = tmp_path / "linked"
    with pytest.raises(FileNotFoundError):
        link_photos([real, tmp_path / "src" / "missing.jpg"], folder)
    assert not folder.exists()
    assert real.is_file()


def test_link_photos_copies_where_links_are_refused(tmp_path, monkeypatch):
    photos = [make_photo(tmp_path / "a" / "p.jpg", b"one"), make_photo(tmp_path / "b" / "p.jpg", b"two!")]

    def refuse(self, target, target_is_directory=False):
        raise OSError("no links here")

    monkeypatch.setattr(Path, "symlink_to", refuse)
    folder = link_photos(photos, tmp_path / "copies")
    entries = sorted(folder.iterdir())
    assert [e.name for e in entries] == ["0000_p.jpg", "0001_p.jpg"]
    assert not any(e.is_symlink() for e in entries)
    assert [e.read_bytes() for e in entries] == [b"one", b"two!"]
    link_photos(photos, folder)  # the copies are recognised on a re-run
    assert [e.read_bytes() for e in sorted(folder.iterdir())] == [b"one", b"two!"]


# =========================================================================== border_fill_mask

def square_fill_fraction(angle_deg: float) -> float:
    """Share of a square frame outside the same square rotated about its centre (closed form).

    The four cut-off corners are right triangles with hypotenuse h and legs h·cos θ, h·sin θ;
    along one frame side leg + hypotenuse (of the rotated square's poking-out triangle) + leg
    = side, so h = 1 / (1 + cos θ + sin θ) and the area is 4 · ½ h² sin θ cos θ (θ in [0, 90°]).
    """
    theta = math.radians(angle_deg % 90.0)
    h = 1.0 / (1.0 + math.cos(theta) + math.sin(theta))
    return 2.0 * h * h * math.sin(theta) * math.cos(theta)


def test_border_fill_mask_is_empty_without_rotation_and_at_right_angles():
    for width, height in ((100, 100), (160, 90), (90, 160)):
        for angle in (0.0, 180.0, 360.0):
            mask = border_fill_mask(width, height, angle, 48)
            assert mask.shape == (48, 48) and mask.dtype == bool
            assert not mask.any(), (width, height, angle)
    assert not border_fill_mask(100, 100, 90.0, 48).any()
    assert not border_fill_mask(100, 100, -270.0, 48).any()
    # a 2:1 photo turned by 90° still covers the centred square of the frame (it is as wide)
    assert not border_fill_mask(200, 100, 90.0, 48).any()


def test_border_fill_mask_square_at_45_degrees_is_three_minus_two_root_two():
    mask = border_fill_mask(64, 64, 45.0, 400)
    expected = 4 * 0.5 * (1 - 1 / math.sqrt(2)) ** 2  # four corner triangles, legs (1 − 1/√2) · side
    assert expected == pytest.approx(3 - 2 * math.sqrt(2))
    assert mask.mean() == pytest.approx(expected, abs=0.004)
    # the fill sits in the four corners, none at the centre or the middle of an edge
    assert mask[0, 0] and mask[0, -1] and mask[-1, 0] and mask[-1, -1]
    assert not mask[200, 200] and not mask[0, 200] and not mask[200, 0]
    assert np.array_equal(mask, mask[::-1]) and np.array_equal(mask, mask[:, ::-1])


@pytest.mark.parametrize("angle", [10.0, 30.0, 60.0, 100.0, -30.0])
def test_border_fill_mask_square_area_matches_the_closed_form(angle):
    mask = border_fill_mask(50, 50, angle, 300)
    assert mask.mean() == pytest.approx(square_fill_fraction(angle), abs=0.005)


def test_border_fill_mask_only_the_ratio_matters_and_bad_sizes_raise():
    assert np.array_equal(border_fill_mask(40, 30, 25.0, 32), border_fill_mask(400, 300, 25.0, 32))
    for args in ((0, 10, 30.0, 8), (10, -1, 30.0, 8), (10, 10, 30.0, 0)):
        with pytest.raises(ValueError):
            border_fill_mask(*args)


@pytest.mark.parametrize("width, height, angle", [
    (32, 32, 30.0), (32, 32, 45.0), (48, 32, 30.0), (32, 48, 30.0), (48, 32, -20.0), (32, 32, 200.0),
])
def test_border_fill_mask_agrees_with_the_alpha_of_rotate_image(width, height, angle):
    """The fill is where rotate_image(border="alpha_mask") leaves alpha 0, in the centred square."""
    image = torch.full((3, height, width), 128, dtype=torch.uint8)
    rotated = rotation.rotate_image(image, angle, border="alpha_mask")
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    alpha = rotated[3, top:top + side, left:left + side].numpy()
    mask = border_fill_mask(width, height, angle, side)
    assert mask.shape == alpha.shape
    # pixel centres undone into the unrotated photo: how far inside (>0) or outside (<0) it
    centres = np.arange(side) + 0.5 - side / 2
    u, v = np.meshgrid(centres, centres)
    theta = math.radians(angle)
    x = u * math.cos(theta) - v * math.sin(theta)
    y = u * math.sin(theta) + v * math.cos(theta)
    inside_by = np.minimum(width / 2 - np.abs(x), height / 2 - np.abs(y))
    boundary = np.abs(inside_by) < 1.0
    clear = ~boundary
    assert np.array_equal(mask[clear], alpha[clear] == 0)
    assert mask.any() and (~mask).any()
    assert boundary.mean() < 0.25, "the boundary band is only a thin share"
    # and the other direction of rotation disagrees (so the test does see the direction)
    mirrored = border_fill_mask(width, height, -angle, side)
    if not np.array_equal(mirrored, mask):
        assert not np.array_equal(mirrored[clear], alpha[clear] == 0)


# =========================================================================== cam_mass_share

def test_cam_mass_share_of_a_uniform_map_is_the_mask_area():
    mask = border_fill_mask(10, 10, 45.0, 64)
    uniform = np.full((64, 64), 0.3)
    share = cam_mass_share(uniform, mask)
    assert isinstance(share, float)
    assert share == pytest.approx(mask.mean())
    assert share == pytest.approx(3 - 2 * math.sqrt(2), abs=0.02)


def test_cam_mass_share_hand_worked_and_batched():
    cams = np.array([[[1.0, 3.0], [0.0, 4.0]],
                     [[2.0, 2.0], [2.0, 2.0]],
                     [[0.0, 0.0], [0.0, 0.0]]])
    shared = np.array([[True, False], [False, True]])
    share = cam_mass_share(cams, shared)
    assert share.shape == (3,)
    assert share[0] == pytest.approx(5 / 8)
    assert share[1] == pytest.approx(0.5)
    assert np.isnan(share[2]), "a map without mass has no share"
    per_map = np.array([shared, ~shared, shared])
    share = cam_mass_share(cams, per_map)
    assert share[0] == pytest.approx(5 / 8) and share[1] == pytest.approx(0.5) and np.isnan(share[2])
    assert cam_mass_share(cams[0] * 1000, shared) == pytest.approx(5 / 8), "scale does not matter"
    inside_only = np.where(shared, 1.0, 0.0)
    assert cam_mass_share(inside_only, shared) == pytest.approx(1.0)
    assert cam_mass_share(inside_only, ~shared) == pytest.approx(0.0)


def test_cam_mass_share_rejects_negative_maps_and_bad_shapes():
    mask = np.zeros((4, 4), dtype=bool)
    with pytest.raises(ValueError):
        cam_mass_share(np.full((4, 4), -0.1), mask)
    cams = np.ones((2, 4, 4))
    cams[1, 0, 0] = -1e-3
    with pytest.raises(ValueError):
        cam_mass_share(cams, mask)
    with pytest.raises(ValueError):
        cam_mass_share(np.ones((2, 4, 4)), np.zeros((3, 3), dtype=bool))
    with pytest.raises(ValueError):
        cam_mass_share(np.ones((2, 4, 4)), np.zeros((3, 4, 4), dtype=bool))
    with pytest.raises(ValueError):
        cam_mass_share(np.ones(16), np.zeros(16, dtype=bool))


# =========================================================================== gradcam_for_loader

@pytest.fixture(scope="module")
def tiny_setup():
    pytest.importorskip("pytorch_grad_cam")
    import torchvision

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=2).eval()
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(4, 3, 32, 32, generator=g)
    images = (pixels - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    true_deg = torch.tensor([10.0, 100.0, 200.0, 350.0])
    targets = angles.encode_angle_deg(true_deg)
    loader = DataLoader(TensorDataset(images, targets, true_deg), batch_size=3, shuffle=False)
    yield model, images, true_deg, loader
    torch.set_num_threads(threads)


def test_gradcam_for_loader_shapes_predictions_and_errors(tiny_setup):
    model, images, true_deg, loader = tiny_setup
    result = gradcam_for_loader(model, loader)
    assert set(result) >= {"cams", "predicted_deg", "true_deg", "error_deg"}
    assert result["cams"].shape == (4, 32, 32)
    assert np.all(np.isfinite(result["cams"]))
    assert result["cams"].min() >= 0.0 and result["cams"].max() <= 1.0 + 1e-6
    with torch.no_grad():
        out = model(images).numpy().astype(np.float64)
    expected_pred = np.degrees(np.arctan2(out[:, 1], out[:, 0])) % 360.0
    assert np.allclose(independent_circular_error(result["predicted_deg"], expected_pred), 0.0, atol=1e-3)
    assert np.array_equal(result["true_deg"], true_deg.numpy().astype(np.float64))
    assert result["true_deg"].dtype == np.float64 and result["predicted_deg"].dtype == np.float64
    assert np.allclose(result["error_deg"],
                       independent_circular_error(result["predicted_deg"], result["true_deg"]))
    assert not model.training


def test_gradcam_for_loader_matches_compute_gradcam_across_batches(tiny_setup):
    model, images, true_deg, loader = tiny_setup
    layer = model.layer2[-1]  # 4×4 at 32 px: maps with structure (layer4 is 1×1 here)
    predicted = gradcam_for_loader(model, loader, target="predicted", target_layer=layer)
    true = gradcam_for_loader(model, loader, target="true", target_layer=layer)
    own_maps, own_pred = compute_gradcam(model, images, None, layer)
    true_maps, _ = compute_gradcam(model, images, true_deg.numpy(), layer)
    assert np.allclose(predicted["cams"], own_maps, atol=1e-4)
    assert np.allclose(true["cams"], true_maps, atol=1e-4)
    assert np.allclose(predicted["predicted_deg"], own_pred, atol=1e-3)
    assert np.allclose(true["predicted_deg"], own_pred, atol=1e-3), "the target changes maps, not answers"
    assert predicted["cams"].std() > 0.01
    assert not np.allclose(predicted["cams"], true["cams"], atol=1e-3), \
        "explaining the true angle is not explaining the predicted one"


def test_gradcam_for_loader_rejects_another_target(tiny_setup):
    model, _, _, loader = tiny_setup
    with pytest.raises(ValueError):
        gradcam_for_loader(model, loader, target="wrong")


# =========================================================================== plots

def normalised_batch(n, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.rand(n, 3, size, size, generator=g)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def screen_angle_ccw_from_up(ax, annotation) -> float:
    """Direction of an arrow on the screen (display y points up), degrees CCW from up."""
    tip = ax.transData.transform(annotation.xy)
    tail = ax.transData.transform(annotation.xyann)
    dx, dy = tip - tail
    return math.degrees(math.atan2(-dx, dy)) % 360.0


def test_plot_prediction_gallery_titles_and_arrows_point_up_in_the_photo():
    true_deg = [0.0, 90.0, 350.0]
    predicted_deg = [45.0, 270.0, 10.0]
    fig = plots.plot_prediction_gallery(normalised_batch(3, 24), true_deg, predicted_deg, ncols=2,
                                        title="Held-out photos")
    assert isinstance(fig, matplotlib.figure.Figure)
    assert fig._suptitle is not None and fig._suptitle.get_text().startswith("Held-out photos")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 3 and len(fig.axes) == 4
    assert [ax.get_title() for ax in shown] == ["true 0°, pred 45°\nerror 45°",
                                                "true 90°, pred 270°\nerror 180°",
                                                "true 350°, pred 10°\nerror 20°"]
    empty = [ax for ax in fig.axes if not ax.images]
    assert all(not ax.texts for ax in empty), "no arrows on the unused panel"
    fig.canvas.draw()  # apply the equal aspect before measuring directions on the screen
    for ax, t, p in zip(shown, true_deg, predicted_deg):
        arrows = [text for text in ax.texts if isinstance(text, matplotlib.text.Annotation)]
        assert len(arrows) == 2
        true_arrow, pred_arrow = arrows
        assert true_arrow.arrowprops["color"] == "limegreen" and true_arrow.arrowprops["linestyle"] == "-"
        assert pred_arrow.arrowprops["color"] == "darkorange" and pred_arrow.arrowprops["linestyle"] == "--"
        for arrow, expected in ((true_arrow, t), (pred_arrow, p)):
            got = screen_angle_ccw_from_up(ax, arrow)
            assert independent_circular_error(got, expected) < 0.5, (got, expected)
            assert np.allclose(arrow.xyann, (11.5, 11.5)), "arrows start at the image centre"
            x, y = arrow.xy
            assert -0.5 <= x <= 23.5 and -0.5 <= y <= 23.5, "arrows stay inside the image"


def test_plot_prediction_gallery_accepts_arrays_and_scalars():
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    fig = plots.plot_prediction_gallery([image], 120.0, 300.0, ncols=1)
    ax = [a for a in fig.axes if a.images][0]
    assert ax.get_title() == "true 120°, pred 300°\nerror 180°"
    fig.canvas.draw()
    arrows = [text for text in ax.texts if isinstance(text, matplotlib.text.Annotation)]
    assert [round(screen_angle_ccw_from_up(ax, a)) % 360 for a in arrows] == [120, 300]


def coverage_lines(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_plot_coverage_axes_in_percent_and_degrees_with_the_data():
    rng = np.random.default_rng(4)
    errors = rng.uniform(0, 90, 40)
    curve = coverage_curve(errors, -errors)
    baseline = coverage_curve(errors, rng.uniform(size=40))
    fig = plots.plot_coverage(curve, baseline, title="Abstain")
    ax = fig.axes[0]
    assert ax.get_title() == "Abstain"
    assert "%" in ax.get_xlabel() and "degrees" in ax.get_ylabel()
    assert ax.get_xlim() == (0.0, 100.0) and ax.get_ylim()[0] == 0.0
    lines = coverage_lines(ax)
    main = lines["most confident first"]
    assert np.allclose(main.get_xdata(), 100 * np.arange(1, 41) / 40)
    assert np.allclose(main.get_ydata(), np.cumsum(np.sort(errors)) / np.arange(1, 41))
    random_order = lines["random order"]
    assert random_order.get_linestyle() == "--"
    assert np.allclose(random_order.get_ydata(), baseline["mae_deg"])
    overall = lines["all samples"]
    assert overall.get_linestyle() == ":"
    assert np.allclose(overall.get_ydata(), errors.mean())
    assert ax.get_legend() is not None


def test_plot_coverage_without_baseline_has_a_default_title():
    curve = coverage_curve([5.0, 10.0, 60.0], [3.0, 2.0, 1.0])
    fig = plots.plot_coverage(curve)
    ax = fig.axes[0]
    assert ax.get_title() and "degrees" in ax.get_ylabel() and "%" in ax.get_xlabel()
    assert set(coverage_lines(ax)) == {"most confident first", "all samples"}
    assert np.allclose(coverage_lines(ax)["all samples"].get_ydata(), 25.0)


def test_plot_coverage_overall_line_is_the_mae_at_full_coverage_in_any_order():
    errors = np.array([1.0, 2.0, 3.0, 50.0])
    curve = coverage_curve(errors, -errors, coverages=[1.0, 0.5, 0.25])
    assert curve["mae_deg"][0] == pytest.approx(14.0)
    fig = plots.plot_coverage(curve)
    assert np.allclose(coverage_lines(fig.axes[0])["all samples"].get_ydata(), 14.0)
