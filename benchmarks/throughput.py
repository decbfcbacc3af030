"""Does the data pipeline keep the model busy? Images per second, in one run on one machine.

Three measurements of the same profile, each the median of ``--rounds`` rounds taken in turn
(a, b, c, a, b, c, …) so that a noisy machine hurts all of them alike:

- **(a) step alone**: the training step of :func:`rotation_utils.training.train_one_epoch`
  (forward, backward, optimiser, EMA) on synthetic tensors already in memory;
- **(b) whole pipeline**: the same step fed by the course's training loader
  (:func:`rotation_utils.loaders.training_loader`: photos rotated on the fly, scale jitter,
  flips), as ``rotation-course train`` runs it;
- **(c) loader alone**: the loader with no model, the ceiling of (b).

The aim (issue 8): (b) ≥ 0.9 × (a) on 2 CPU cores at the quick profile's size, ≥ 0.8 × (a) on
a GPU. The cost of decoding the photos once into memory (CPU profiles) is printed apart.

    python benchmarks/throughput.py --photos ../shared/data/photos              # quick profile
    python benchmarks/throughput.py --photos DIR --profile workshop --device cuda --steps 50
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from rotation_utils import config, models, profiles, sources, training


def loop_state(profile, device):
    """The model, optimiser, schedule, scaler and EMA of :func:`training.fit`, random weights."""
    model = models.build_regressor(profile.backbone, "random", width=profile.width, verbose=False).to(device)
    if profile.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = training.make_optimizer(model, profile)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    amp = training.autocast_dtype(device, profile.cpu_bf16)
    ema = (torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(profile.ema_decay), use_buffers=True)
        if profile.ema_decay else None)
    return training.LoopState(model, optimizer, scheduler, torch.amp.GradScaler(device.type, enabled=amp == torch.float16),
                              device, amp, ema, profile.grad_clip, profile.channels_last)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(batches, consume, device) -> float:
    """Images per second of ``consume(batches)``, where ``batches`` yields (images, …)."""
    synchronize(device)
    start = time.perf_counter()
    seen = consume(batches)
    synchronize(device)
    return seen / (time.perf_counter() - start)


def endless(loader):
    while True:
        yield from loader


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=Path, default=os.environ.get("ROTATION_COURSE_IMAGES"),
                        help="folder of photos (default: ROTATION_COURSE_IMAGES)")
    parser.add_argument("--profile", default="quick", choices=list(profiles.PROFILES))
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--steps", type=int, default=20, help="training steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (a), (b), (c); the median is kept")
    parser.add_argument("--max-photos", type=int, default=600, help="photos read (enough for every step)")
    parser.add_argument("--batch-size", type=int, help="override the profile's batch size")
    parser.add_argument("--num-workers", type=int, help="override the profile's loader workers")
    parser.add_argument("--batched-rotation", choices=["on", "off"],
                        help="rotate whole batches on the device (default: the profile's choice)")
    parser.add_argument("--json", type=Path, help="also write the record to this file")
    args = parser.parse_args(argv)
    if args.photos is None or not Path(args.photos).is_dir():
        print(f"throughput: error: no such folder: {args.photos} (pass --photos DIR)", file=sys.stderr)
        return 2
    device = torch.device(args.device) if args.device else training.default_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    overrides = {k: v for k, v in (("batch_size", args.batch_size), ("num_workers", args.num_workers))
                 if v is not None}
    if args.batched_rotation:
        overrides["batched_rotation"] = args.batched_rotation == "on"
    profile = profiles.get_profile(args.profile, **overrides)
    if profile.batch_size is None:
        probe_model = models.build_regressor(profile.backbone, "random", width=profile.width, verbose=False)
        profile = profiles.get_profile(args.profile, **{**overrides, "batch_size": training.probe_batch_size(
            probe_model, profile.image_size, device)})
        del probe_model
    config.seed_everything(0)
    paths = sources.resolve_photos(args.photos, profile=profile, max_photos=args.max_photos, verbose=False).paths
    t0 = time.perf_counter()
    loader = training.training_loader(paths, profile, device=device)
    cache_s = time.perf_counter() - t0
    batch, size = profile.batch_size, profile.image_size
    state = loop_state(profile, device)
    synthetic = [(torch.randn(batch, 3, size, size), torch.nn.functional.normalize(torch.randn(batch, 2), dim=1),
                  torch.zeros(batch)) for _ in range(4)]
    if device.type == "cuda":
        synthetic = [(x.pin_memory(), t.pin_memory(), a) for x, t, a in synthetic]
    stream = endless(loader)

    def step_alone(_):
        return training.train_one_epoch(state, itertools.islice(itertools.cycle(synthetic), args.steps),
                                        progress=False)["samples"]

    def pipeline(_):
        return training.train_one_epoch(state, itertools.islice(stream, args.steps), progress=False)["samples"]

    def loader_alone(_):
        return sum(len(images) for images, _, _ in itertools.islice(stream, args.steps))

    for warm in (step_alone, pipeline):  # first calls pay for allocation, autotuning, workers
        training.train_one_epoch(state, itertools.islice(itertools.cycle(synthetic) if warm is step_alone
                                                         else stream, 3), progress=False)
    rates = {"a": [], "b": [], "c": []}
    for _ in range(args.rounds):
        rates["a"].append(timed(None, step_alone, device))
        rates["b"].append(timed(None, pipeline, device))
        rates["c"].append(timed(None, loader_alone, device))
    a, b, c = (statistics.median(rates[k]) for k in "abc")
    record = {"profile": profile.name, "device": str(device), "threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "backbone": profile.backbone, "image_size": size, "batch_size": batch,
              "num_workers": profile.num_workers, "batched_rotation": profile.batched_rotation, "photos": len(paths), "steps": args.steps, "rounds": args.rounds,
              "cache_seconds": cache_s, "step_alone_img_s": a, "pipeline_img_s": b, "loader_alone_img_s": c,
              "ratio_pipeline_to_step": b / a, "all_rounds": rates,
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    print(f"{profile.name} profile, {profile.backbone} at {size} px, batch {batch}, {profile.num_workers} workers, "
          f"{device}{' (' + record['gpu'] + ')' if record['gpu'] else ''}, {torch.get_num_threads()} threads")
    cached = getattr(loader.dataset, "_cache", None) is not None
    print(f"photos decoded into memory once: {len(paths)} in {cache_s:.1f} s" if cached
          else "photos read from the files by the loader" + (", batches rotated on the device" if profile.batched_rotation
                                                               else ""))
    print(f"{'measurement':<28}{'images/s':>10}")
    print(f"{'(a) training step alone':<28}{a:>10.1f}")
    print(f"{'(b) whole pipeline':<28}{b:>10.1f}")
    print(f"{'(c) loader alone':<28}{c:>10.1f}")
    print(f"ratio (b) / (a): {b / a:.2f}")
    print(json.dumps(record))
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
