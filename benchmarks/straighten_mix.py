"""Does `rotation-course straighten` do harm? A realistic mix of photos, straightened side by side.

From any folder of upright photos this builds a seeded mix as real photos come: 55% left
upright, 25% tilted uniformly within ±12°, 20% turned by a quarter or half turn (90°, 180° or
270°, counter-clockwise) plus a tilt within ±3° (each by ``rotation.rotate_image``, ``crop``
border, so no corner shows). The model reads every photo once (its four 90° turns, and the
photo's straight lines), then each setting of the command decides from the same evidence, and
the table prints, side by side:

- leave alone (the baseline), the old default (``--rule always``: correct every photo by its
  one-pass prediction), ``--rule always --tta``, ``--rule always --snap 90 --tta``;
- the safe default (``--rule safe``, the constants of ``rotation_utils.upright.SAFE_RULE``), its
  quarter turns alone (``--snap 90``), the lines alone, and, with ``--fit-on``, the safe rule
  fitted on other photos (``upright.fit_safe_rule``: never on the photos it is scored on).

Columns: mean error after (degrees, circular), after / alone, the share of upright photos
turned by more than 2° (harmed), the share of the other photos (tilted or turned) that end
within 5° of upright (fixed), and that share for the quarter-turned ones alone.

    python benchmarks/straighten_mix.py --photos ../shared/data/photos/bsds500 \\
        --fit-on ../shared/data/photos/sun80 --checkpoint runs/lolo/best.pt

Score on photos of collections the model never trained on: the shipped model (the default
checkpoint) trained on every collection of ``../shared/data/photos``. Writes one JSON file
(``--out``, default ``benchmarks/results/straighten_mix.json``).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from rotation_utils import config, models, reference, sources, upright
from rotation_utils.photo_mix import (MIN_PHOTOS, MIX, corrections, mix_angles, quarter_turn_reading,  # noqa: F401
                                      read_mix, score)

def _photos(folders, max_photos, seed) -> list[Path]:
    found = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise SystemExit(f"error: no such folder: {folder}")
        found += sorted(p for p in folder.rglob("*") if p.suffix.lower() in sources.IMAGE_EXTENSIONS)
    if max_photos and len(found) > max_photos:
        keep = np.sort(np.random.default_rng(seed).choice(len(found), max_photos, replace=False))
        found = [found[i] for i in keep]
    if len(found) < MIN_PHOTOS:
        raise SystemExit(f"error: a mix needs at least {MIN_PHOTOS} photos (so that each kind holds a few); "
                         f"{', '.join(map(str, folders))} has {len(found)}")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", action="append", required=True, metavar="DIR", help="photos to score on")
    parser.add_argument("--fit-on", action="append", metavar="DIR",
                        help="other photos to fit the safe rule on (never the scored ones)")
    parser.add_argument("--checkpoint", help="default: the shipped model (reference/)")
    parser.add_argument("--max-photos", type=int, help="at most this many photos of each side (seeded draw)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "straighten_mix.json"))
    args = parser.parse_args(argv)
    if args.max_photos is not None and args.max_photos < MIN_PHOTOS:
        parser.error(f"--max-photos must be at least {MIN_PHOTOS}")
    scored = _photos(args.photos, args.max_photos, args.seed)
    checkpoint = args.checkpoint or reference.reference_checkpoint()
    model, metadata = models.load_checkpoint(checkpoint, verbose=False)
    rules = {"--rule safe (the default)": upright.SAFE_RULE}
    fitted = None
    if args.fit_on:
        fit_photos = _photos(args.fit_on, args.max_photos, args.seed)
        shared = set(map(str, fit_photos)) & set(map(str, scored))
        if shared:
            raise SystemExit(f"error: {len(shared)} photos are both fitted on and scored on")
        fit_ev, fit_true, _ = read_mix(model, metadata, fit_photos, args.seed + 1, label="fit")
        fitted, fit_scores = upright.fit_safe_rule(fit_ev, fit_true)
        rules["--rule safe, fitted on --fit-on"] = fitted
        print(f"fitted on {len(fit_photos)} photos: {fitted} ({fit_scores})", file=sys.stderr)
    evidences, true, kinds = read_mix(model, metadata, scored, args.seed, label="scored")
    results = {name: score(true, kinds, c) for name, c in corrections(evidences, rules).items()}
    reading = quarter_turn_reading(evidences, true, kinds)
    alone = results["leave alone"]["mean_error_after_deg"]
    print(f"\n{len(scored)} photos ({', '.join(args.photos)}), checkpoint {config.display_path(checkpoint)}; leaving them alone: {alone:.1f}°")
    print(f"{'setting':42s} {'after':>7s} {'/alone':>7s} {'harmed':>7s} {'fixed':>7s} {'turned':>7s} {'tilted':>7s}")
    for name, r in results.items():
        print(f"{name:42s} {r['mean_error_after_deg']:6.1f}° {r['after_over_alone']:7.2f} {r['upright_harmed']:7.0%} "
              f"{r['others_fixed_within_5']:7.0%} {r['turned_fixed_within_5']:7.0%} {r['tilted_fixed_within_5']:7.0%}")
    print(f"the likeliest quarter turn is the right one for {reading['turned_likeliest_right']:.0%} of the turned "
          f"photos and {reading['upright_likeliest_right']:.0%} of the upright ones")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"photos": args.photos, "fit_on": args.fit_on, "checkpoint": config.display_path(checkpoint),
                               "n": len(scored), "seed": args.seed, "mix": MIX,
                               "kinds": {k: kinds.count(k) for k in MIX},
                               "default_rule": asdict(upright.SAFE_RULE),
                               "fitted_rule": asdict(fitted) if fitted else None, "quarter_turn_reading": reading,
                               "results": results}, indent=1))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
