"""Sliders for notebooks 01 (angles live on a circle), 06 (a validation sample and its Grad-CAM),
08 (head pose) and 09 (straightening photos), and the drawings behind them.

Every slider has a pure drawing function beside it (:func:`plot_angle_pair`,
:func:`plot_encoding_losses`) that tests and the static GitHub view call without a widget:
stored widget outputs do not render on GitHub. Angles are degrees, counter-clockwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import angles

__all__ = [
    "AnglePair",
    "plot_angle_pair",
    "angle_error_explorer",
    "encoding_losses",
    "plot_encoding_losses",
    "encoding_loss_explorer",
    "plot_head_pose",
    "head_pose_explorer",
    "Straightening",
    "plot_straightening",
    "straighten_explorer",
    "SampleReading",
    "plot_sample_reading",
    "sample_explorer",
]

_TRUE_COLOR, _PRED_COLOR = "C0", "C1"
_CIRCULAR_COLOR, _NAIVE_COLOR = "C2", "C3"


@dataclass(frozen=True)
class AnglePair:
    """What :func:`plot_angle_pair` drew: both angles, both errors and the target, in degrees.

    true_deg, predicted_deg: wrapped into [0, 360). naive_error_deg: |a − b| in [0, 360).
    circular_error_deg: min(|a − b|, 360 − |a − b|) in [0, 180]. cos_sin: the (cos θ, sin θ)
    target of the true angle. ax: the matplotlib Axes.
    """

    true_deg: float
    predicted_deg: float
    naive_error_deg: float
    circular_error_deg: float
    cos_sin: tuple[float, float]
    ax: Any = field(repr=False, compare=False, default=None)

    def __repr__(self) -> str:
        return (f"AnglePair(true {self.true_deg:.1f}°, predicted {self.predicted_deg:.1f}°: "
                f"naive error {self.naive_error_deg:.1f}°, circular error "
                f"{self.circular_error_deg:.1f}°, target (cos θ, sin θ) = "
                f"({self.cos_sin[0]:.3f}, {self.cos_sin[1]:.3f}))")


def _arc(ax, start_deg: float, sweep_deg: float, radius: float, **kwargs) -> None:
    """Draw an arc from start_deg sweeping sweep_deg (signed, degrees) at radius."""
    t = np.deg2rad(start_deg + np.linspace(0.0, sweep_deg, 200))
    ax.plot(radius * np.cos(t), radius * np.sin(t), **kwargs)


def plot_angle_pair(true_deg: float, predicted_deg: float, ax=None) -> AnglePair:
    """Draw a true and a predicted angle on the unit circle with the naive and circular errors.

    true_deg, predicted_deg: degrees, counter-clockwise from the x axis (any real value; both
    are wrapped into [0, 360) first). ax: a matplotlib Axes (None: a new 4.5 × 4.5 inch figure).
    Draws both angles as rays, the circular error as the short arc between them (green, outer),
    the naive |a − b| as the arc that never crosses 0° (red, dashed, inner), and the
    (cos θ, sin θ) target of the true angle with its projections on the axes.
    Returns an :class:`AnglePair` with the numbers shown. Taught in notebook 01.
    """
    import matplotlib.pyplot as plt

    a = angles.wrap_angle_deg(float(true_deg))
    b = angles.wrap_angle_deg(float(predicted_deg))
    naive = angles.naive_absolute_error_deg(b, a)
    circular = angles.circular_absolute_error_deg(b, a)
    signed = angles.signed_angle_difference_deg(b, a)   # predicted − true, in [−180, 180)
    cos_sin = tuple(float(v) for v in angles.encode_angle_deg(np.array([a]))[0])

    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 4.5))
    _arc(ax, 0.0, 360.0, 1.0, color="0.75", lw=1)
    ax.axhline(0, color="0.85", lw=0.8, zorder=0)
    ax.axvline(0, color="0.85", lw=0.8, zorder=0)
    for tick in (0, 90, 180, 270):
        t = np.deg2rad(tick)
        ax.text(1.17 * np.cos(t), 1.17 * np.sin(t), f"{tick}°", ha="center", va="center",
                fontsize=8, color="0.4")
    # the naive path: from the smaller to the larger angle, never through 0°
    _arc(ax, min(a, b), naive, 0.55, color=_NAIVE_COLOR, ls="--", lw=1.5,
         label=f"naive |a − b| = {naive:.0f}°")
    # the circular path: the short way round, from the true angle to the prediction
    _arc(ax, a, signed, 0.8, color=_CIRCULAR_COLOR, lw=3,
         label=f"circular error = {circular:.0f}°")
    for angle, color, name in ((a, _TRUE_COLOR, "true"), (b, _PRED_COLOR, "predicted")):
        t = np.deg2rad(angle)
        ax.plot([0, np.cos(t)], [0, np.sin(t)], color=color, lw=2, label=f"{name} {angle:.0f}°")
        ax.plot(np.cos(t), np.sin(t), "o", color=color, ms=7)
    c, s = cos_sin
    ax.plot([c, c], [0, s], ":", color=_TRUE_COLOR, lw=1)
    ax.plot([0, c], [s, s], ":", color=_TRUE_COLOR, lw=1)
    ax.text(0.98, 0.98, f"target (cos θ, sin θ)\n= ({c:.3f}, {s:.3f})", transform=ax.transAxes,
            ha="right", va="top", fontsize=8, color=_TRUE_COLOR)
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-1.3, 1.3)
    ax.set_aspect("equal")
    ax.set_xlabel("x = cos θ (unitless)")
    ax.set_ylabel("y = sin θ (unitless)")
    ax.set_title(f"true {a:.0f}°, predicted {b:.0f}°: naive {naive:.0f}°, circular {circular:.0f}°",
                 fontsize=10)
    ax.legend(loc="lower left", fontsize=7, framealpha=0.9)
    return AnglePair(a, b, naive, circular, cos_sin, ax)


def _true_and_predicted_sliders(plot, true_deg: float, predicted_deg: float, step_deg: float):
    """Two sliders (true and predicted angle, degrees) that redraw ``plot(true_deg, predicted_deg)``;
    returns an ipywidgets ``VBox``."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    style = {"description_width": "initial"}
    true_slider = w.FloatSlider(value=true_deg, min=0, max=359, step=step_deg, style=style,
                                description="true angle (°)", continuous_update=False)
    pred_slider = w.FloatSlider(value=predicted_deg, min=0, max=359, step=step_deg, style=style,
                                description="predicted angle (°)", continuous_update=False)

    def draw(true_deg, predicted_deg):
        plot(true_deg, predicted_deg)
        plt.show()

    out = w.interactive_output(draw, {"true_deg": true_slider, "predicted_deg": pred_slider})
    return w.VBox([w.HBox([true_slider, pred_slider]), out])


