"""A training-free reference for the recommenders: EASE on the interactions, a content kNN over the
modality features, and the two summed, each chosen on validation and tested once.

    python benchmarks/linear_reference.py [--dataset amazon_office] [--overrides key=value ...]

- **EASE** (Steck, WWW'19): the item-item matrix :math:`B = I - P\\,\\mathrm{diag}(1 / \\mathrm{diag}(P))`,
  :math:`P = (X^\\top X + \\lambda I)^{-1}` of the training interactions :math:`X`; a user's scores
  are :math:`x_u B`.
- **content kNN**: per modality, each item's top-``k`` cosine neighbours among the items that have
  the modality (itself excluded; an item without it has no neighbours there), the mean over
  modalities :math:`C`; a user's scores are :math:`x_u C^\\top`, the summed similarity of each item
  to the user's training items.
- **EASE + content**: :math:`x_u B + \\beta\\, x_u C^\\top`.
- **GF-CF linear**: the interaction prior of ``train.interaction_prior`` alone,
  :math:`x_u \\tilde R^\\top \\tilde R` (Shen et al., CIKM'21; no setting).

Each is ranked with the trainer's own evaluator (``RankingEvaluator``: every item, training items
masked). Its settings (lambda, k, beta, from the grids below) are the best validation Recall@20;
test is computed for that setting only. Dense ``N x N`` matrices: refused above ``--max-items``.
Prints a table and writes ``benchmarks/results/linear_reference_<dataset>.json``. No seeds: nothing
is drawn.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from torch import Tensor

from emmkgr_pyg.data.dataset import TEST, VALID
from emmkgr_pyg.data.prepared import prepare_dataset
from emmkgr_pyg.eval.ranking import RankingEvaluator
from emmkgr_pyg.graph.interaction import InteractionGraph
from emmkgr_pyg.nn.score_prior import InteractionPrior
from emmkgr_pyg.utils import markdown_table, write_json

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATASET_ARGS = {"amazon_office": [f"dataset.root={SHARED / 'amazon-office-2014'}"]}
LAMBDAS = (50.0, 100.0, 200.0, 500.0, 1000.0)
KS = (5, 10, 20, 40, 80)
BETAS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


def ease(x: Tensor, lam: float) -> Tensor:
    """EASE's item-item matrix ``[N, N]`` (zero diagonal) of the interactions ``x [U, N]``."""
    gram = x.T @ x
    p = torch.linalg.inv(gram + lam * torch.eye(gram.size(0), dtype=x.dtype))
    b = -p / torch.diagonal(p)
    b.fill_diagonal_(0.0)
    return b


def content_knn(features: list[tuple[Tensor, Tensor]], n_items: int, k: int) -> Tensor:
    """The mean over modalities of each one's top-``k`` cosine graph ``[N, N]`` (row: an item,
    columns: its neighbours), from ``(item ids, feature rows)`` per modality."""
    out = torch.zeros(n_items, n_items)
    for items, rows in features:
        z = torch.nn.functional.normalize(rows.float(), dim=1)
        sim = z @ z.T
        sim.fill_diagonal_(-torch.inf)
        kk = min(k, items.numel() - 1)
        val, idx = torch.topk(sim, kk, dim=1)
        out[items.unsqueeze(1).expand(-1, kk), items[idx]] += val / len(features)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="amazon_office")
    p.add_argument("--overrides", nargs="*", default=[], help="Hydra overrides of the dataset/modality")
    p.add_argument("--max-items", type=int, default=20000, help="refuse larger catalogues (dense N x N)")
    args = p.parse_args()
    with initialize_config_module("emmkgr_pyg.conf", version_base="1.3"):
        overrides = [f"dataset={args.dataset}", *DATASET_ARGS.get(args.dataset, []), *args.overrides]
        cfg = compose("train", overrides=overrides)
    ds, _ = prepare_dataset(cfg.dataset, cfg.modality, cfg.cache_dir, progress=False)
    if ds.n_items > args.max_items:
        raise SystemExit(
            f"linear_reference: {ds.n_items} items in '{ds.name}' need dense {ds.n_items}^2 matrices; "
            f"raise --max-items (now {args.max_items}) if the memory is there."
        )
    inter = InteractionGraph.from_dataset(ds)
    x = torch.zeros(ds.n_users, ds.n_items)
    x[inter.user, inter.item] = 1.0
    valid, test = (RankingEvaluator(inter, *ds.interactions.part(s)) for s in (VALID, TEST))
    features = [
        (torch.as_tensor(m.item_index, dtype=torch.long), torch.as_tensor(m.features))
        for m in ds.modalities.values()
    ]

    def scorer(xb: Tensor | None, xc: Tensor | None, beta: float):
        def score(users: Tensor) -> Tensor:
            s = xb[users] if xb is not None else 0.0
            return s + beta * xc[users] if xc is not None else s

        return score

    # every user's scores, once per lambda and per k: x B and x C^T
    eases = {lam: x @ ease(x, lam) for lam in LAMBDAS}
    graphs = {k: x @ content_knn(features, ds.n_items, k).T for k in KS}
    gfcf = InteractionPrior(inter)(torch.arange(ds.n_users))
    candidates = {
        "GF-CF linear": [((None, None, 0.0), (gfcf, None, 0.0))],
        "EASE": [((lam, None, 0.0), (eases[lam], None, 0.0)) for lam in LAMBDAS],
        "content kNN": [((None, k, 1.0), (None, graphs[k], 1.0)) for k in KS],
        "EASE + content kNN": [
            ((lam, k, beta), (eases[lam], graphs[k], beta))
            for lam, k, beta in itertools.product(LAMBDAS, KS, BETAS)
        ],
    }
    out, rows = {}, []
    for name, grid in candidates.items():
        scored = [(valid.evaluate(scorer(*parts))["Recall@20"], setting, parts) for setting, parts in grid]
        v, (lam, k, beta), parts = max(scored, key=lambda t: t[0])
        t = test.evaluate(scorer(*parts))
        out[name] = {
            "setting": {"lambda": lam, "k": k, "beta": beta},
            "valid/Recall@20": v,
            **{f"test/{m}": t[m] for m in ("Recall@10", "Recall@20", "NDCG@20")},
            "grid_size": len(grid),
        }
        rows.append(
            [name, f"lambda {lam}, k {k}, beta {beta}", f"{v:.4f}"]
            + [f"{t[m]:.4f}" for m in ("Recall@10", "Recall@20", "NDCG@20")]
        )
    head = [
        "method",
        "setting (chosen on valid R@20)",
        "valid R@20",
        "test R@10",
        "test R@20",
        "test NDCG@20",
    ]
    print(f"## {ds.name}: {ds.n_users} users, {ds.n_items} items, modalities {list(ds.modalities)}\n")
    print(markdown_table(head, rows))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"linear_reference_{args.dataset}.json"
    write_json(path, {"dataset": ds.name, "overrides": args.overrides, "results": out})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
