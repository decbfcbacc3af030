"""The shipped model in reference/ loads safely, is what its README says, and reads "up"."""
import json
from pathlib import Path

import pytest

from rotation_utils import datasets, evaluation, models, reference, sources


def test_the_shipped_checkpoint_is_small_half_precision_and_loads():
    path = reference.reference_checkpoint()
    assert path is not None, "reference/efficientnet_lite0_laptop.pt is part of the repository"
    assert path.stat().st_size < 10e6
    model, metadata = models.load_checkpoint(path, verbose=False)
    assert metadata["precision"] == "float16" and metadata["backbone"] == "efficientnet_lite0"
    assert metadata["profile"]["name"] == "laptop" and metadata["image_size"] == 160
    assert all(p.dtype.is_floating_point and p.dtype.itemsize == 4 for p in model.parameters())
    figures = reference.reference_figures()
    summary = json.loads((reference.REFERENCE_DIR / "training_summary.json").read_text())
    assert figures["one_pass"]["n"] == 6 * figures["photos"] == 6 * summary["n_val_photos"]
    assert len(reference.trained_on()) == summary["n_train_photos"]


def test_the_shipped_model_reads_up_on_photos_it_never_saw(shared_photos, tmp_path):
    figures = reference.reference_figures()
    folders = [shared_photos / name for name in figures["trained_on_collections"]]
    photos = sources.resolve_photos(folders, max_photos=None, verbose=False).paths
    summary = json.loads((reference.REFERENCE_DIR / "training_summary.json").read_text())
    train, held_out = datasets.split_photos(photos, summary["profile"]["val_fraction"], summary["split_seed"])
    assert reference.unseen_by_reference(held_out[::10]) == held_out[::10]
    assert reference.unseen_by_reference(train[::100]) == []
    folder = evaluation.link_photos(held_out[::8], tmp_path / "unseen")
    result = evaluation.evaluate_folder(reference.reference_checkpoint(), folder, device="cpu")
    assert result["n"] == 6 * len(held_out[::8])
    assert result["mae_deg"] < 60.0, result  # guessing: 90°; reference/README.md gives the figure on all of them


def test_the_shipped_model_never_trained_on_its_out_of_collection_photos(shared_photos, tmp_path):
    """The collections held_out.json calls out of collection hold no training photo, and the
    shipped model reads "up" on them too (a sample of them, 6 rotations each)."""
    figures = reference.reference_figures()
    left_out = figures["out_of_collection"]
    assert not set(left_out["collections"]) & set(figures["trained_on_collections"])
    every_photo = sources.resolve_photos(shared_photos, max_photos=None, verbose=False).paths
    never_seen = reference.out_of_collection(every_photo)
    root = Path(shared_photos).resolve()
    assert {Path(p).resolve().relative_to(root).parts[0] for p in never_seen} == set(left_out["collections"])
    assert len(never_seen) == left_out["photos"]
    folder = evaluation.link_photos(never_seen[::25], tmp_path / "unseen")
    result = evaluation.evaluate_folder(reference.reference_checkpoint(), folder, device="cpu")
    assert result["n"] == 6 * len(never_seen[::25])
    assert result["mae_deg"] < 65.0, result  # guessing: 90°


def test_out_of_collection_keeps_only_collections_without_a_training_photo(tmp_path):
    import numpy as np
    from PIL import Image

    photos = {}
    for collection in ("seen", "unseen"):
        (tmp_path / "photos" / collection).mkdir(parents=True)
        for i in range(3):
            path = tmp_path / "photos" / collection / f"{i}.png"
            Image.fromarray(np.full((8, 8, 3), 40 * i + (100 if collection == "unseen" else 0), np.uint8)).save(path)
            photos.setdefault(collection, []).append(path)
    folder = tmp_path / "shipped"
    folder.mkdir()
    (folder / "trained_on.txt").write_text("# digests\n" + reference.photo_digest(photos["seen"][0]) + "\n")
    everything = photos["seen"] + photos["unseen"]
    assert reference.out_of_collection(everything, folder) == photos["unseen"]
    assert reference.unseen_by_reference(everything, folder) == everything[1:]  # held-out photos of "seen" too
    assert reference.out_of_collection([], folder) == []


def test_quarter_turn_posterior_figure():
    import numpy as np

    from rotation_utils import plots, upright

    turned_back = np.array([[0.0, 0.9], [0.1, 0.8], [0.0, 1.0], [-0.1, 0.7]])
    posterior = upright.quarter_turn_posterior(turned_back)
    fig = plots.plot_quarter_turn_posterior(np.zeros((20, 30, 3), np.uint8), turned_back, upright.QUARTER_PRIOR,
                                            posterior)
    assert posterior.argmax() == 1 and len(fig.axes) == 3
    assert fig.axes[2].get_ylabel() == "probability" and "degrees" in fig.axes[2].get_xlabel()
    with pytest.raises(ValueError):
        plots.plot_quarter_turn_posterior(np.zeros((4, 4, 3)), turned_back[:2], upright.QUARTER_PRIOR, posterior)