def angle_error_explorer(true_deg: float = 350.0, predicted_deg: float = 10.0,
                         step_deg: float = 1.0):
    """Two sliders (true and predicted angle, degrees) that redraw :func:`plot_angle_pair`.

    Returns an ipywidgets ``VBox`` to display in a notebook. Needs ipywidgets and a running
    kernel; use :func:`plot_angle_pair` for a static figure. Taught in notebook 01.
    """
    return _true_and_predicted_sliders(plot_angle_pair, true_deg, predicted_deg, step_deg)


def encoding_losses(true_deg: float, predicted_deg) -> dict:
    """Loss of a prediction under each encoding, for one true angle (degrees).

    predicted_deg: (N,) degrees in [0, 360). Returns a dict of (N,) arrays:
    ``degrees_mse`` ((p − t)² in deg², what regressing raw degrees minimises),
    ``cos_sin_mse`` (‖(cos p, sin p) − (cos t, sin t)‖² = 2 − 2 cos(p − t), unitless, in [0, 4])
    and ``circular_error_deg`` (the CAE in degrees, what we actually care about).
    """
    p = np.asarray(predicted_deg, dtype=np.float64)
    t = angles.wrap_angle_deg(float(true_deg))
    diff = angles.encode_angle_deg(p) - angles.encode_angle_deg(np.full_like(p, t))
    return {
        "degrees_mse": (p - t) ** 2,
        "cos_sin_mse": np.sum(diff ** 2, axis=-1),
        "circular_error_deg": angles.circular_absolute_error_deg(p, t),
    }


