"""The yardstick in ``benchmarks/naive_baseline.py`` keeps its promise: crops with no border
pixels, in the course's angle convention (counter-clockwise)."""
import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "naive_baseline.py"


@pytest.fixture(scope="module")
def naive():
    spec = importlib.util.spec_from_file_location("naive_baseline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("angle_deg", [0.0, 17.0, 45.0, 90.0, 133.0, 200.0, 315.0, 359.5])
def test_rotated_square_has_no_border_pixels(naive, angle_deg):
    white = torch.full((3, 120, 180), 255, dtype=torch.uint8)
    square = naive.rotated_square(white, angle_deg, 64) * naive.STD + naive.MEAN
    assert square.shape == (3, 64, 64)
    # A fill pixel would be black (0); bilinear blending along the edge costs at most a few %.
    assert float(square.min()) > 0.9


def test_rotated_square_turns_counter_clockwise(naive):
    photo = torch.zeros((3, 90, 90), dtype=torch.uint8)
    photo[:, :20, 35:55] = 255  # a bright patch at the top centre
    square = naive.rotated_square(photo, 90.0, 45) * naive.STD + naive.MEAN
    left, right = square[:, :, :10].mean(), square[:, :, -10:].mean()
    assert left > 0.15 and right < 0.02  # turned counter-clockwise, the top goes to the left


def test_missing_photos_folder_is_a_clear_error(naive, tmp_path, capsys):
    with pytest.raises(SystemExit):
        naive.main(["--photos", str(tmp_path / "nope"), "--budget-s", "1"])
    assert "no such folder" in capsys.readouterr().err


def test_heads_benchmark_counts_mix_ups_and_averages_over_seeds():
    spec = importlib.util.spec_from_file_location("heads_bench", SCRIPT.parent / "heads.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import numpy as np
    from rotation_utils import evaluation
    shares = evaluation.turn_mix_ups(np.array([1.0, 85.0, 95.0, 175.0, 179.0, 120.0, 100.0, 171.0]))
    assert shares == {"quarter_turn": 3 / 8, "upside_down": 3 / 8}
    score = {"mae_deg": 10.0, "median_deg": 5.0, "p90_deg": 30.0, "within_5": 0.5, "within_10": 0.6,
             "within_15": 0.7, "quarter_turn": 0.1, "upside_down": 0.05}
    rows = [{"head": "von_mises", "train_seconds": 10.0, "one_pass": {**score, "mae_deg": m}} for m in (10.0, 14.0)]
    line = evaluation.head_comparison_table(rows, "one_pass").splitlines()[1]
    assert line.split()[:4] == ["von_mises", "2", "12.0°", "4.0°"]  # the mean and the spread of the MAE
