"""What a run folder (`keras_dyconv.experiment.run_experiment`) holds besides its models.

    results.json            `write_run_folder`, with the `versions` and the model's
                            `architecture` that make the numbers reproducible
                            (`log_scores` logs its pooled scores)
    confusion_matrix.png    `plot_confusion`: pooled over folds (and seeds)
    training_curves.png     `plot_curves`: loss and validation UA per epoch, per fold

matplotlib is imported when a plot is drawn, with its non-interactive "Agg" backend.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from edge_runtime.config import FrontendConfig
from keras_dyconv.models import build_dycnn_bilstm, model_arguments
from keras_dyconv.recipes import Recipe, model_kwargs
from keras_dyconv.results import Results, write_json

__all__ = [
    "architecture",
    "log_scores",
    "plot_confusion",
    "plot_curves",
    "versions",
    "write_run_folder",
]


def versions() -> dict[str, str]:
    """Python, Keras, backend, numpy and librosa versions (results.json "versions")."""
    import librosa

    return {
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": np.__version__,
        "librosa": librosa.__version__,
    }


def architecture(recipe: Recipe, config: FrontendConfig, num_classes: int) -> dict[str, Any]:
    """What results record of the model: every `build_dycnn_bilstm` argument and the
    parameter count."""
    kwargs = model_kwargs(recipe, config, num_classes)
    return {
        "arguments": model_arguments(**kwargs),
        "params": int(build_dycnn_bilstm(**kwargs).count_params()),
    }


def write_run_folder(
    results: Results, curves: dict[str, dict[str, list[float]]], out: Path
) -> None:
    """results.json and the plots of a cross-validated run."""
    write_json(out / "results.json", results)
    plot_confusion(results["pooled"], out / "confusion_matrix.png")
    plot_curves(curves, out / "training_curves.png")


def log_scores(results: Results, out: Path, log: Callable[[str], None]) -> None:
    """Log the pooled scores of a cross-validated run (and each tested corpus's in its own
    labels), as `run_experiment` ends."""
    log(
        f"pooled over {results['folds_run']} folds x {len(results['seeds'])} seeds: "
        f"WA {results['pooled']['wa']:.3f}  UA {results['pooled']['ua']:.3f}  -> {out}"
    )
    for corpus, both in results.get("corpus_scores", {}).items():
        own = both["own"]
        log(f"  {corpus} in its own labels: WA {own['wa']:.3f}  UA {own['ua']:.3f}")


def plot_confusion(summary: dict[str, Any], path: Path) -> None:
    """Row-normalised confusion matrix (rows = true class) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(summary["confusion"], dtype=np.float64)
    rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    labels = summary["labels"]
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(labels), 0.8 + 0.8 * len(labels)))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(
            j,
            i,
            int(v),
            ha="center",
            va="center",
            color="white" if rows[i, j] > 0.5 else "black",
            fontsize=8,
        )
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"WA {summary['wa']:.3f}  UA {summary['ua']:.3f}  (n={summary['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(curves: dict[str, dict[str, list[float]]], path: Path) -> None:
    """Training loss and validation UA per epoch, one line per fold/seed, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, history in curves.items():
        axes[0].plot(history.get("loss", []), label=name, lw=1)
        if history.get("val_ua"):
            axes[1].plot(history["val_ua"], label=name, lw=1)
    axes[0].set(title="training loss", xlabel="epoch")
    axes[1].set(title="validation UA (training speakers only)", xlabel="epoch")
    if len(curves) <= 12:
        axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