def plot_encoding_losses(true_deg: float, predicted_deg: float | None = None, axes=None):
    """Loss against the predicted angle for the degrees and the (cos θ, sin θ) encodings.

    true_deg: degrees. predicted_deg: optional, marks one prediction on both curves.
    axes: two matplotlib Axes (None: a new 9 × 3.2 inch figure). Left: degrees MSE in deg²;
    right: (cos, sin) MSE (unitless). Each shows where the circular error is smallest.
    Returns the two Axes. Taught in notebook 01.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    t = angles.wrap_angle_deg(float(true_deg))
    grid = np.linspace(0, 360, 721)[:-1]
    losses = encoding_losses(t, grid)
    panels = (("degrees_mse", "degrees: (p − t)²", "loss (degrees²)"),
              ("cos_sin_mse", "(cos θ, sin θ): squared distance", "loss (unitless)"))
    for ax, (key, title, ylabel) in zip(axes, panels):
        ax.plot(grid, losses[key], color="C0")
        ax.axvline(t, color=_TRUE_COLOR, ls=":", lw=1, label=f"true {t:.0f}°")
        if predicted_deg is not None:
            p = angles.wrap_angle_deg(float(predicted_deg))
            value = encoding_losses(t, np.array([p]))[key][0]
            ax.plot([p], [value], "o", color=_PRED_COLOR,
                    label=f"predicted {p:.0f}°: loss {value:.3g}")
        ax.set_xlim(0, 360)
        ax.set_xticks(range(0, 361, 90))
        ax.set_xlabel("predicted angle (degrees)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}, true angle {t:.0f}°", fontsize=10)
        ax.legend(fontsize=7, loc="upper center")
    axes[0].figure.tight_layout()
    return axes


def encoding_loss_explorer(true_deg: float = 10.0, predicted_deg: float = 350.0):
    """Sliders for the true and a predicted angle (degrees) over :func:`plot_encoding_losses`.

    Returns an ipywidgets ``VBox``. Move the true angle near 0° or 360° and watch the degrees
    loss call a 20° miss across the seam a huge error while the (cos, sin) loss does not.
    """
    return _true_and_predicted_sliders(plot_encoding_losses, true_deg, predicted_deg, 1.0)


def plot_head_pose(image, labelled_deg, chosen_deg, shape_3d, axes=None):
    """Notebook 08's pose drawing: a face with its labelled axes (dashed) and the chosen pose's
    axes (solid) from the crop's centre, and beside it the 3-D face (68 points) seen in the
    chosen pose. image: a PIL face crop, or None for the 3-D face alone (one panel, drawn as
    lines by :func:`rotation_utils.headpose.draw_face` through a camera 10 face radii away);
    labelled_deg, chosen_deg: (yaw, pitch, roll) degrees; shape_3d: (68, 3), e.g.
    :func:`rotation_utils.headpose.schematic_face` or ``mean_face_shape``. axes: two matplotlib
    axes (one without an image), or None for a new figure. Returns the figure."""
    import matplotlib.pyplot as plt

    from . import headpose

    if image is None:
        if axes is None:
            fig, ax = plt.subplots(figsize=(4.2, 4.2))
        else:
            ax = np.atleast_1d(axes)[0]
            fig = ax.figure
        points = headpose.project_face(shape_3d, chosen_deg, focal_px=10.0, face_radius_px=1.0, image_size=(0, 0))
        headpose.draw_face(ax, points)
        headpose.draw_pose_axes(ax, *chosen_deg, (0.0, 0.0), 1.4)
        ax.set_xlim(-2, 2)
        ax.set_ylim(2, -2)
        ax.set_aspect("equal")
        ax.set_title("yaw {:.0f}°, pitch {:.0f}°, roll {:.0f}°".format(*chosen_deg), fontsize=9)
        ax.set_xlabel("image x (face radii)")
        ax.set_ylabel("image y (face radii, down)")
        return fig
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.8))
    else:
        fig = axes[0].figure
    side = image.size[0]
    axes[0].imshow(image)
    centre = (side / 2, side / 2)
    headpose.draw_pose_axes(axes[0], *labelled_deg, centre, side * 0.35, linestyle="--", linewidth=1.5)
    headpose.draw_pose_axes(axes[0], *chosen_deg, centre, side * 0.45)
    axes[0].set_title("face: label (dashed), sliders (solid)", fontsize=9)
    axes[0].set_axis_off()
    points = (headpose.pose_matrix(*chosen_deg) @ np.asarray(shape_3d).T).T
    order = np.argsort(-points[:, 2])  # far points first, near ones on top
    axes[1].scatter(points[order, 0], points[order, 1], c=-points[order, 2], cmap="viridis", s=14)
    headpose.draw_pose_axes(axes[1], *chosen_deg, (0.0, 0.0), 1.4)
    axes[1].set_xlim(-2, 2)
    axes[1].set_ylim(2, -2)
    axes[1].set_aspect("equal")
    axes[1].set_title("mean face, yaw {:.0f}°, pitch {:.0f}°, roll {:.0f}°".format(*chosen_deg), fontsize=9)
    axes[1].set_xlabel("image x (face radii)")
    axes[1].set_ylabel("image y (face radii, down)")
    fig.tight_layout()
    return fig


def head_pose_explorer(image, labelled_deg, shape_3d):
    """Three sliders (yaw, pitch, roll, degrees in [-90, 90]) that redraw :func:`plot_head_pose`,
    starting at ``labelled_deg``; image None draws the 3-D face ``shape_3d`` alone. Returns an
    ipywidgets ``VBox``. Taught in notebook 08."""
    import ipywidgets as w
    import matplotlib.pyplot as plt

    style = {"description_width": "initial"}
    sliders = {name: w.FloatSlider(value=round(float(value)), min=-90, max=90, step=1, style=style,
                                   description=f"{name} (°)", continuous_update=False)
               for name, value in zip(("yaw", "pitch", "roll"), labelled_deg)}

    def draw(yaw, pitch, roll):
        plot_head_pose(image, labelled_deg, (yaw, pitch, roll), shape_3d)
        plt.show()

    out = w.interactive_output(draw, sliders)
    return w.VBox([w.HBox(list(sliders.values())), out])


@dataclass(frozen=True)
class Straightening:
    """What :func:`plot_straightening` drew, degrees counter-clockwise: ``turned_deg`` (how far
    the photo was turned), ``predicted_deg`` (the model's answer in (-180, 180]),
    ``correction_deg`` (the turn applied to straighten it: minus the prediction),
    ``error_deg`` (circular absolute error of the prediction, [0, 180]) and ``confidence``
    (the head's confidence: the output length for (cos θ, sin θ)). ``fig``: the figure."""

    turned_deg: float
    predicted_deg: float
    correction_deg: float
    error_deg: float
    confidence: float
    fig: Any = field(repr=False, compare=False, default=None)


def plot_straightening(model, metadata: dict, image, turned_deg: float, tta: bool = False,
                       border: str = "crop", axes=None) -> Straightening:
    """Notebook 09's three panels: an upright photo turned counter-clockwise by ``turned_deg``
    degrees (``border`` fill: ``crop``, the course's validation border), the model's prediction on
    it, and the turned photo straightened by that prediction
    (:func:`rotation_utils.straighten.straighten_image`, cropped to the largest upright
    rectangle) — exactly what ``rotation-course straighten`` would write.

    model, metadata: as :func:`rotation_utils.models.load_checkpoint` returns them. image: a PIL
    RGB photo. tta: average over the four 90° turns. Returns a :class:`Straightening`.
    """
    import matplotlib.pyplot as plt

    from . import rotation, straighten

    head = metadata.get("head", "cos_sin_mse")
    size = int(metadata.get("image_size") or 160)
    turned = rotation.rotate_image(image, float(turned_deg), border=border)
    predicted, confidence = straighten.predict_photo_angles(model, [turned], size, head, int(metadata.get("bins", 72)),
                                                            tta=tta)
    signed = float(angles.signed_angle_difference_deg(float(predicted[0]), 0.0))
    fixed = straighten.straighten_image(turned, -signed, "crop")
    error = float(angles.circular_absolute_error_deg(float(predicted[0]), float(turned_deg)))
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.8))
    else:
        fig = axes[0].figure
    axes[0].imshow(image)
    axes[0].set_title("the photo, upright", fontsize=9)
    axes[1].imshow(turned)
    axes[1].set_title(f"turned by {turned_deg:.0f}°; the model says {signed:+.1f}°\n"
                      f"(error {error:.1f}°, confidence {float(confidence[0]):.2f})", fontsize=9)
    axes[2].imshow(fixed)
    axes[2].set_title(f"straightened: turned back by {-signed:+.1f}°", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle("Straightening a turned photo (angles counter-clockwise, degrees)", fontsize=10)
    fig.tight_layout()
    return Straightening(float(turned_deg), signed, -signed, error, float(confidence[0]), fig)


def straighten_explorer(model, metadata: dict, images, turned_deg: float = 30.0):
    """A photo chooser and an angle slider (degrees in [-180, 180], counter-clockwise) that
    redraw :func:`plot_straightening`, and a "four turns" box for test-time averaging.
    images: a list of PIL RGB photos. Returns an ipywidgets ``VBox``. Taught in notebook 09.
    Raises ValueError for an empty ``images``."""
    import ipywidgets as w

    if not images:
        raise ValueError("straighten_explorer needs at least one photo")
    style = {"description_width": "initial"}
    controls = {
        "index": w.IntSlider(value=0, min=0, max=len(images) - 1, description="photo", style=style,
                             continuous_update=False),
        "turned_deg": w.FloatSlider(value=float(turned_deg), min=-180, max=180, step=1, style=style,
                                    description="turn the photo by (°)", continuous_update=False),
        "tta": w.Checkbox(value=False, description="average the four 90° turns (--tta)"),
    }

    from .plots import show_as_jpeg

    def draw(index, turned_deg, tta):
        result = plot_straightening(model, metadata, images[index], turned_deg, tta=tta)
        show_as_jpeg(result.fig)
        print(f"predicted {result.predicted_deg:+.1f}°, circular absolute error {result.error_deg:.1f}°, "
              f"confidence {result.confidence:.2f}")

    out = w.interactive_output(draw, controls)
    return w.VBox([w.HBox(list(controls.values())), out])


@dataclass
class SampleReading:
    """What :func:`plot_sample_reading` drew for one validation sample: its true and predicted
    angles and circular absolute error (degrees), the head's confidence, and the figure."""

    index: int
    true_deg: float
    predicted_deg: float
    error_deg: float
    confidence: float
    fig: Any = field(repr=False, compare=False, default=None)


def plot_sample_reading(model, dataset, index: int, target_layer=None, head: str = "cos_sin_mse",
                        bins: int = 72, axes=None) -> SampleReading:
    """One validation sample read by the model (notebook 06): the rotated input with the true
    "up" (green) and the predicted one (orange, dashed), and its Grad-CAM map along the predicted
    direction and along the true one (:func:`rotation_utils.gradcam.compute_gradcam`).

    dataset: items (image (3, S, S) normalised, target, angle in degrees), e.g. a
    :class:`rotation_utils.datasets.FixedRotationDataset`. index: which sample. target_layer:
    the Grad-CAM layer (default: the backbone's last block). Returns a :class:`SampleReading`.
    Raises IndexError for an index outside the dataset.
    """
    import matplotlib.pyplot as plt
    import torch

    from . import gradcam
    from .heads import resultant

    if not 0 <= index < len(dataset):
        raise IndexError(f"sample {index} of a dataset of {len(dataset)}")
    image, _, angle = dataset[index]
    true_deg = float(angle)
    images = torch.stack([image, image])
    cams, predicted = gradcam.compute_gradcam(model, images, target_angles_deg=None, target_layer=target_layer,
                                              head=head, bins=bins)
    predicted_deg = float(predicted[0])
    true_cam, _ = gradcam.compute_gradcam(model, image[None], target_angles_deg=[true_deg], target_layer=target_layer,
                                          head=head, bins=bins)
    with torch.no_grad():
        confidence = float(torch.linalg.vector_norm(resultant(head, model(image[None]).float(), bins), dim=-1)[0])
    error = float(angles.circular_absolute_error_deg(predicted_deg, true_deg))
    if axes is None:
        fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    else:
        fig = axes[0].figure
    from .datasets import denormalize

    side = image.shape[-1]
    axes[0].imshow(denormalize(image).permute(1, 2, 0).numpy())
    for angle_deg, colour, style in ((true_deg, "limegreen", "-"), (predicted_deg, "darkorange", "--")):
        theta = np.deg2rad(angle_deg)  # "up" turned θ counter-clockwise from the top
        axes[0].annotate("", xy=(side / 2 - 0.38 * side * np.sin(theta), side / 2 - 0.38 * side * np.cos(theta)),
                         xytext=(side / 2, side / 2), arrowprops=dict(arrowstyle="-|>", color=colour, lw=2, ls=style))
    axes[0].set_title(f"true {true_deg:.0f}°, predicted {predicted_deg:.0f}°\nerror {error:.1f}°, "
                      f"confidence {confidence:.2f}", fontsize=9)
    axes[1].imshow(gradcam.overlay_cam(image, cams[0]))
    axes[1].set_title("Grad-CAM along the predicted direction", fontsize=9)
    axes[2].imshow(gradcam.overlay_cam(image, true_cam[0]))
    axes[2].set_title("Grad-CAM along the true direction", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(f"Validation sample {index} (green: true up, orange dashed: predicted up; degrees counter-clockwise)",
                 fontsize=10)
    fig.tight_layout()
    return SampleReading(index, true_deg, predicted_deg, error, confidence, fig)


def sample_explorer(model, dataset, order=None, target_layer=None, head: str = "cos_sin_mse", bins: int = 72):
    """A slider over validation samples that redraws :func:`plot_sample_reading`: the sample,
    its prediction and error, and its Grad-CAM maps. order: the sample indices in slider order
    (e.g. sorted by error, worst first; default: the dataset's order). Returns an ipywidgets
    ``VBox``. Taught in notebook 06. Raises ValueError for an empty dataset or order."""
    import ipywidgets as w

    from .plots import show_as_jpeg

    order = list(range(len(dataset))) if order is None else [int(i) for i in order]
    if not order:
        raise ValueError("sample_explorer needs at least one sample")
    slider = w.IntSlider(value=0, min=0, max=len(order) - 1, description="sample (in this order)",
                         style={"description_width": "initial"}, continuous_update=False,
                         layout=w.Layout(width="60%"))

    def draw(position):
        reading = plot_sample_reading(model, dataset, order[position], target_layer, head, bins)
        show_as_jpeg(reading.fig)

    return w.VBox([slider, w.interactive_output(draw, {"position": slider})])
