"""The shipped model in reference/ loads safely, is what its README says, and reads "up"."""
import json

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
    photos = sources.resolve_photos(shared_photos, max_photos=None, verbose=False).paths
    summary = json.loads((reference.REFERENCE_DIR / "training_summary.json").read_text())
    train, held_out = datasets.split_photos(photos, summary["profile"]["val_fraction"], summary["split_seed"])
    assert reference.unseen_by_reference(held_out[::10]) == held_out[::10]
    assert reference.unseen_by_reference(train[::100]) == []
    folder = evaluation.link_photos(held_out[::8], tmp_path / "unseen")
    result = evaluation.evaluate_folder(reference.reference_checkpoint(), folder, device="cpu")
    assert result["n"] == 6 * len(held_out[::8])
    assert result["mae_deg"] < 60.0, result  # guessing: 90°; the README: 34.0° on all 314 photos
