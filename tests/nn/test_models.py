"""One template for every model (PyKEEN's habit): each config in ``conf/model/*.yaml`` (read from the
installed ``emmkgr_pyg.conf``; a new yaml is checked without editing this file) binds to its class,
builds on a tiny shop, trains one backward pass, re-draws on ``reset_parameters()``, repeats under a
seed, and keeps the promises of its flags (``needs_features``, ``needs_modal_edges``, ``has_kg_loss``).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import emmkgr_pyg.conf
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import get_class

from emmkgr_pyg.data.encoders import HashingTextEncoder
from emmkgr_pyg.data.features import encode_dataset, resolve_modalities
from emmkgr_pyg.data.synthetic import SyntheticReader
from emmkgr_pyg.graph import InteractionGraph, build_emmkg
from emmkgr_pyg.graph.triples import kg_view
from emmkgr_pyg.nn import Recommender
from emmkgr_pyg.runs.compose import build_model
from emmkgr_pyg.train.samplers import KGNegativeSampler

MODELS = sorted(p.stem for p in (Path(emmkgr_pyg.conf.__file__).parent / "model").glob("*.yaml"))

#: trainable parameters that ``reset_parameters()`` leaves as they are, on purpose (name patterns)
KEPT_ON_RESET = {
    # the modality feature tables start from the features themselves (MMRec's from_pretrained)
    "bm3": r"features\.tables\..+",
    "freedom": r"features\.tables\..+",
    "lattice": r"features\.tables\..+",
}
#: trainable parameters whose gradient is zero by construction (name patterns)
ZERO_GRAD = {
    # the projection's bias cancels in the BPR difference u.(W x_i + b) - u.(W x_j + b)
    "freedom": r"features\.proj\.[^.]+\.bias",
}


def listed(table: dict[str, str], name: str, param: str) -> bool:
    return name in table and re.fullmatch(table[name], param) is not None


@pytest.fixture(scope="module")
def shop():
    """40 users, 30 items; three hashed texts and an image: ``(inter, kg without modal-modal edges,
    kg with them)``."""
    ds = SyntheticReader(n_users=40, n_items=30, n_interactions=300, image_dim=16).read(None, "template")
    cfg = {"text_encoder": HashingTextEncoder(dim=32), "image_encoder": None, "include": None, "exclude": []}
    ds, _ = encode_dataset(ds, resolve_modalities(ds, cfg), progress=False)
    inter = InteractionGraph.from_dataset(ds)
    return inter, build_emmkg(ds, modal_modal=False), build_emmkg(ds, modal_modal=True)


def model_config(name: str):
    with initialize_config_module(config_module="emmkgr_pyg.conf", version_base="1.3"):
        return compose(config_name="train", overrides=[f"model={name}", "cache_dir=/nowhere"])


def make(name: str, shop, seed: int = 0, modal_edges: bool | None = None) -> Recommender:
    """The model of config ``name`` on the shop's graph, as a run builds it (the graph has its
    modal-modal edges when the model propagates over them, unless ``modal_edges`` says)."""
    cfg = model_config(name)
    cls = get_class(cfg.model.net._target_)
    inter, kg_plain, kg_full = shop
    modal_edges = cls.needs_modal_edges if modal_edges is None else modal_edges
    kg = (kg_full if modal_edges else kg_plain) if cls.needs_features else None
    torch.manual_seed(seed)
    return build_model(cfg, inter, kg)


def batch(inter: InteractionGraph, n: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(inter.user.numel(), generator=g)[:n]
    return inter.user[pick], inter.item[pick], torch.randint(0, inter.n_items, (n,), generator=g)


def kg_batch(kg):
    view = kg_view(kg)
    pick = torch.randperm(view.triples.size(1), generator=torch.Generator().manual_seed(0))[:64]
    head, rel, tail = view.triples[:, pick]
    sampler = KGNegativeSampler(view, generator=torch.Generator().manual_seed(0))
    return sampler.corrupt(head, rel, tail)


def test_every_model_config_is_found():
    assert {"lightgcn", "emmkgr", "bm3"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_config_binds_to_the_model_signature(name):
    net = model_config(name).model.net
    cls = get_class(net._target_)
    assert issubclass(cls, Recommender)
    kwargs = {k: v for k, v in net.items() if k != "_target_"}
    inspect.signature(cls).bind(inter=None, kg=None, **kwargs)  # a misspelt key raises TypeError


@pytest.mark.parametrize("name", MODELS)
def test_builds_and_scores_every_item(name, shop):
    inter = shop[0]
    model = make(name, shop).eval()
    with torch.no_grad():
        emb = model.embed()
        scores = model.score(emb, torch.tensor([0, 3, 7]))
    assert emb.user.size(0) == inter.n_users and emb.item.size(0) == inter.n_items
    assert emb.user.size(1) == emb.item.size(1)
    assert scores.shape == (3, inter.n_items) and torch.isfinite(scores).all()
    exported = model.export_embeddings(emb)
    assert exported["item"].shape == emb.item.shape


@pytest.mark.parametrize("name", MODELS)
def test_one_backward_pass_gives_finite_gradients(name, shop):
    inter, _, kg_full = shop
    model = make(name, shop).train()
    emb = model.embed()
    losses = model.rec_losses(emb, *batch(inter))
    if model.has_kg_loss:
        losses.update(model.kg_losses(emb, kg_batch(kg_full)))
    assert losses and all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert params
    for n, p in params.items():
        assert p.grad is not None, f"{name}: no gradient reaches {n}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient of {n}"
        zero = listed(ZERO_GRAD, name, n)
        assert (p.grad.abs().sum() == 0) == zero, f"{name}: gradient of {n} is {'not ' * zero}zero"


@pytest.mark.parametrize("name", MODELS)
def test_reset_parameters_redraws_every_parameter(name, shop):
    model = make(name, shop)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.123)  # no initialisation draws this value
    model.reset_parameters()
    for n, p in model.named_parameters():
        if p.requires_grad:
            untouched = bool((p == 0.123).all())
            assert untouched == listed(KEPT_ON_RESET, name, n), (
                f"{name}: reset_parameters {'skips' if untouched else 'redraws'} {n}"
            )


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_embeddings(name, shop):
    def item_embeddings(seed):
        model = make(name, shop, seed=seed).eval()
        with torch.no_grad():
            return model.embed().item

    first = item_embeddings(0)
    assert torch.equal(first, item_embeddings(0))
    assert not torch.equal(first, item_embeddings(1))


@pytest.mark.parametrize("name", MODELS)
def test_flags_keep_their_promises(name, shop):
    inter, kg_plain, kg_full = shop
    cls = get_class(model_config(name).model.net._target_)
    if cls.needs_features:
        with pytest.raises(ValueError, match="kg=None"):
            build_model(model_config(name), inter, None)
    else:
        assert isinstance(build_model(model_config(name), inter, None), cls)

    model = make(name, shop, modal_edges=True).train()
    assert bool(model.kg_losses(model.embed(), kg_batch(kg_full))) == cls.has_kg_loss

    # without needs_modal_edges the model must not read the kNN edges a run then leaves out
    if not cls.needs_modal_edges:
        with torch.no_grad():
            full = make(name, shop, modal_edges=True).eval().embed().item
            plain = make(name, shop, modal_edges=False).eval().embed().item
        torch.testing.assert_close(full, plain, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_negatives_as_one_column_give_the_one_negative_losses(name, shop):
    """``train.num_negatives``: every model reads negatives ``[B, K]``; one column gives the losses
    of ``[B]``, and the softmax over several is named by its form and finite."""
    inter = shop[0]
    model = make(name, shop).train()
    users, pos, neg = batch(inter)
    emb = model.embed()

    def losses(negatives):
        torch.manual_seed(1)  # the same draws for a model that samples inside its losses
        return model.rec_losses(emb, users, pos, negatives)

    one, column = losses(neg), losses(neg.unsqueeze(1))
    assert one.keys() == column.keys()
    for k in one:
        torch.testing.assert_close(column[k], one[k], msg=f"{name}: term {k}")
    model.set_rec_loss("softmax", 0.5)
    many = losses(torch.stack([neg, neg.flip(0), (neg + 1) % inter.n_items], 1))
    assert ("softmax" in many) == ("bpr" in one) and "bpr" not in many
    assert all(v.dim() == 0 and torch.isfinite(v) for v in many.values())
