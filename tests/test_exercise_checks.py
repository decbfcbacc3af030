"""Every exercise check of the notebooks passes a right answer and fails plausible wrong ones.

The check cells are run as the learner runs them, from the notebooks' own source, but without
executing the notebooks: each entry of ``CHECKS`` names a notebook, the id of its check cell, the
names the cell reads (made small and fast here: a few photos, a small FiftyOne dataset, training
summaries as a run writes them) and the answers to try. A right answer comes from the notebook's
own solution cell run in the same namespace (or, where that needs a whole training, from a
value); every wrong answer must raise AssertionError without showing the right answer.

A new check cell needs one ``Check``; ``test_every_check_cell_is_covered`` says which cells still
lack one.
"""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Callable

import matplotlib
import nbformat
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from rotation_utils import angles, exercises, headpose, heads, profiles, rotation  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = {path.name[:2]: path for path in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
#: The notebooks whose every check cell must have an entry below.
COVERED = ("01", "02", "03", "04", "05", "06", "07", "08", "09")


@cache
def notebook(number: str):
    return nbformat.read(NOTEBOOKS[number], as_version=4)


def cell(number: str, cell_id: str):
    found = [c for c in notebook(number).cells if c.get("id") == cell_id]
    assert found, f"notebook {number} has no cell {cell_id}"
    return found[0]


def check_cells(number: str) -> list[str]:
    """The ids of the check cells of a notebook: the code cell after each solution cell."""
    cells = [c for c in notebook(number).cells if c.cell_type == "code"]
    return [cells[i + 1].id for i, c in enumerate(cells[:-1]) if "solution" in c.metadata.get("tags", [])]


def run_source(source: str, namespace: dict) -> None:
    """Run a cell's source in ``namespace``, its printing and figures swallowed."""
    import matplotlib.pyplot as plt

    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(source, "<cell>", "exec"), namespace)  # noqa: S102 - the notebooks' own cells
    plt.close("all")


@dataclass
class Check:
    notebook: str
    cell_id: str
    wrong: list  # dicts of answer variables, each of which the check must refuse
    right: dict | None = None  # None: the solution cell before the check computes it
    context: Callable[[], dict] = dict  # the names the cells read, besides the imports
    cells: tuple = ()  # cells of the notebook to run first (definitions the solution uses)
    ids: list = field(default_factory=list)

    def namespace(self) -> dict:
        import matplotlib.pyplot as plt

        names = {"np": np, "torch": torch, "plt": plt, "angles": angles, "exercises": exercises,
                 "headpose": headpose, "heads": heads, "rotation": rotation}
        names.update(self.context())
        for cell_id in self.cells:
            run_source(cell(self.notebook, cell_id).source, names)
        return names

    def solution_id(self) -> str:
        cells = [c for c in notebook(self.notebook).cells if c.cell_type == "code"]
        index = [c.id for c in cells].index(self.cell_id)
        assert "solution" in cells[index - 1].metadata.get("tags", []), f"{self.cell_id}: no solution cell before it"
        return cells[index - 1].id


# --------------------------------------------------------------------------- contexts

@cache
def digit_splits():
    """Notebook 02's rotated threes, small: scikit-learn's digits, two copies each."""
    from rotation_utils import digits

    saved = os.environ.pop(digits.MNIST_ENV, None)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            threes = digits.load_digit_images(digits=(3,))
    finally:
        if saved is not None:
            os.environ[digits.MNIST_ENV] = saved
    return digits.make_rotated_splits(threes.images, val_fraction=0.2, seed=0, copies_train=2, copies_val=2)


def digits_context() -> dict:
    from rotation_utils import digits

    train_set, val_set = digit_splits()
    return {"digits": digits, "train_set": train_set, "val_set": val_set, "true_deg": val_set.angles_deg.numpy(),
            "SGD_SETTINGS": dict(optimizer="sgd", lr=0.3, momentum=0.9, epochs=6, batch_size=64, seed=0)}


