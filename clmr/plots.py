"""Figures written next to a run (matplotlib without a display): per-tag scores of a probe."""

from __future__ import annotations

import os
import warnings

import matplotlib
import numpy as np

matplotlib.use("Agg")
# A file name in a title may hold characters the font lacks (emoji): drawn as boxes, not warned about.
warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
from matplotlib import pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from clmr.atomic import atomic_path  # noqa: E402


def per_tag_figure(
    per_tag: dict[str, dict], title: str = "", skipped: list[dict] = (), n_tracks: int | None = None
) -> Figure:
    """Horizontal bars of ROC-AUC and PR-AUC per tag, best ROC-AUC on top, macro averages as dashed lines.

    With `n_tracks` (test tracks), a tick on each PR-AUC bar marks its chance level: the tag's share
    of positive tracks.
    """
    tags = sorted(per_tag, key=lambda t: per_tag[t]["roc_auc"])
    height = max(2.5, 0.28 * len(tags) + 1.5)
    fig, ax = plt.subplots(figsize=(7.5, height))
    ys = range(len(tags))
    roc = [per_tag[t]["roc_auc"] for t in tags]
    pr = [per_tag[t]["pr_auc"] for t in tags]
    ax.barh([y + 0.2 for y in ys], roc, height=0.4, label="ROC-AUC", color="#4c72b0")
    ax.barh([y - 0.2 for y in ys], pr, height=0.4, label="PR-AUC", color="#dd8452")
    if tags:
        ax.axvline(sum(roc) / len(roc), color="#4c72b0", linestyle="--", linewidth=1)
        ax.axvline(sum(pr) / len(pr), color="#dd8452", linestyle="--", linewidth=1)
    ax.axvline(0.5, color="grey", linewidth=0.5)
    if n_tracks and tags:
        ax.scatter(
            [per_tag[t]["positives"] / n_tracks for t in tags],
            [y - 0.2 for y in ys],
            marker="|",
            s=60,
            color="black",
            linewidths=1.5,
            label="PR-AUC of chance",
            zorder=3,
        )
    ax.set_yticks(list(ys), [f"{t} ({per_tag[t]['positives']})" for t in tags], fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("score (dashed: macro average; grey line: ROC-AUC of chance)")
    ax.set_ylabel("tag (positive test tracks)")
    ax.legend(loc="lower right", fontsize=8)
    note = (
        f"\nnot scored (no positive or no negative test track): {', '.join(s['tag'] for s in skipped)}"
        if skipped
        else ""
    )
    ax.set_title(title + note, fontsize=9)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120, close: bool = True) -> None:
    """Write a PNG atomically (and release the figure unless `close` is False)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    if close:
        plt.close(fig)


def taggram_figure(chunk_probs, tag_names: list[str], times_s, title: str = "") -> Figure:
    """Tags over time, as musicnn draws them: a row per tag, a column per chunk, colour the probability."""
    probs = np.asarray(chunk_probs, dtype=float).T  # (tags, chunks)
    n_tags, n_chunks = probs.shape
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 0.12 * n_chunks + 3)), max(2.5, 0.22 * n_tags + 1.2)))
    image = ax.imshow(probs, aspect="auto", interpolation="nearest", cmap="viridis", vmin=0, vmax=1)
    ax.set_yticks(range(n_tags), tag_names, fontsize=8)
    ticks = np.arange(0, n_chunks, max(1, int(np.ceil(n_chunks / 12))))
    ax.set_xticks(ticks, [f"{int(t // 60)}:{int(t % 60):02d}" for t in np.asarray(times_s)[ticks]], fontsize=8)
    ax.set_xlabel("time (centre of each chunk)")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="probability", fraction=0.03, pad=0.02)
    fig.tight_layout()
    return fig
