"""Attention heatmaps: one head with its tokens on both axes, or every head of a layer as a
grid of small maps. Layers and heads are numbered from 0 in titles, as in file names.
`target`: a path, or any binary file object (the run report draws into memory)."""

from __future__ import annotations

import math

from finetune.storage import run_dir as rd
from finetune.views.plots import _pyplot

_LABELLED_UP_TO = 40  # tokens; beyond this, tick labels would overlap
_GRID_LABELLED_UP_TO = 24  # the same in a grid's smaller maps


def single_head(weights, queries: list[str], keys: list[str], title: str, target):
    """weights: [query, key] numpy array."""
    plt = _pyplot()
    width = max(4.0, 0.35 * len(keys) + 2)
    height = max(4.0, 0.35 * len(queries) + 2)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=float(weights.max()))
    _label(ax, queries, keys)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(rd.unlinked(target), dpi=100, format="png")
    plt.close(fig)
    return target


def head_grid(weights, queries: list[str], keys: list[str], title: str, target):
    """weights: [head, query, key]; one small map per head, each on its own colour scale."""
    plt = _pyplot()
    heads = weights.shape[0]
    columns = math.ceil(math.sqrt(heads))
    rows = math.ceil(heads / columns)
    side = 2.2 if len(keys) <= 12 else 3.6
    fig, axes = plt.subplots(rows, columns, figsize=(side * columns + 0.5, side * rows + 0.8), squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.axis("off")
            continue
        ax.imshow(weights[h], cmap="viridis", vmin=0.0, vmax=float(weights[h].max()))
        ax.set_title(f"head {h}", fontsize=9)
        if max(len(keys), len(queries)) <= _GRID_LABELLED_UP_TO:
            _label(ax, queries, keys, fontsize=6, axis_names=False)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(rd.unlinked(target), dpi=100, format="png")
    plt.close(fig)
    return target


def _label(ax, queries, keys, fontsize=None, axis_names=True):
    if len(keys) <= _LABELLED_UP_TO:
        ax.set_xticks(range(len(keys)), keys, rotation=90, fontsize=fontsize)
    if len(queries) <= _LABELLED_UP_TO:
        ax.set_yticks(range(len(queries)), queries, fontsize=fontsize)
    if axis_names:
        ax.set_xlabel("attended to (key)")
        ax.set_ylabel("attending (query)")
