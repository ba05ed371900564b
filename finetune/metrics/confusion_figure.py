"""The confusion matrix of classification predictions as a PNG (the classification task writes
it beside its results), and matplotlib set up to draw files only, which views/ draws with too."""

from __future__ import annotations

from pathlib import Path

from finetune.storage import run_dir as rd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def confusion_matrix_png(records: list[dict], labels: list[str], target: Path) -> Path:
    """Rows: true label, columns: predicted label, cells: counts."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    size = max(4.5, 0.6 * len(labels) + 2)  # room for the title
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        [r["label"] for r in records], [r["predicted"] for r in records], labels=labels,
        ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({len(records)} examples)")
    fig.tight_layout()
    fig.savefig(rd.unlinked(target), dpi=100)
    plt.close(fig)
    return target