def digits_predictions(head: str, loss: str) -> np.ndarray:
    context = digits_context()
    network = context["digits"].RotationCNN(head=head, seed=0)
    context["digits"].train_rotation_cnn(network, context["train_set"], loss=loss, progress=False,
                                         **context["SGD_SETTINGS"])
    return context["digits"].predict_angles_deg(network, context["val_set"])


@cache
def small_photos(folder: str) -> list[Path]:
    """Eight small photos with a clear up (sky above, ground below), written once per session."""
    from PIL import Image

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(8):
        image = np.zeros((48, 64, 3), np.uint8)
        image[:24] = (90 + 10 * i, 150, 230)
        image[24:] = (60, 120 + 10 * i, 40)
        paths.append(out / f"photo{i}.png")
        Image.fromarray(image).save(paths[-1])
    return paths


@cache
def course_dataset(folder: str):
    """A small FiftyOne dataset of notebook 03's kind: 8 photos × 6 angles, 3 photos for validation."""
    from rotation_utils import datasets

    with contextlib.redirect_stdout(io.StringIO()):
        dataset = datasets.build_rotated_dataset("exercise-checks-course", small_photos(folder), rotations_per_photo=6,
                                                 border="crop", val_fraction=0.4, seed=SEED_03, progress=False)
    val_deg = np.array(dataset.match_tags("val").values("angle_deg"))
    upside_down = int(np.sum(angles.circular_absolute_error_deg(val_deg, 180.0) < 10))
    assert 0 < upside_down < len(val_deg) - 1, "choose another SEED_03: exercise 2 needs some upside-down samples"
    return dataset


#: The seed of the small dataset: its validation samples include upside-down ones (see course_dataset).
SEED_03 = 3


@pytest.fixture(scope="module")
def photos_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    yield str(folder)
    import fiftyone as fo

    for name in fo.list_datasets():
        if name.startswith("exercise-checks-"):
            fo.delete_dataset(name)


def fiftyone_context(folder: str) -> dict:
    from fiftyone import ViewField as F

    from rotation_utils import datasets

    class Source:  # notebook 03's photo source: only its paths are read
        paths = small_photos(folder)

    return {"dataset": course_dataset(folder), "F": F, "datasets": datasets, "source": Source}


def summaries(*maes: float) -> list[dict]:
    """Training summaries as training.fit returns them, one per seed, reduced to what is read."""
    return [{"val": {"mae_deg": mae}} for mae in maes]


def head_runs() -> list[dict]:
    """Notebook 07's ``runs``: five heads × two seeds; the turns help bins_expected most, while
    classification_360 is best in one pass."""
    one_pass = {"cos_sin_mse": 50.1, "angular": 50.3, "von_mises": 50.4, "classification_360": 45.9,
                "bins_expected": 50.7}
    gain = {"cos_sin_mse": 11.7, "angular": 12.0, "von_mises": 10.7, "classification_360": 10.7,
            "bins_expected": 13.0}
    return [{"head": name, "seed": seed, "one_pass": {"mae_deg": one_pass[name] + 0.2 * seed},
             "four_turns": {"mae_deg": one_pass[name] + 0.2 * seed - gain[name] + 0.3 * seed}}
            for name in heads.HEADS for seed in (0, 1)]


def the_right_function(a_deg, b_deg):
    d = np.abs(np.mod(np.asarray(a_deg, dtype=float) - np.asarray(b_deg, dtype=float), 360.0))
    return np.minimum(d, 360.0 - d)


def validation_context() -> dict:
    """Notebook 05's validation answers, made up: 12 photos × 3 rotations; photo 4 fails at every
    angle (the largest mean error), photo 7 has the single largest error; the longest output
    vectors go with the smallest errors."""
    from rotation_utils import evaluation

    rng = np.random.default_rng(5)
    photo_of_sample = [Path(f"/photos/p{i:02d}.jpg") for i in range(12) for _ in range(3)]
    error_deg = rng.uniform(1, 30, size=36)
    error_deg[12:15] = (120.0, 130.0, 110.0)
    error_deg[21] = 175.0
    vector_norm = 1.0 / (1.0 + error_deg / 20.0) + rng.normal(0, 0.2, size=36)
    result = {"error_deg": error_deg, "vector_norm": vector_norm}
    return {"evaluation": evaluation, "result": result, "photo_of_sample": photo_of_sample,
            "summary": {"mae_deg": float(error_deg.mean())}, "photo_name": lambda path: Path(path).name}


