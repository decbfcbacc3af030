"""The reference's figures: training history, error analysis, Grad-CAM grid (and a few more).

Taught in notebooks 04 (history), 05 (error analysis) and 06 (Grad-CAM grid). Every figure has
a title and axis labels with units; :func:`save_figure` writes it next to the run's checkpoint.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from . import angles
from .datasets import denormalize

__all__ = [
    "save_figure",
    "show_images",
    "plot_training_history",
    "plot_error_analysis",
    "plot_gradcam_grid",
    "plot_prediction_gallery",
    "plot_coverage",
    "plot_quarter_turn_posterior",
    "show_as_jpeg",
]


def show_as_jpeg(fig, quality: int = 85, dpi: int = 100) -> None:
    """Show a figure of photos as a JPEG instead of the inline PNG, and close it.

    Photographs compress about ten times better as JPEG, which keeps the notebooks' stored
    outputs small (notebook 09). Line plots should stay PNG. dpi: pixels per inch of the image.
    """
    import io

    from IPython.display import Image, display

    buffer = io.BytesIO()
    fig.savefig(buffer, format="jpeg", dpi=dpi, bbox_inches="tight", pil_kwargs={"quality": quality})
    plt.close(fig)
    display(Image(data=buffer.getvalue(), format="jpeg"))


def save_figure(fig, path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG (folders created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def show_images(images, titles=None, ncols: int = 6, size: float = 2.0, suptitle: str | None = None):
    """A grid of images: normalised tensors (N, 3, H, W), PIL images or (H, W, 3) arrays.

    Returns the figure.
    """
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    title_lines = max((str(t).count("\n") + 1 for t in titles), default=0) if titles is not None else 0
    # room above each row for its titles (8-point lines), so that they do not run into the row above
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, nrows * (size + 0.17 * title_lines)
                                                    + (0.4 if suptitle else 0)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, image in enumerate(images):
        ax = axes.ravel()[i]
        if isinstance(image, torch.Tensor):  # a normalised network input (3, H, W)
            image = denormalize(image.detach().cpu()).permute(1, 2, 0).numpy()
        ax.imshow(image)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_training_history(history, title: str = "Training history"):
    """Loss and validation MAE per epoch from :func:`rotation_utils.training.fit`'s history.

    history: list of dicts with ``epoch``, ``train_loss``, ``val_loss``, ``val_mae_deg``,
    ``val_median_deg``. Returns the figure (two panels).
    """
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_mae) = plt.subplots(1, 2, figsize=(11, 3.8))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], marker="o", label="training")
    ax_loss.plot(epochs, [r["val_loss"] for r in history], marker="o", label="validation")
    ax_loss.set(title="MSE loss on (cos θ, sin θ)", xlabel="epoch", ylabel="loss (unitless)")
    ax_loss.legend()
    ax_mae.plot(epochs, [r["val_mae_deg"] for r in history], marker="o", label="MAE")
    ax_mae.plot(epochs, [r["val_median_deg"] for r in history], marker="o", label="median")
    ax_mae.axhline(angles.RANDOM_GUESS_MAE_DEG, color="grey", ls="--", label="guessing (90°)")
    ax_mae.set(title="Validation circular absolute error", xlabel="epoch", ylabel="error (degrees)")
    ax_mae.set_ylim(bottom=0)
    ax_mae.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_error_analysis(true_deg, predicted_deg, title: str = "Error analysis"):
    """Four panels: predicted vs true angle, error vs true angle, error histogram, and the
    cumulative share of samples within an error (degrees everywhere). Returns the figure."""
    true_deg = np.asarray(true_deg, dtype=float)
    predicted_deg = np.asarray(predicted_deg, dtype=float)
    errors = angles.circular_absolute_error_deg(predicted_deg, true_deg)
    summary = angles.summarize_errors(errors)
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0, 0]
    ax.scatter(true_deg, predicted_deg, s=6, alpha=0.5)
    ax.plot([0, 360], [0, 360], color="k", lw=1)
    ax.set(title="Predicted against true angle", xlabel="true angle (degrees)",
           ylabel="predicted angle (degrees)", xlim=(0, 360), ylim=(0, 360))
    ax = axes[0, 1]
    ax.scatter(true_deg, errors, s=6, alpha=0.5)
    ax.set(title="Error against true angle", xlabel="true angle (degrees)",
           ylabel="circular absolute error (degrees)", xlim=(0, 360), ylim=(0, 180))
    ax = axes[1, 0]
    ax.hist(errors, bins=np.arange(0, 181, 5), color="tab:blue")
    ax.axvline(summary["mae_deg"], color="tab:red", label=f"MAE {summary['mae_deg']:.1f}°")
    ax.axvline(summary["median_deg"], color="tab:green", label=f"median {summary['median_deg']:.1f}°")
    ax.set(title="Histogram of errors", xlabel="circular absolute error (degrees)", ylabel="samples")
    ax.legend()
    ax = axes[1, 1]
    grid = np.linspace(0, 180, 361)
    ax.plot(grid, [100 * np.mean(errors <= g) for g in grid])
    for t in (5, 10, 15):
        ax.axvline(t, color="grey", ls=":", lw=1)
    ax.plot(grid, 100 * grid / 180, color="grey", ls="--", label="guessing")
    ax.set(title="Cumulative share within an error", xlabel="error threshold (degrees)",
           ylabel="samples within (%)", xlim=(0, 180), ylim=(0, 100))
    ax.legend()
    fig.suptitle(f"{title}: {angles.format_summary(summary)}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_gradcam_grid(overlays, true_deg, predicted_deg, ncols: int = 4, title: str = "Grad-CAM"):
    """A grid of Grad-CAM overlays (list of (H, W, 3) uint8) titled with true and predicted
    angles and the circular error (degrees). Returns the figure."""
    errors = angles.circular_absolute_error_deg(np.asarray(predicted_deg, float), np.asarray(true_deg, float))
    titles = [f"true {t:.0f}°, pred {p:.0f}°\nerror {e:.0f}°"
              for t, p, e in zip(true_deg, predicted_deg, np.atleast_1d(errors))]
    return show_images(overlays, titles, ncols=ncols, size=2.4, suptitle=title)


def plot_prediction_gallery(images, true_deg, predicted_deg, ncols: int = 6,
                            title: str = "Predictions", size: float = 2.2):
    """Rotated inputs with two arrows each: where "up" truly is (green, solid) and where the
    network thinks it is (orange, dashed); titled with both angles and the circular error.

    images: normalised tensors (N, 3, H, W) (or PIL images / (H, W, 3) arrays).
    true_deg, predicted_deg: (N,) degrees counter-clockwise; a photo rotated by θ has its
    "up" pointing θ counter-clockwise from the top. Returns the figure.
    """
    true_deg = np.atleast_1d(np.asarray(true_deg, dtype=float))
    predicted_deg = np.atleast_1d(np.asarray(predicted_deg, dtype=float))
    errors = np.atleast_1d(angles.circular_absolute_error_deg(predicted_deg, true_deg))
    titles = [f"true {t:.0f}°, pred {p:.0f}°\nerror {e:.0f}°"
              for t, p, e in zip(true_deg, predicted_deg, errors)]
    fig = show_images(images, titles, ncols=ncols, size=size,
                      suptitle=f"{title} (green: true up, orange dashed: predicted up)")
    for ax, t, p in zip(fig.axes, true_deg, predicted_deg):
        x_max, x_min = max(ax.get_xlim()), min(ax.get_xlim())
        y_max, y_min = max(ax.get_ylim()), min(ax.get_ylim())
        cx, cy, length = (x_min + x_max) / 2, (y_min + y_max) / 2, 0.38 * (x_max - x_min)
        for angle, color, style in ((t, "limegreen", "-"), (p, "darkorange", "--")):
            theta_rad = np.deg2rad(angle)
            ax.annotate("", xy=(cx - length * np.sin(theta_rad), cy - length * np.cos(theta_rad)),
                        xytext=(cx, cy), arrowprops=dict(arrowstyle="-|>", color=color, lw=2,
                                                         linestyle=style))
    return fig


def plot_coverage(curve, baseline=None, title: str = "Abstaining on short (cos θ, sin θ) vectors"):
    """MAE of the kept samples against the share kept (a risk–coverage curve).

    curve, baseline: dicts from :func:`rotation_utils.evaluation.coverage_curve` (coverage in
    (0, 1], MAE in degrees); the baseline (e.g. a random order) is drawn dashed. The overall
    MAE (coverage 100%) is drawn as a dotted line. Returns the figure.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(100 * np.asarray(curve["coverage"]), curve["mae_deg"], label="most confident first")
    if baseline is not None:
        ax.plot(100 * np.asarray(baseline["coverage"]), baseline["mae_deg"], color="grey", ls="--",
                label="random order")
    ax.axhline(np.asarray(curve["mae_deg"])[np.argmax(curve["coverage"])], color="k", ls=":", lw=1,
               label="all samples")
    ax.set(title=title, xlabel="samples kept, coverage (%)", ylabel="MAE of the kept samples (degrees)",
           xlim=(0, 100))
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_quarter_turn_posterior(image, turned_back, prior, posterior,
                                title: str = "Is this photo a quarter turn off?"):
    """The safe rule's reading of one photo (notebook 09): the photo, the model's four answers
    turned back as arrows on the unit circle, and the prior and posterior of the four quarter
    turns side by side.

    image: a PIL image or (H, W, 3) array. turned_back: (4, 2) vectors
    (:func:`rotation_utils.upright.turn_evidence`), each pointing at the photo's angle as one
    turn reads it (degrees counter-clockwise from "up"). prior, posterior: (4,) probabilities of
    0°, 90°, 180° and 270°. Returns the figure.
    """
    turned_back, prior, posterior = (np.asarray(x, dtype=float) for x in (turned_back, prior, posterior))
    if turned_back.shape != (4, 2) or prior.shape != (4,) or posterior.shape != (4,):
        raise ValueError("turned_back must be (4, 2), prior and posterior (4,)")
    fig, (ax_photo, ax_circle, ax_bars) = plt.subplots(1, 3, figsize=(11, 3.6),
                                                       gridspec_kw={"width_ratios": [1.1, 1, 1.2]})
    ax_photo.imshow(np.asarray(image))
    ax_photo.set_title("the photo as given")
    ax_photo.axis("off")
    circle = np.linspace(0, 2 * np.pi, 200)
    ax_circle.plot(np.cos(circle), np.sin(circle), color="lightgrey", lw=1)
    for k, (vector, colour) in enumerate(zip(turned_back, ("C0", "C1", "C2", "C3"))):
        # an angle θ counter-clockwise from "up" is drawn at θ from the top of the circle
        theta_rad = np.arctan2(vector[1], vector[0])
        length = float(np.linalg.norm(vector))
        ax_circle.annotate("", xy=(-length * np.sin(theta_rad), length * np.cos(theta_rad)), xytext=(0, 0),
                           arrowprops=dict(arrowstyle="-|>", color=colour, lw=2))
        ax_circle.plot([], [], color=colour, lw=2, label=f"shown turned {90 * k}°")
    for q in range(4):
        theta_rad = np.deg2rad(90 * q)
        ax_circle.text(-1.18 * np.sin(theta_rad), 1.18 * np.cos(theta_rad), f"{90 * q}°", ha="center", va="center")
    ax_circle.set(xlim=(-1.35, 1.35), ylim=(-1.35, 1.35), aspect="equal",
                  title="the four answers, turned back\n(angle from the top; length: confidence)")
    ax_circle.axis("off")
    ax_circle.legend(fontsize=7, loc="lower left", bbox_to_anchor=(-0.1, -0.12), frameon=False)
    x = np.arange(4)
    ax_bars.bar(x - 0.2, prior, width=0.4, color="lightgrey", label="prior P(q)")
    ax_bars.bar(x + 0.2, posterior, width=0.4, color="C0", label="posterior P(q | photo)")
    ax_bars.set(xticks=x, xticklabels=["0°", "90°", "180°", "270°"], ylim=(0, 1.05),
                xlabel="quarter turn q (degrees, counter-clockwise)", ylabel="probability", title="prior and posterior")
    ax_bars.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
