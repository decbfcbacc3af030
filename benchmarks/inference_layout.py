"""Evaluation on a CPU in the default (NCHW) layout against channels-last, side by side.

The course evaluates a saved model over and over (notebooks 05–07, ``rotation-course
evaluate``, ``straighten``). :func:`rotation_utils.precision.for_inference` puts the model and
its inputs in the channels-last memory format on a CPU. This script scores the same model on the
same validation loader (real photos, the course's protocol: seeded rotations, ``crop`` border)
twice in one process, the baseline (the loop as it was: the model and its inputs as they come)
and the candidate (:func:`rotation_utils.evaluation.predict`), one pass and with the four
turns, alternating the order, and prints both times, their ratio and the largest difference of
the predicted angles.

    python benchmarks/inference_layout.py --photos ../shared/data/photos --max-photos 120
"""
from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from rotation_utils import angles, evaluation, models, profiles, reference, sources
from rotation_utils.loaders import validation_loader


@torch.no_grad()
def baseline_predict(model, loader, tta: bool) -> np.ndarray:
    """The loop of ``evaluation.predict`` before channels-last: predicted angles, degrees."""
    model = model.eval()
    outputs = []
    for images, _, _ in loader:
        out = evaluation.turn_average(model, images) if tta else model(images)
        outputs.append(out.float())
    return angles.decode_angle_deg(torch.cat(outputs).numpy().astype(np.float64))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", required=True, help="a folder of photos (searched recursively)")
    parser.add_argument("--max-photos", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each, alternating")
    args = parser.parse_args()
    checkpoint = reference.reference_checkpoint()
    if checkpoint is None:
        raise SystemExit("the reference checkpoint (reference/) is not in this clone")
    model, metadata = models.load_checkpoint(checkpoint, verbose=False)
    model = model.float()
    photos = reference.unseen_by_reference(sources.find_images(args.photos))[: args.max_photos]
    profile = profiles.get_profile("quick")
    loader = validation_loader(photos, profile, image_size=metadata.get("image_size", profile.image_size))
    list(loader)  # fill the photo cache: both runs read the same decoded photos
    print(f"{len(loader.dataset)} inputs ({len(photos)} photos × {evaluation.VAL_ROTATIONS} rotations), "
          f"{metadata.get('backbone')} at {metadata.get('image_size')} px, {torch.get_num_threads()} threads")
    for tta in (False, True):
        times = {"baseline": [], "candidate": []}
        found = {}
        for repeat in range(args.repeats):
            order = ("baseline", "candidate") if repeat % 2 == 0 else ("candidate", "baseline")
            for name in order:
                fresh = copy.deepcopy(model)  # the candidate changes the layout in place
                start = time.perf_counter()
                if name == "baseline":
                    found[name] = baseline_predict(fresh, loader, tta)
                else:
                    found[name] = evaluation.predict(fresh, loader, device="cpu", tta=tta)["predicted_deg"]
                times[name].append(time.perf_counter() - start)
        base, cand = min(times["baseline"]), min(times["candidate"])
        gap = angles.circular_absolute_error_deg(found["baseline"], found["candidate"]).max()
        label = "four turns" if tta else "one pass"
        print(f"{label:>10}: baseline {base:6.1f} s   candidate (channels-last) {cand:6.1f} s   "
              f"ratio {base / cand:4.2f}×   largest angle difference {gap:.2e}°")


if __name__ == "__main__":
    main()