def border_context() -> dict:
    """Notebook 06's paired errors of the reflect-trained model, with ties between the inputs."""
    rng = np.random.default_rng(6)
    on_crop = rng.uniform(0, 90, size=40).round()
    on_reflect = np.where(np.arange(40) % 5 == 0, on_crop, on_crop + rng.normal(-3, 10, size=40).round())
    return {"found": {("reflect", "reflect"): {"error_deg": np.abs(on_reflect)},
                      ("reflect", "crop"): {"error_deg": on_crop}}}


def confidence_context(reachable: bool = True) -> dict:
    """Notebook 09's four-turn answers: confidences and errors of 30 photos. Unreachable: even the
    most confident photo is off by more than 20°."""
    rng = np.random.default_rng(9)
    confidence = rng.uniform(0, 1, size=30)
    error_deg = 70 * (1 - confidence) + rng.uniform(0, 10, size=30) + (0 if reachable else 25)
    return {"found": {"four turns (--tta)": {"confidence": confidence, "error_deg": error_deg}}}


def tta_threshold(ns: dict, pick: str) -> float:
    f = ns["found"]["four turns (--tta)"]
    return float({"largest": np.max, "smallest": np.min}[pick](f["confidence"]))


# --------------------------------------------------------------------------- the checks

CHECKS = [
    # 01: angles on a circle
    Check("01", "90dc1128", wrong=[
        {"my_circular_error_deg": lambda a, b: np.abs(np.asarray(a) - np.asarray(b))},  # the naive error
        {"my_circular_error_deg": lambda a, b: np.minimum(np.abs(np.subtract(a, b)), 360 - np.abs(np.subtract(a, b)))},
    ], right={"my_circular_error_deg": the_right_function}),
    Check("01", "692cd7fc", wrong=[{"mean_heading_deg": 135.0}, {"mean_heading_deg": None},
                                   {"mean_heading_deg": -345.0}, {"mean_heading_deg": 15.5}]),
    Check("01", "4bd76966", right={"worst_bin_centre_deg": 175.0},  # the stored run's answer
          wrong=[{"worst_bin_centre_deg": 5.0}, {"worst_bin_centre_deg": 355.0}, {"worst_bin_centre_deg": 95.0}]),
    Check("01", "da0aefc9", cells=("e436f80d",), wrong=[
        {"worst_rounding_10_deg": 10.0, "worst_rounding_3_deg": 3.0},
        {"worst_rounding_10_deg": 2.5, "worst_rounding_3_deg": 0.75},
        {"worst_rounding_10_deg": 1.5, "worst_rounding_3_deg": 5.0}]),
    # 02: when angle regression goes wrong
    Check("02", "63b096bf", wrong=[{"saturated_angles_deg": [45.0, 135.0, 225.0, 315.0]},
                                   {"saturated_angles_deg": [0.0, 45.0, 90.0, 135.0, 180.0, 225.0, 270.0, 315.0, 360.0]},
                                   {"saturated_angles_deg": [315.0, 270.0, 225.0, 180.0, 135.0, 90.0, 45.0, 0.0]}]),
    Check("02", "09ac14cd", wrong=[{"corner_mae_deg": 45.0}, {"corner_mae_deg": 11.25}, {"corner_mae_deg": 90.0}]),
    Check("02", "1004b0be", context=digits_context, wrong=[
        {"pred_tanh_mse_deg": lambda ns: ns["val_set"].angles_deg.numpy()},  # the true angles
        {"pred_tanh_mse_deg": lambda ns: digits_predictions("tanh", "cosine_proximity")},  # the broken network
        {"pred_tanh_mse_deg": lambda ns: digits_predictions("linear", "cosine_proximity")},  # fix A
        {"pred_tanh_mse_deg": lambda ns: np.random.default_rng(0).uniform(0, 360, len(ns["val_set"]))},
        {"pred_tanh_mse_deg": lambda ns: digits_predictions("tanh", "mse")[:-1]},  # one short
    ]),
    # 03: building a rotated dataset
    Check("03", "38060622", wrong=[{"kept_square_30": 0.5}, {"kept_square_30": 53.6}, {"kept_square_30": 0.433}]),
    Check("03", "9bf6c68c", context="fiftyone", wrong=[
        {"upside_down": lambda ns: ns["dataset"].match_tags("val").limit(
            int(np.sum(angles.circular_absolute_error_deg(np.array(ns["dataset"].match_tags("val").values("angle_deg")), 180.0) < 10)))},
        {"upside_down": lambda ns: ns["dataset"].match((ns["F"]("angle_deg") > 170) & (ns["F"]("angle_deg") < 190))},
        {"upside_down": lambda ns: ns["dataset"].match_tags("val").match(ns["F"]("angle_deg") < 10)},
        {"upside_down": None},
    ]),
    Check("03", "4b79a61e", context="fiftyone", wrong=[
        {"reflect_dataset": lambda ns: ns["datasets"].build_rotated_dataset(
            "exercise-checks-other-photos", ns["source"].paths[1:6], rotations_per_photo=2, border="reflect",
            val_fraction=0.4, progress=False)},
        {"reflect_dataset": lambda ns: ns["datasets"].build_rotated_dataset(
            "exercise-checks-crop", ns["source"].paths[:5], rotations_per_photo=2, border="crop",
            val_fraction=0.4, progress=False)},
        {"reflect_dataset": lambda ns: ns["dataset"]},  # the course's own dataset
        {"reflect_dataset": None},
    ]),
    # 04: training a rotation regressor
    Check("04", "53c93d12", context=lambda: {"val_loader": [
        (None, angles.encode_angle_deg(torch.tensor([0.0, 33.0, 250.0])), None),
        (None, angles.encode_angle_deg(torch.tensor([90.0, 181.0])), None)]},
        wrong=[{"zero_output_loss": 1.0}, {"zero_output_loss": 0.25}, {"zero_output_loss": None}]),
    Check("04", "e9538d91", context=lambda: {"experiments": {
        "ImageNet, frozen (head only)": summaries(76.2, 78.3), "ImageNet, all layers": summaries(70.4, 72.0)}},
        wrong=[{"frozen_cost_deg": -6.05, "frozen_cost_is_firm": True},  # the wrong way round
               {"frozen_cost_deg": 5.8, "frozen_cost_is_firm": True},  # seed 0 only
               {"frozen_cost_deg": 6.05, "frozen_cost_is_firm": False},
               {"frozen_cost_deg": 6.05, "frozen_cost_is_firm": "yes"},
               {"frozen_cost_deg": None, "frozen_cost_is_firm": None}]),
    Check("04", "e9538d91", context=lambda: {"experiments": {  # a difference within the noise
        "ImageNet, frozen (head only)": summaries(74.0, 79.0), "ImageNet, all layers": summaries(72.5, 75.5)}},
        wrong=[{"frozen_cost_deg": 2.5, "frozen_cost_is_firm": True}]),
    Check("04", "ex3chec1", context=lambda: {"PROFILE": profiles.get_profile("quick"), "train_loader": range(88)},
          wrong=[{"ema_steps_1pct": 458}, {"ema_steps_1pct": 69}, {"ema_steps_1pct": 100}, {"ema_steps_1pct": None}]),
    # 05: measuring circular error
    Check("05", "02fe7517", wrong=[{"exercise_summary": None},
                                   {"exercise_summary": angles.summarize_errors(np.array([2.0] * 100))},
                                   {"exercise_summary": angles.summarize_errors(np.array([2.0] * 95 + [178.0] * 5))},
                                   {"exercise_summary": angles.summarize_errors(np.array([2.0] * 95 + [180.0] * 4))}]),
    Check("05", "885e09e5", context=validation_context, wrong=[
        {"mae_at_90": None},
        {"mae_at_90": lambda ns: float(ns["result"]["error_deg"].mean())},  # every sample
        {"mae_at_90": lambda ns: float(np.sort(ns["result"]["error_deg"])[:33].mean())},  # the smallest errors
        {"mae_at_90": lambda ns: float(ns["result"]["error_deg"][np.argsort(ns["result"]["vector_norm"])[:33]].mean())},
    ]),
    Check("05", "2954a90d", context=validation_context, wrong=[
        {"hardest_photo": None, "hardest_mae": None},
        {"hardest_photo": Path("/photos/p07.jpg"), "hardest_mae": lambda ns: float(ns["result"]["error_deg"][21:24].mean())},
        {"hardest_photo": Path("/photos/p04.jpg"), "hardest_mae": 130.0},  # its largest error, not the mean
        {"hardest_photo": Path("/elsewhere/p04.jpg"), "hardest_mae": 120.0},
    ]),
    # 06: what the network looks at
    Check("06", "f0d18ee8", context=lambda: {"gradcam": __import__("rotation_utils.gradcam").gradcam},
          wrong=[{"uniform_share": None}, {"uniform_share": 0.5}, {"uniform_share": 0.25},
                 {"uniform_share": lambda ns: float(ns["gradcam"].border_fill_mask(100, 100, 30.0, 64).mean())}]),
    Check("06", "40f0ba2e", context=lambda: {"gradcam": __import__("rotation_utils.gradcam").gradcam},
          wrong=[{"most_fill_deg": None}, {"most_fill_deg": 0}, {"most_fill_deg": 30}, {"most_fill_deg": 360}]),
    Check("06", "3986b697", context=border_context, wrong=[
        {"share_reflect_better": None},
        {"share_reflect_better": lambda ns: float(np.mean(ns["found"]["reflect", "reflect"]["error_deg"]
                                                          <= ns["found"]["reflect", "crop"]["error_deg"]))},  # ties
        {"share_reflect_better": lambda ns: float(np.mean(ns["found"]["reflect", "crop"]["error_deg"]
                                                          < ns["found"]["reflect", "reflect"]["error_deg"]))},
        {"share_reflect_better": 0.5}, {"share_reflect_better": 45.0},
    ]),
    # 09: straightening real photos
    Check("09", "a742a9d5", wrong=[{"correction_deg": None}, {"correction_deg": 350.0}, {"correction_deg": -10.0},
                                   {"correction_deg": -350.0}]),
    Check("09", "2696e6ca", wrong=[{"area_left": None}, {"area_left": 1.0}, {"area_left": float(np.cos(np.radians(10)))},
                                   {"area_left": 0.5}]),
    Check("09", "705c1138", context=confidence_context, wrong=[
        {"min_confidence": None},  # there is one in this run
        {"min_confidence": lambda ns: tta_threshold(ns, "largest")},  # keeps a low MAE, but not the smallest
        {"min_confidence": lambda ns: tta_threshold(ns, "smallest")},  # keeps everything
        {"min_confidence": 2.0},  # keeps nothing
    ]),
    Check("09", "705c1138", context=lambda: confidence_context(reachable=False),
          right={"min_confidence": None},
          wrong=[{"min_confidence": lambda ns: tta_threshold(ns, "largest")}, {"min_confidence": 0.5}]),
    # 07: classification or regression
    Check("07", "11b2fb16", wrong=[{"circular_expected_deg": 214.0}, {"circular_expected_deg": 350.0},
                                   {"circular_expected_deg": 2.0}, {"circular_expected_deg": -2.0}]),
    Check("07", "6294b94d", wrong=[{"kappa_for_10_deg": 33.0}, {"kappa_for_10_deg": 10.0},
                                   {"kappa_for_10_deg": 0.1}, {"kappa_for_10_deg": None}]),
    Check("07", "742d655f", context=lambda: {"runs": head_runs()},
          wrong=[{"most_helped_head": "classification_360"}, {"most_helped_head": "von_mises"},
                 {"most_helped_head": "bins"}, {"most_helped_head": None}]),
    # 08: head pose (the exercises need no data)
    Check("08", "7914735d", wrong=[{"mirrored_deg": [24.0, -8.5, 12.0]}, {"mirrored_deg": [-24.0, 8.5, -12.0]},
                                   {"mirrored_deg": [-24.0, -8.5, 12.0]}, {"mirrored_deg": [24.0, -8.5]}]),
    Check("08", "d16fdf12", wrong=[{"turned_yaw_deg": 60.0}, {"turned_yaw_deg": 30.0}, {"turned_yaw_deg": None}]),
    Check("08", "402fed17", cells=("p1face01", "p1conv02", "p3pnp001"),
          wrong=[{"pitch_mae_2000": lambda ns: ns["pnp_errors"](ns["face"], 1.0, focal_px=1800)["pitch_mae_deg"]},
                 {"pitch_mae_2000": lambda ns: ns["pnp_errors"](ns["face"], 1.0, focal_px=2000)["yaw_mae_deg"]},
                 {"pitch_mae_2000": lambda ns: ns["pnp_errors"](ns["face"], 1.0)["pitch_mae_deg"]}]),
]


