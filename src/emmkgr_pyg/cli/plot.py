"""``emmkgr-plot run_dir=<run>``: the learned item space beside the raw features (the paper's
qualitative visualisation).

Two t-SNE projections of the same items, coloured by category (``level`` of the path, the top
category by default): left the run's item embeddings (``embedding``, :math:`H^{MM}` by default),
right their raw features (each modality's features L2-normalised, missing ones zero, concatenated
and scaled by :math:`1/\\sqrt{M}`). Each panel's title gives its category purity@10, the share of an
item's 10 nearest neighbours (cosine, in the full space, before projection) that share its category.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

from ..data.dataset import MMDataset
from ..graph.knn import normalize_rows
from ..runs import load_run
from ..runs.search import run_embeddings
from ..search import SearchError
from . import CONFIG_PATH, USER_ERRORS, fail

log = logging.getLogger("emmkgr-plot")
OTHER = "other"


def raw_features(dataset: MMDataset) -> np.ndarray:
    r"""Every modality's L2-normalised features side by side (zeros where an item lacks one),
    scaled by :math:`1/\sqrt{M}`, ``[N, \sum_m F_m]``."""
    blocks = []
    for mod in dataset.modalities.values():
        block = np.zeros((dataset.n_items, mod.features.shape[1]), dtype=np.float32)
        block[mod.item_index] = normalize_rows(mod.features)
        blocks.append(block)
    return np.concatenate(blocks, axis=1) / np.sqrt(len(blocks))


def category_labels(categories: list[list[str]], level: int, n_colours: int | None = None) -> np.ndarray:
    """The category at ``level`` of each path; beyond the ``n_colours`` most frequent (when given),
    ``other``."""
    labels = [path[level] if len(path) > level else "(none)" for path in categories]
    keep = {c for c, _ in Counter(labels).most_common(n_colours)}
    return np.array([c if c in keep else OTHER for c in labels], dtype=object)


def purity_at_k(x: np.ndarray, labels: np.ndarray, k: int = 10, batch: int = 2048) -> float:
    """Mean share of each row's ``k`` nearest other rows (cosine) with the same label."""
    x = normalize_rows(x)
    k = min(k, len(x) - 1)
    same = 0.0
    for s in range(0, len(x), batch):
        sim = x[s : s + batch] @ x.T
        sim[np.arange(sim.shape[0]), np.arange(s, s + sim.shape[0])] = -np.inf
        nbr = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        same += float((labels[nbr] == labels[s : s + batch, None]).sum())
    return same / (len(x) * k)


def tsne(x: np.ndarray, perplexity: float, seed: int, max_iter: int = 1000) -> np.ndarray:
    """A 2-D t-SNE (cosine distances, PCA initialisation) of the rows of ``x``."""
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, max(2.0, (len(x) - 1) / 3.0))
    return TSNE(
        n_components=2,
        perplexity=perplexity,
        metric="cosine",
        init="pca",
        max_iter=max_iter,
        random_state=seed,
    ).fit_transform(normalize_rows(x))


def plot(panels: list[tuple[str, np.ndarray]], labels: np.ndarray, title: str, out: str | Path) -> Path:
    """Scatter plots side by side, one colour per label (``other`` in grey), saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(set(labels) - {OTHER}) + ([OTHER] if OTHER in set(labels) else [])
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    colours = {c: ("lightgrey" if c == OTHER else cmap(i % cmap.N)) for i, c in enumerate(names)}
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 6.5), squeeze=False)
    for ax, (name, xy) in zip(axes[0], panels, strict=True):
        for c in names:
            sel = labels == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=colours[c], label=c, alpha=0.8, lw=0)
        ax.set_title(name, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    handles, names_ = axes[0][0].get_legend_handles_labels()
    ncol = min(5, len(names))
    fig.legend(handles, names_, loc="lower center", ncol=ncol, markerscale=3, fontsize=9)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    plt.close(fig)
    return out


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="plot")
def main(cfg: DictConfig) -> None:

    try:
        if not cfg.run_dir:
            raise SearchError("run_dir is not set: emmkgr-plot run_dir=<a run of emmkgr-train>.")
        learned = run_embeddings(cfg.run_dir, cfg.embedding)
        run = load_run(cfg.run_dir)
    except (SearchError, *USER_ERRORS) as e:
        fail("emmkgr-plot", e)
    dataset = run.dataset
    raw = raw_features(dataset)
    categories = category_labels(dataset.catalog.categories, int(cfg.level))
    labels = category_labels(dataset.catalog.categories, int(cfg.level), int(cfg.n_colours))
    rows = np.arange(dataset.n_items)
    if len(rows) > cfg.max_items:
        rng = np.random.default_rng(cfg.seed)
        rows = np.sort(rng.choice(len(rows), cfg.max_items, replace=False))
    panels = []
    for name, x in ((f"learned: {cfg.embedding}", learned[rows]), ("raw features", raw[rows])):
        purity = purity_at_k(x, categories[rows])
        log.info("%s: category purity@10 %.3f; t-SNE of %d items", name, purity, len(rows))
        xy = tsne(x, cfg.perplexity, cfg.seed, int(cfg.max_iter))
        panels.append((f"{name} (category purity@10 {purity:.3f})", xy))
    title = (
        f"{dataset.name}, {run.results.get('model')} run {Path(cfg.run_dir).name}: t-SNE of "
        f"{len(rows)} items, coloured by category level {cfg.level}"
    )
    out = plot(panels, labels[rows], title, cfg.out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
