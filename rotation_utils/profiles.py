"""One switch for the scale of every notebook and command: quick, laptop, workshop, full.

Taught in notebook 01 (the profile cell) and notebook 04 (training). ``quick`` is what tests
and CI run (CPU, offline, minutes); ``full`` is the reference protocol: 30k COCO-2017 photos
× 6 rotations, ResNet18 from ImageNet weights, which reached validation MAE 4.57°,
median 1.74°, 88.1% within 5°.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace

__all__ = ["Profile", "PROFILES", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """Every knob that changes with the scale of a run.

    Sizes are pixels; times are seconds; learning rates per optimiser step (Adam or AdamW).
    """

    name: str
    description: str
    image_size: int            # side of the square network input, pixels
    max_photos: int | None     # photos used from the source (None: all)
    rotations_per_photo: int   # rotated copies per photo in the FiftyOne dataset
    val_fraction: float        # share of source photos held out for validation
    border: str                # border strategy of the stored dataset
    weights: str               # "imagenet" (an error when they cannot be had) or "random"
    epochs: int
    time_budget_s: float | None  # stop training after this many seconds (None: no limit)
    batch_size: int | None     # None: probe against GPU memory (CPU: 64)
    lr: float
    weight_decay: float
    lr_step_epochs: int        # StepLR step, epochs (lr_schedule "step")
    lr_gamma: float
    patience: int              # early stopping on validation MAE, epochs
    grad_clip: float
    train_repeats: int         # on-the-fly rotated copies of each photo per epoch
    hflip: bool                # horizontal flips (θ → 360° − θ) as augmentation
    num_workers: int
    dataset_name: str          # FiftyOne dataset name
    train_trainable: str       # "all", "layer4+head" or "head" (what is unfrozen)
    ema_decay: float | None = None  # exponential moving average of the weights (None: off)
    cpu_bf16: bool = False     # bfloat16 autocast on CPUs with native bfloat16 instructions
    width: int = 64            # channels of ResNet18's first stage (64: the standard network)
    lr_schedule: str = "step"  # "step" (StepLR) or "cosine" (to zero over the time budget or epochs)
    channels_last: bool = False  # channels-last memory format (faster convolutions on CPUs)
    min_scale: float = 0.85    # training crops: random squares of min_scale–1 of the largest one
    backbone: str = "resnet18"  # "resnet18" (the reference) or "efficientnet_lite0" (see backbones)
    optimizer: str = "adam"    # "adam" (the reference: Adam with L2 weight decay) or "adamw"
    backbone_lr_factor: float = 1.0  # the backbone's learning rate is lr × this (the head's: lr)
    warmup_steps: int = 0      # linear warm-up of the learning rate over this many steps
    tta: bool = False          # validate with test-time averaging over the four 90° turns
    coco_split: str = "validation"  # COCO-2017 split fetched through the FiftyOne zoo (no folder named)
    offline_fallback: bool = True  # no folder and no COCO: use the packaged photos (False: an error)
    batched_rotation: bool = False  # rotate whole batches on the training device (batched_rotation)
    store_train_rotations: bool = True  # FiftyOne dataset: rotated copies of training photos too
    compile: bool = False      # torch.compile the training step's model (GPUs: faster after a warm-up)
    max_angle_deg: float | None = None  # train and validate on angles in ±D (a small-tilt model; None: all)
    head: str = "cos_sin_mse"  # how the network answers: one of rotation_utils.heads.HEADS
    bins: int = 72             # bins of the bins_expected head (72 of 5°)
    head_alpha: float = 1.0    # weight of bins_expected's circular term (radians²) in its dual loss
    augment: str = "none"      # "photometric": colour, blur and JPEG changes (datasets.photometric_augmentation)
    balance_collections: bool = False  # draw each collection (first folder under the photos' root) equally often

    @property
    def pretrained(self) -> bool:
        """True when the profile starts from ImageNet weights."""
        return self.weights == "imagenet"

    def to_dict(self) -> dict:
        """The profile as a plain dict (for ``training_summary.json``)."""
        return asdict(self)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        description="CPU, offline, minutes: EfficientNet-Lite0 from ImageNet weights, 160 px inputs",
        image_size=160, max_photos=None, rotations_per_photo=2, val_fraction=0.1,
        border="crop", weights="imagenet", epochs=40, time_budget_s=270.0, batch_size=32,
        lr=1e-3, weight_decay=1e-2, lr_step_epochs=10, lr_gamma=0.5, patience=40,
        grad_clip=1.0, train_repeats=1, hflip=True, num_workers=0,
        dataset_name="rotation-course-quick", train_trainable="all",
        ema_decay=0.99, cpu_bf16=False, lr_schedule="cosine", channels_last=True, min_scale=0.7,
        backbone="efficientnet_lite0", optimizer="adamw", warmup_steps=30),
    "workshop": Profile(
        name="workshop",
        description="one GPU, a few thousand photos, tens of minutes",
        image_size=224, max_photos=3000, rotations_per_photo=6, val_fraction=0.1,
        border="reflect", weights="imagenet", epochs=15, time_budget_s=None, batch_size=None,
        lr=1e-3, weight_decay=1e-4, lr_step_epochs=5, lr_gamma=0.5, patience=4,
        grad_clip=1.0, train_repeats=1, hflip=True, num_workers=8,
        dataset_name="coco-2017-rotated-workshop", train_trainable="all", batched_rotation=True,
        store_train_rotations=False),
    "full": Profile(
        name="full",
        description="the reference protocol: 30k COCO-2017 photos x 6 rotations, hours on a GPU",
        image_size=224, max_photos=30000, rotations_per_photo=6, val_fraction=0.1,
        border="reflect", weights="imagenet", epochs=30, time_budget_s=None, batch_size=None,
        lr=1e-3, weight_decay=1e-4, lr_step_epochs=10, lr_gamma=0.1, patience=5,
        grad_clip=1.0, train_repeats=1, hflip=False, num_workers=8,
        dataset_name="coco-2017-rotated", train_trainable="all", coco_split="train", offline_fallback=False,
        batched_rotation=True, store_train_rotations=False),
}

#: The quick profile's recipe with a longer clock: a laptop's CPU, ~20 minutes of training (it
#: shares the quick profile's FiftyOne dataset, built with the same settings).
PROFILES["laptop"] = replace(
    PROFILES["quick"], name="laptop", time_budget_s=1200.0, epochs=200,
    description="CPU, offline, 20 minutes: the quick profile's recipe with a longer clock")
PROFILES = {name: PROFILES[name] for name in ("quick", "laptop", "workshop", "full")}


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The profile called ``name`` (default: ``ROTATION_COURSE_PROFILE`` or ``quick``).

    overrides: fields to change, e.g. ``get_profile("quick", epochs=2)``.
    Raises ValueError for an unknown name or field.
    """
    name = (name or os.environ.get("ROTATION_COURSE_PROFILE") or "quick").strip().lower()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    profile = PROFILES[name]
    unknown = set(overrides) - set(Profile.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown profile fields {sorted(unknown)}")
    return replace(profile, **overrides) if overrides else profile
