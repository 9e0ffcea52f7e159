"""Fixtures the baseline tests share: the synthetic shop, a hand-made graph with partly missing
modalities, the random-ranking recall and a short training run."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import HeteroData

from emmkgr_pyg.data.dataset import VALID
from emmkgr_pyg.data.encoders import HashingTextEncoder
from emmkgr_pyg.data.features import encode_dataset, resolve_modalities
from emmkgr_pyg.data.synthetic import SyntheticReader
from emmkgr_pyg.eval.ranking import RankingEvaluator
from emmkgr_pyg.graph import InteractionGraph, build_emmkg
from emmkgr_pyg.train import TrainConfig, Trainer


def _shop(n_users: int, n_items: int, n_interactions: int, name: str):
    """The synthetic shop (title, description, review as hashed text; image) and its E-MMKG:
    ``(dataset, InteractionGraph, kg)``."""
    ds = SyntheticReader(n_users=n_users, n_items=n_items, n_interactions=n_interactions, image_dim=32).read(
        None, name
    )
    cfg = {"text_encoder": HashingTextEncoder(dim=64), "image_encoder": None, "include": None, "exclude": []}
    ds, _ = encode_dataset(ds, resolve_modalities(ds, cfg), progress=False)
    return ds, InteractionGraph.from_dataset(ds), build_emmkg(ds, modal_modal=False)


@pytest.fixture(scope="session")
def synthetic_shop():
    """``synthetic_shop(n_users, n_items, n_interactions, name)``: a shop of another size."""
    return _shop


@pytest.fixture(scope="module")
def tiny():
    """The synthetic shop with 200 users, 150 items and 2,000 interactions."""
    return _shop(200, 150, 2000, "tiny")


@pytest.fixture
def hand_graph() -> tuple[InteractionGraph, HeteroData]:
    """6 users, 5 items (item 4 has no interaction); three modalities, two missing some items."""
    g = torch.Generator().manual_seed(0)
    user = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4, 5, 5, 5])
    item = torch.tensor([0, 1, 1, 2, 3, 0, 2, 3, 1, 0, 2, 3])
    kg = HeteroData()
    kg["item"].num_nodes = 5
    for m, items, d in (("text", [0, 1, 2, 3, 4], 6), ("image", [1, 2, 4], 3), ("audio", [0, 3], 4)):
        kg[m].x = torch.randn(len(items), d, generator=g)
        kg[m].item = torch.tensor(items)
    return InteractionGraph(6, 5, user, item), kg


def _random_recall(evaluator: RankingEvaluator, k: int) -> float:
    """Expected Recall@k of a uniformly random ranking of each user's non-training items."""
    n_train = evaluator.train_indptr[1:] - evaluator.train_indptr[:-1]
    candidates = (evaluator.n_items - n_train[evaluator.users]).double()
    return float((k / candidates).clamp(max=1).mean())


@pytest.fixture(scope="session")
def random_recall():
    """``random_recall(evaluator, k)``: the expected Recall@k of a uniformly random ranking."""
    return _random_recall


def _train(make_model, data, **config):
    """Builds ``make_model(inter, kg)`` after ``torch.manual_seed(0)`` and trains it on ``data``
    (``(dataset, inter, kg)``) with ``TrainConfig(progress=False, seed=0, ks=(20,), **config)``,
    validating on the dataset's validation part. Returns ``(model, state, valid)``."""
    ds, inter, kg = data
    valid = RankingEvaluator(inter, *ds.interactions.part(VALID), ks=(20,))
    torch.manual_seed(0)
    model = make_model(inter, kg)
    cfg = TrainConfig(progress=False, seed=0, ks=(20,), **config)
    state = Trainer(model, inter, valid, None, cfg).fit()
    return model, state, valid


@pytest.fixture(scope="session")
def train():
    """``train(make_model, data, **config)`` -> ``(model, state, valid)``: a short training run."""
    return _train