def _ids(check: Check) -> str:
    return f"{check.notebook}-{check.cell_id}"


def _namespace(check: Check, photos_folder: str) -> dict:
    if check.context == "fiftyone":
        return Check(check.notebook, check.cell_id, [], context=lambda: fiftyone_context(photos_folder),
                     cells=check.cells).namespace()
    return check.namespace()


def _assign(answer: dict, namespace: dict) -> dict:
    return {name: value(namespace) if callable(value) and not name.startswith("my_") else value
            for name, value in answer.items()}


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """The digits network trains many times faster on one thread of a small shared CPU."""
    yield


@pytest.mark.parametrize("check", CHECKS, ids=_ids)
def test_the_right_answer_passes(check, request):
    namespace = _namespace(check, request.getfixturevalue("photos_folder") if check.context == "fiftyone" else "")
    if check.right is None:
        run_source(cell(check.notebook, check.solution_id()).source, namespace)
    else:
        namespace.update(_assign(check.right, namespace))
    run_source(cell(check.notebook, check.cell_id).source, namespace)


@pytest.mark.parametrize("check", CHECKS, ids=_ids)
def test_wrong_answers_fail_without_showing_the_right_one(check, request):
    namespace = _namespace(check, request.getfixturevalue("photos_folder") if check.context == "fiftyone" else "")
    source = cell(check.notebook, check.cell_id).source
    assert len(check.wrong) >= 1
    for wrong in check.wrong:
        trial = dict(namespace)
        trial.update(_assign(wrong, trial))
        with pytest.raises(AssertionError) as info:
            run_source(source, trial)
        message = str(info.value)
        assert "Traceback" not in message
        if check.right is not None:  # the right value, as a check would print it, is not in the message
            for value in check.right.values():
                if isinstance(value, float):
                    assert f"{value:.1f}" not in message and f"{value:.2f}" not in message


@pytest.mark.parametrize("number", COVERED)
def test_every_check_cell_is_covered(number):
    covered = {check.cell_id for check in CHECKS if check.notebook == number}
    missing = [cell_id for cell_id in check_cells(number) if cell_id not in covered]
    assert not missing, f"notebook {number}: check cells without an entry in CHECKS: {missing}"
    assert check_cells(number), f"notebook {number} has no exercise"


@pytest.mark.parametrize("number", COVERED)
def test_check_cells_do_not_print_the_answer_of_a_digest(number):
    """A check cell holds a digest or calls a check function; it never computes the answer in
    its own source with the functions the exercise asks for."""
    for cell_id in check_cells(number):
        source = cell(number, cell_id).source
        assert "exercises." in source or "assert" in source, f"{number} {cell_id}: no check"
        assert "mean_gain" not in source and "expected =" not in source, f"{number} {cell_id} computes the answer"
