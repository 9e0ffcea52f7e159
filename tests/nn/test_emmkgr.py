"""E-MMKGR (paper section 3.3): embeddings against dense references, losses against hand formulas."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from emmkgr_pyg.data.dataset import Modality
from emmkgr_pyg.graph.emmkg import build_emmkg
from emmkgr_pyg.graph.interaction import InteractionGraph
from emmkgr_pyg.graph.item_graph import dense_modal_features, mixed_knn_item_graph, modal_presence
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.graph.triples import kg_view
from emmkgr_pyg.nn.emmkgr import EMMKGR, item_item_graph
from emmkgr_pyg.nn.kge import KGLoss
from emmkgr_pyg.nn.recommender import KGBatch, LightGCN, Recommender

USER = torch.tensor([0, 0, 1, 2, 2, 2, 3])
ITEM = torch.tensor([0, 2, 1, 0, 3, 4, 4])


@pytest.fixture
def inter() -> InteractionGraph:
    return InteractionGraph(4, 5, USER, ITEM)


@pytest.fixture
def emmkgr_setup(tiny_dataset):
    inter = InteractionGraph.from_dataset(tiny_dataset)
    kg = build_emmkg(tiny_dataset, top_n=2, knn=KNNBuilder(progress=False))
    torch.manual_seed(0)
    model = EMMKGR(inter, kg, dim=6, num_layers=2, kg_layers=2, reg_weight=1e-2)
    return inter, kg, model


def test_emmkgr_item_is_interaction_plus_multimodal(emmkgr_setup, dense_lightgcn):
    inter, kg, model = emmkgr_setup
    emb = model.embed()
    user_in, item_in = model.cf.propagate()
    h_mm = model.encoder.propagate()
    assert set(emb.extra) == {"H_mm", "H_in_item"}
    torch.testing.assert_close(emb.user, user_in)
    torch.testing.assert_close(emb.extra["H_in_item"], item_in)
    torch.testing.assert_close(emb.extra["H_mm"], h_mm)
    torch.testing.assert_close(emb.item, item_in + h_mm[: inter.n_items])
    assert emb.item.shape == (8, 6) and emb.user.shape == (12, 6)
    assert h_mm.shape == (kg_view(kg).num_nodes, 6)
    # H^IN is LightGCN on the interactions (dense reference), scores are h_u . (H^IN_i + H^MM_i)
    ref_u, ref_i = dense_lightgcn(
        model.cf.ids.user.weight, model.cf.ids.item.weight, inter.user, inter.item, 2
    )
    assert (user_in.double() - ref_u).abs().max() < 1e-5 and (item_in.double() - ref_i).abs().max() < 1e-5
    torch.testing.assert_close(model.score(emb, torch.arange(3)), emb.user[:3] @ emb.item.t())
    torch.testing.assert_close(model.embed_kg().extra["H_mm"], h_mm)
    assert model.embed_kg().user is None


def test_emmkgr_bpr_and_reg_terms(emmkgr_setup):
    _, _, model = emmkgr_setup
    emb = model.embed()
    users, pos, neg = torch.tensor([0, 5, 7, 7]), torch.tensor([1, 2, 3, 6]), torch.tensor([4, 0, 0, 5])
    losses = model.rec_losses(emb, users, pos, neg)
    u = emb.user[users]
    expected = -F.logsigmoid((u * emb.item[pos]).sum(1) - (u * emb.item[neg]).sum(1)).mean()
    torch.testing.assert_close(losses["bpr"], expected)
    ego = [
        model.cf.ids.user.weight[users],
        model.cf.ids.item.weight[pos],
        model.cf.ids.item.weight[neg],
        model.encoder.item_emb.weight[pos],
        model.encoder.item_emb.weight[neg],
    ]
    torch.testing.assert_close(losses["reg"], 1e-2 * sum(e.pow(2).sum().sqrt() for e in ego) / 4)


def test_emmkgr_reg_with_k_negatives_reads_the_first_dim_columns_of_a_wider_kg(emmkgr_setup):
    inter, kg, _ = emmkgr_setup
    torch.manual_seed(0)
    model = EMMKGR(inter, kg, dim=4, kg_dim=8, reg_weight=1e-2)
    emb = model.embed()
    users, pos = torch.tensor([0, 5, 7]), torch.tensor([1, 2, 3])
    neg = torch.tensor([[4, 0], [0, 6], [5, 5]])
    reg = model.rec_losses(emb, users, pos, neg)["reg"]
    table = model.encoder.item_emb.weight
    ego = [
        model.cf.ids.user.weight[users],
        model.cf.ids.item.weight[pos],
        model.cf.ids.item.weight[neg],
        table[pos, :4],
        table[neg.reshape(-1), :4],  # every negative, the item rows' first dim (= 4) columns
    ]
    torch.testing.assert_close(reg, 1e-2 * sum(e.pow(2).sum().sqrt() for e in ego) / 3)


def test_emmkgr_kg_losses_by_hand(emmkgr_setup):
    inter, kg, _ = emmkgr_setup
    torch.manual_seed(1)
    model = EMMKGR(inter, kg, dim=4, kg_reg_weight=0.1, kg_loss={"variant": "logsigmoid", "gamma": 3.0})
    emb = model.embed()
    batch = KGBatch(
        head=torch.tensor([0, 8, 3]),
        rel=torch.tensor([0, 1, 2]),
        tail=torch.tensor([8, 1, 9]),
        neg_head=torch.tensor([[0, 0], [8, 8], [3, 3]]),
        neg_tail=torch.tensor([[10, 11], [2, 5], [12, 13]]),
    )
    losses = model.kg_losses(emb, batch)
    assert set(losses) == {"kg", "kg_reg"}
    h_mm = emb.extra["H_mm"].detach().double()
    theta = model.relations.phase.weight.detach().double()

    def dist(h, r, t):  # complex_l1 of h o e^{i theta} - t
        c = lambda v: torch.complex(v[:2], v[2:])
        return (
            (c(h_mm[h]) * torch.polar(torch.ones(2, dtype=torch.float64), theta[r]) - c(h_mm[t])).abs().sum()
        )

    total = 0.0
    for b in range(3):
        h, r, t = int(batch.head[b]), int(batch.rel[b]), int(batch.tail[b])
        term = -F.logsigmoid(3.0 - dist(h, r, t))
        for k in range(2):
            term = term - 0.5 * F.logsigmoid(
                dist(int(batch.neg_head[b, k]), r, int(batch.neg_tail[b, k])) - 3.0
            )
        total += term
    assert abs(losses["kg"].item() - total.item() / 3) < 1e-5
    assert isinstance(model.kg_loss_fn, KGLoss) and model.kg_norm == "complex_l1"


def test_emmkgr_kg_softmax_over_k_corruptions_by_hand(emmkgr_setup):
    """The ``softmax`` KG loss: each true triple against its K corruptions, -log of its share of
    exp(-d / tau), on the model's own RotatE distances."""
    inter, kg, _ = emmkgr_setup
    torch.manual_seed(2)
    model = EMMKGR(inter, kg, dim=4, kg_loss={"variant": "softmax", "temperature": 0.5})
    emb = model.embed()
    batch = KGBatch(
        head=torch.tensor([0, 8]),
        rel=torch.tensor([0, 1]),
        tail=torch.tensor([8, 1]),
        neg_head=torch.tensor([[0, 0, 0], [8, 8, 8]]),
        neg_tail=torch.tensor([[10, 11, 12], [2, 5, 3]]),
    )
    loss = model.kg_losses(emb, batch)["kg"].item()
    h_mm = emb.extra["H_mm"].detach().double()
    theta = model.relations.phase.weight.detach().double()

    def dist(h, r, t):
        c = lambda v: torch.complex(v[:2], v[2:])
        rot = torch.polar(torch.ones(2, dtype=torch.float64), theta[r])
        return float((c(h_mm[h]) * rot - c(h_mm[t])).abs().sum())

    total = 0.0
    for b in range(2):
        r = int(batch.rel[b])
        d_pos = dist(int(batch.head[b]), r, int(batch.tail[b]))
        d_neg = [dist(int(batch.neg_head[b, k]), r, int(batch.neg_tail[b, k])) for k in range(3)]
        den = math.exp(-d_pos / 0.5) + sum(math.exp(-d / 0.5) for d in d_neg)
        total += -math.log(math.exp(-d_pos / 0.5) / den)
    assert abs(loss - total / 2) < 1e-5


def test_emmkgr_kg_reg_is_on_head_and_tail_embeddings(emmkgr_setup):
    # EMMKGR's docstring: "kg_reg_weight: L2 weight on the KG batch's head and tail embeddings"
    inter, kg, _ = emmkgr_setup
    torch.manual_seed(1)
    model = EMMKGR(inter, kg, dim=4, kg_reg_weight=0.1)
    emb = model.embed()
    batch = KGBatch(
        torch.tensor([0, 8]),
        torch.tensor([0, 1]),
        torch.tensor([8, 1]),
        torch.tensor([[0], [8]]),
        torch.tensor([[9], [2]]),
    )
    h_mm = emb.extra["H_mm"].detach()
    norms = h_mm[batch.head].pow(2).sum().sqrt() + h_mm[batch.tail].pow(2).sum().sqrt()
    torch.testing.assert_close(model.kg_losses(emb, batch)["kg_reg"].detach(), 0.1 * norms / 2)


def test_emmkgr_export_embeddings(emmkgr_setup):
    _, kg, model = emmkgr_setup
    emb = model.embed()
    out = model.export_embeddings(emb)
    assert set(out) == {"item", "user", "H_mm_item", "H_mm_text", "H_mm_image"}
    assert out["H_mm_text"].shape == (kg["text"].num_nodes, 6)
    assert out["H_mm_image"].shape == (kg["image"].num_nodes, 6)
    torch.testing.assert_close(out["H_mm_item"], emb.extra["H_mm"][:8])
    torch.testing.assert_close(out["item"], emb.item)


def test_emmkgr_backward_reaches_every_part(emmkgr_setup):
    _, kg, model = emmkgr_setup
    view = kg_view(kg)
    emb = model.embed()
    users, pos, neg = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    rel = torch.arange(len(view.relations))
    sel = torch.stack([torch.nonzero(view.triples[1] == r)[0, 0] for r in rel])
    h, r, t = view.triples[:, sel]
    batch = KGBatch(h, r, t, h.view(-1, 1), torch.roll(t, 1).view(-1, 1))
    total = sum(model.rec_losses(emb, users, pos, neg).values()) + sum(model.kg_losses(emb, batch).values())
    total.backward()
    grads = {
        "cf.ids.user": model.cf.ids.user.weight.grad,
        "cf.ids.item": model.cf.ids.item.weight.grad,
        "encoder.item_emb": model.encoder.item_emb.weight.grad,
        "relations": model.relations.phase.weight.grad,
    }
    for i in range(len(model.encoder.proj)):
        grads[f"proj{i}.weight"] = model.encoder.proj[i].weight.grad
    for name, g in grads.items():
        assert g is not None and g.abs().sum() > 0, name


def test_emmkgr_needs_the_graph(inter):
    with pytest.raises(ValueError, match=r"EMMKGR: needs the E-MMKG \(kg=None\)"):
        EMMKGR(inter, None)
    assert EMMKGR.needs_features and EMMKGR.needs_modal_edges and EMMKGR.has_kg_loss
    assert not (LightGCN.needs_features or LightGCN.needs_modal_edges or LightGCN.has_kg_loss)


def dense_item_graph(kg) -> torch.Tensor:
    """Mean over modalities of D^-1/2 A D^-1/2 of the item graph each similar_<m> induces."""
    n = kg["item"].num_nodes
    mods = [s for s, rel, d in kg.edge_types if s == d != "item" and rel == f"similar_{s}"]
    total = torch.zeros(n, n, dtype=torch.float64)
    for m in mods:
        a = torch.zeros(n, n, dtype=torch.float64)
        items = kg[m].item
        for src, dst in kg[m, f"similar_{m}", m].edge_index.t():
            i, j = int(items[src]), int(items[dst])
            if i != j:
                a[j, i] = 1.0
        deg = a.sum(1)
        d = torch.where(deg > 0, deg.clamp(min=1e-12).pow(-0.5), torch.zeros_like(deg))
        total += d[:, None] * a * d[None, :] / len(mods)
    return total


def test_item_item_graph_matches_dense(emmkgr_setup):
    _, kg, _ = emmkgr_setup
    ei, ew = item_item_graph(kg)
    n = kg["item"].num_nodes
    got = torch.zeros(n, n, dtype=torch.float64).index_put((ei[1], ei[0]), ew.double(), accumulate=True)
    torch.testing.assert_close(got, dense_item_graph(kg), rtol=0, atol=1e-6)
    assert (ei[0] != ei[1]).all() and ei.size(1) == ew.numel()


@pytest.mark.parametrize("layers", [1, 2])
def test_emmkgr_item_graph_fusion(emmkgr_setup, layers):
    inter, kg, _ = emmkgr_setup
    torch.manual_seed(0)
    model = EMMKGR(inter, kg, dim=6, fusion="item_graph", item_graph_layers=layers)
    emb = model.embed()
    item_in, h_mm = emb.extra["H_in_item"].double(), emb.extra["H_mm"].double()
    a = dense_item_graph(kg)
    expected = item_in + torch.linalg.matrix_power(a, layers) @ (item_in + h_mm[: inter.n_items])
    assert (emb.item.double() - expected).abs().max() < 1e-5
    assert "item_graph_index" not in model.state_dict()


def test_item_graph_needs_modal_modal_edges(tiny_dataset):
    inter = InteractionGraph.from_dataset(tiny_dataset)
    kg = build_emmkg(tiny_dataset, modal_modal=False)
    with pytest.raises(ValueError, match="item_item_graph: the E-MMKG has no modal-modal edges"):
        EMMKGR(inter, kg, dim=4, fusion="item_graph")
    assert EMMKGR(inter, kg, dim=4).item_graph_layers == 0  # the paper's sum has no item graph


def _kg_gradients(model: EMMKGR, batch: KGBatch) -> tuple[Tensor, Tensor, float, float]:
    """The KG loss's gradient on each positive and each negative distance ``[B]``, ``[B, K]``,
    and the norms of its gradient on H^MM through the positives and through the negatives."""
    emb = model.embed_kg()
    h_mm = emb.extra["H_mm"]
    pos = model.kg_distance(emb, batch.head, batch.rel, batch.tail)
    neg = model.kg_distance(emb, batch.neg_head, batch.rel.unsqueeze(1), batch.neg_tail)
    loss = model.kg_loss_fn(pos, neg, batch.rel)
    g_pos, g_neg = torch.autograd.grad(loss, [pos, neg], retain_graph=True)
    via_pos = torch.autograd.grad(pos, h_mm, g_pos, retain_graph=True)[0]
    via_neg = torch.autograd.grad(neg, h_mm, g_neg)[0]
    return g_pos, g_neg, float(via_pos.norm()), float(via_neg.norm())


@pytest.mark.parametrize(
    "kg_loss",
    [None, {"variant": "logsigmoid"}],
    ids=["default pairwise", "logsigmoid gamma auto"],
)
def test_kg_loss_gives_positives_and_negatives_gradient_at_initialisation(kg_loss):
    """Issue 11: a fixed gamma far from the random-pair distance (RotatE's 12 on 32 complex dims,
    random pairs ~5-7 apart on text) leaves the positives almost no gradient. The default
    (pairwise, Eq. 5) and the log-sigmoid with gamma "auto" (per relation) start both sides near
    sigma(0) for every relation, image (wider features, larger distances) and text alike."""
    from emmkgr_pyg.data.encoders import HashingTextEncoder
    from emmkgr_pyg.data.features import encode_dataset, resolve_modalities
    from emmkgr_pyg.data.synthetic import SyntheticReader
    from emmkgr_pyg.train.samplers import KGNegativeSampler

    ds = SyntheticReader(n_users=80, n_items=60, n_interactions=600, image_dim=16).read(None, "grad")
    cfg = {"text_encoder": HashingTextEncoder(dim=64), "image_encoder": None, "include": None, "exclude": []}
    ds, _ = encode_dataset(ds, resolve_modalities(ds, cfg), progress=False)
    inter = InteractionGraph.from_dataset(ds)
    kg = build_emmkg(ds, top_n=5, knn=KNNBuilder(progress=False))
    view = kg_view(kg)
    batch = next(iter(KGNegativeSampler(view, batch_size=4096, generator=torch.Generator().manual_seed(0))))
    assert set(batch.rel.tolist()) == set(range(len(view.relations)))

    def gradients(**kg_loss):
        torch.manual_seed(0)
        return _kg_gradients(EMMKGR(inter, kg, dim=64, kg_loss=kg_loss or None), batch)

    g_pos, g_neg, via_pos, via_neg = gradients(**(kg_loss or {}))
    assert via_pos > 1e-3 and via_neg > 1e-3 and 0.3 < via_pos / via_neg < 3.0
    b = batch.head.numel()
    for rel, name in enumerate(view.relation_names()):
        m = batch.rel == rel
        # per triple, d loss / d distance = sigma(d+ - gamma_r) / B and -sigma(gamma_r - d-) / B
        # (pairwise: +-sigma(d+ - d-) / B)
        pos_share, neg_share = float(g_pos[m].abs().mean() * b), float(g_neg[m].abs().mean() * b)
        assert 0.25 < pos_share < 0.75 and 0.25 < neg_share < 0.75, (name, pos_share, neg_share)

    # gamma 12: text relations' positives get almost nothing, the image's negatives almost nothing
    g_pos, g_neg, _, _ = gradients(variant="logsigmoid", gamma=12.0)
    shares = {
        name: (float(g_pos[batch.rel == r].abs().mean() * b), float(g_neg[batch.rel == r].abs().mean() * b))
        for r, name in enumerate(view.relation_names())
    }
    assert shares["has_title"][0] < 0.01 and shares["has_title"][1] > 0.99
    assert shares["similar_image"][1] < 0.01


def dense_knn_mix(kg, n_items: int, k: int, weights: dict[str, float]) -> torch.Tensor:
    """The authors' ``mm_adj`` the obvious way: per modality cosine top-k over dense features
    (the item itself included), binary, D^-1/2 A D^-1/2, then the weighted sum."""
    total = torch.zeros(n_items, n_items, dtype=torch.float64)
    for m, x in dense_modal_features(kg, n_items).items():
        xn = x.double() / x.double().norm(dim=1, keepdim=True)
        a = torch.zeros(n_items, n_items, dtype=torch.float64)
        a.scatter_(1, (xn @ xn.t()).topk(k, dim=1).indices, 1.0)
        d = a.sum(1).pow(-0.5)
        total += weights[m] * d[:, None] * a * d[None, :]
    return total


@pytest.mark.parametrize("layers", [1, 2])
def test_emmkgr_authors_fusion_propagates_raw_kg_item_rows_over_the_knn_graph(tiny_dataset, layers):
    # every item has every modality: mean-filled duplicates would tie in the top-k
    rng = np.random.default_rng(1)
    n = tiny_dataset.n_items
    mods = {
        m: Modality(m, "feature", np.arange(n), features=rng.normal(size=(n, 6))) for m in ("text", "image")
    }
    dataset = replace(tiny_dataset, catalog=replace(tiny_dataset.catalog, modalities=mods))
    inter = InteractionGraph.from_dataset(dataset)
    kg = build_emmkg(dataset, top_n=2, knn=KNNBuilder(progress=False))
    torch.manual_seed(0)
    model = EMMKGR(
        inter,
        kg,
        dim=4,
        kg_dim=8,
        fusion="authors",
        item_graph="knn",
        item_graph_layers=layers,
        item_graph_k=3,
        item_graph_weights={"image": 0.1},
    )
    model.eval()
    emb = model.embed()
    item_in = emb.extra["H_in_item"].double()
    raw = model.encoder.item_emb.weight.detach().double()[:, :4]  # before KG propagation
    a = dense_knn_mix(kg, inter.n_items, 3, {"text": 0.9, "image": 0.1})
    expected = item_in + torch.linalg.matrix_power(a, layers) @ (item_in + raw)
    assert (emb.item.double() - expected).abs().max() < 1e-5
    assert emb.extra["H_mm"].shape[1] == 8  # evaluation still exports H_mm (search reads it)
    # training: the BPR pass does not propagate the KG, so no gradient reaches the projections
    model.train()
    emb = model.embed()
    assert "H_mm" not in emb.extra
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([1, 2]), torch.tensor([3, 4])
    sum(model.rec_losses(emb, users, pos, neg).values()).backward()
    assert all(p.grad is None for p in model.encoder.proj.parameters())
    assert model.encoder.item_emb.weight.grad[:, 4:].abs().sum() == 0
    assert model.encoder.item_emb.weight.grad[:, :4].abs().sum() > 0


def test_emmkgr_knn_item_graph_can_skip_items_lacking_a_modality(tiny_dataset):
    rng = np.random.default_rng(2)
    n = tiny_dataset.n_items
    has_text = np.array([i for i in range(n) if i % 3])  # every third item lacks text
    mods = {
        "text": Modality("text", "feature", has_text, features=rng.normal(size=(len(has_text), 6))),
        "image": Modality("image", "feature", np.arange(n), features=rng.normal(size=(n, 5))),
    }
    dataset = replace(tiny_dataset, catalog=replace(tiny_dataset.catalog, modalities=mods))
    inter = InteractionGraph.from_dataset(dataset)
    kg = build_emmkg(dataset, top_n=2, knn=KNNBuilder(progress=False))
    common = dict(
        dim=4, fusion="authors", item_graph="knn", item_graph_k=3, item_graph_weights={"image": 0.1}
    )
    skip = EMMKGR(inter, kg, item_graph_missing="skip", **common)
    ei, ew = mixed_knn_item_graph(
        dense_modal_features(kg, n), 3, {"text": 0.9, "image": 0.1}, present=modal_presence(kg, n)
    )
    assert torch.equal(skip.item_graph_index, ei) and torch.equal(skip.item_graph_weight, ew)
    lacking = torch.arange(0, n, 3)
    # an item without text takes its whole row from the image graph (weight 1, not 0.1)
    rows = torch.zeros(n).index_add(0, ei[1], ew)
    torch.testing.assert_close(rows, torch.ones(n))
    text_edges = ei[:, : ei.size(1) - 3 * n]  # the text graph comes first, then the image graph
    assert not torch.isin(text_edges, lacking).any()
    mean = EMMKGR(inter, kg, **common)  # the authors' rule: mean rows join the text graph
    assert mean.item_graph_index.size(1) == 6 * n and torch.isin(mean.item_graph_index[0], lacking).any()
    with pytest.raises(ValueError, match="item_graph_missing 'drop' is not one of"):
        EMMKGR(inter, kg, item_graph_missing="drop", **common)


def test_emmkgr_kg_dim_split(emmkgr_setup):
    inter, kg, _ = emmkgr_setup
    torch.manual_seed(0)
    model = EMMKGR(inter, kg, dim=4, kg_dim=8, reg_weight=0.5)
    emb = model.embed()
    h_mm = emb.extra["H_mm"]
    assert h_mm.shape == (kg_view(kg).num_nodes, 8) and emb.item.shape == (8, 4)
    torch.testing.assert_close(emb.item, emb.extra["H_in_item"] + h_mm[: inter.n_items, :4])
    assert model.relations.phase.weight.shape[1] == 4  # kg_dim / 2 complex phases
    users, pos, neg = torch.tensor([0, 3]), torch.tensor([1, 2]), torch.tensor([5, 6])
    rows = model.encoder.item_emb.weight[:, :4]
    ego = [model.cf.ids.user.weight[users], model.cf.ids.item.weight[pos], model.cf.ids.item.weight[neg]]
    ego += [rows[pos], rows[neg]]
    reg = model.rec_losses(emb, users, pos, neg)["reg"]
    torch.testing.assert_close(reg, 0.5 * sum(e.pow(2).sum().sqrt() for e in ego) / 2)
    with pytest.raises(ValueError, match=r"EMMKGR: kg_dim \(2\) must be at least dim \(4\)"):
        EMMKGR(inter, kg, dim=4, kg_dim=2)
    with pytest.raises(ValueError, match="EMMKGR: fusion 'concat' is not one of"):
        EMMKGR(inter, kg, dim=4, fusion="concat")


def test_emmkgr_rotate_init_draws_the_kg_item_table_in_the_rotate_range(emmkgr_setup):
    inter, kg, _ = emmkgr_setup
    torch.manual_seed(0)
    model = EMMKGR(inter, kg, dim=4, kg_dim=8, kg_init="rotate", kg_loss={"variant": "margin", "gamma": 12.0})
    w = model.encoder.item_emb.weight.detach()
    bound = (12.0 + 2.0) / 4  # (gamma + 2) / (kg_dim / 2)
    assert w.abs().max() <= bound and w.abs().max() > 0.8 * bound
    assert w.min() < -0.8 * bound and w.std() == pytest.approx(bound / math.sqrt(3), rel=0.25)
    model.reset_parameters()
    assert model.encoder.item_emb.weight.abs().max() <= bound
    xavier = EMMKGR(inter, kg, dim=4, kg_dim=8).encoder.item_emb.weight
    assert xavier.abs().max() <= math.sqrt(6 / (8 + 8))


def test_emmkgr_prunes_its_interaction_graph(tiny_dataset):
    inter = InteractionGraph.from_dataset(tiny_dataset)
    kg = build_emmkg(tiny_dataset, top_n=2, knn=KNNBuilder(progress=False))
    model = EMMKGR(inter, kg, dim=6, prune_ratio=0.8)
    assert model.cf.prune_ratio == 0.8
    model.train()
    model.embed()
    first = model.cf.pruned_edge_index
    assert first.size(1) == 2 * max(1, int(inter.user.numel() * 0.2))  # both directions
    model.on_epoch_start()
    assert model.cf.pruned_edge_index is None
    assert EMMKGR(inter, kg, dim=6).cf.prune_ratio == 0.0


def test_emmkgr_modal_bpr_is_bpr_against_each_modality_node_by_hand(tiny_dataset):
    inter = InteractionGraph.from_dataset(tiny_dataset)
    kg = build_emmkg(tiny_dataset, top_n=2, knn=KNNBuilder(progress=False))
    torch.manual_seed(0)
    model = EMMKGR(inter, kg, dim=6, kg_dim=8, fusion="item_graph", modal_bpr_weight=0.3)
    model.train()
    emb = model.embed()
    users, pos, neg = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 2, 3, 7]), torch.tensor([4, 5, 1, 3])
    got = model.rec_losses(emb, users, pos, neg)
    base = Recommender.rec_losses(model, emb, users, pos, neg)  # bpr and reg alone
    assert set(got) == {"bpr", "reg", "modal_bpr"}
    assert torch.equal(got["bpr"], base["bpr"]) and torch.equal(got["reg"], base["reg"])
    # by hand: the node of item i in modality m is the row of kg[m] whose item is i (none: zeros)
    h_mm, offset, want = emb.extra["H_mm"].double(), inter.n_items, 0.0
    for m in model.encoder.modalities:
        owner = kg[m].item.tolist()

        def vec(i, owner=owner, offset=offset):
            return h_mm[offset + owner.index(i), :6] if i in owner else torch.zeros(6, dtype=torch.float64)

        terms = []
        for u, p, n in zip(users.tolist(), pos.tolist(), neg.tolist(), strict=True):
            hu = emb.user[u].double()
            terms.append(-torch.nn.functional.logsigmoid(hu @ vec(p) - hu @ vec(n)))
        want += torch.stack(terms).mean()
        offset += len(owner)
    assert got["modal_bpr"].item() == pytest.approx(0.3 * want.item(), rel=1e-6)
    assert 0 < got["modal_bpr"].item()
    # the term reaches the projections of the modality nodes
    model.zero_grad()
    got["modal_bpr"].backward()
    assert all(p.weight.grad is not None and p.weight.grad.abs().sum() > 0 for p in model.encoder.proj)
    assert "modal_bpr" not in EMMKGR(inter, kg, dim=6, fusion="item_graph").rec_losses(emb, users, pos, neg)
    from emmkgr_pyg.nn.sampled import interaction_model

    with pytest.raises(ValueError, match="modal_bpr reads every item's modality nodes"):
        interaction_model(EMMKGR(inter, kg, dim=6, modal_bpr_weight=0.1))  # sampled training refuses it
    plain = EMMKGR(inter, kg, dim=6)
    assert interaction_model(plain) is plain.cf  # without the term: the model's own LightGCN
    for bad in ({"modal_bpr_weight": -1.0}, {"modal_bpr_weight": 0.1, "fusion": "authors"}):
        with pytest.raises(ValueError, match="modal_bpr_weight="):
            EMMKGR(inter, kg, dim=6, **bad)


def test_emmkgr_align_is_infonce_of_each_projected_modality_node_against_its_item_by_hand(tiny_dataset):
    inter = InteractionGraph.from_dataset(tiny_dataset)
    kg = build_emmkg(tiny_dataset, top_n=2, knn=KNNBuilder(progress=False))
    torch.manual_seed(0)
    model = EMMKGR(inter, kg, dim=4, align_weight=0.5, align_temperature=0.2, align_batch=100)
    emb = model.embed_kg()
    batch = KGBatch(
        head=torch.tensor([0, 8]),
        rel=torch.tensor([0, 1]),
        tail=torch.tensor([8, 1]),
        neg_head=torch.tensor([[0], [8]]),
        neg_tail=torch.tensor([[10], [2]]),
    )
    losses = model.kg_losses(emb, batch)
    assert set(losses) == {"kg", "align"}
    plain = EMMKGR(inter, kg, dim=4)
    plain.load_state_dict(model.state_dict())
    assert torch.equal(plain.kg_losses(emb, batch)["kg"], losses["kg"])  # the KG term is untouched
    # by hand: every node is in the batch (align_batch > nodes), so the order does not change the
    # loss; each modality node's item read off the ('<m>', '<m>_of', 'item') edges
    h = F.normalize(emb.extra["H_mm"].double(), dim=-1)
    want = []
    for i, m in enumerate(model.encoder.modalities):
        src, dst = kg[m, f"{m}_of", "item"].edge_index
        owner = torch.empty(kg[m].num_nodes, dtype=torch.long)
        owner[src] = dst
        z = model.encoder.project(i, model.encoder.features(i), reduced=True).double()
        cos = F.normalize(z, dim=-1) @ h[owner].T
        # -log softmax of the own item's cosine among every node's item, by the definition
        terms = [-(cos[r, r] / 0.2 - torch.logsumexp(cos[r] / 0.2, 0)) for r in range(len(z))]
        want.append(torch.stack(terms).mean())
    assert losses["align"].item() == pytest.approx(0.5 * torch.stack(want).mean().item(), rel=1e-5)
    model.zero_grad()
    losses["align"].backward()
    assert all(p.weight.grad is not None and p.weight.grad.abs().sum() > 0 for p in model.encoder.proj)
    # a batch smaller than the nodes: a random subset, still a finite positive loss
    small = EMMKGR(inter, kg, dim=4, align_weight=1.0, align_batch=2)
    assert 0 < small.kg_losses(small.embed_kg(), batch)["align"].item() < math.inf
    assert "align" not in plain.kg_losses(emb, batch)  # default 0: the paper's E-MMKGR
    for bad in ({"align_weight": -1.0}, {"align_temperature": 0.0}, {"align_batch": 0}):
        with pytest.raises(ValueError, match="align_weight="):
            EMMKGR(inter, kg, dim=4, **bad)


def test_emmkgr_user_graph_adds_softmax_weighted_co_occurring_users(emmkgr_setup):
    """``user_graph_k``: h_u + sum_v beta_uv h_v over u's k users with most common training items,
    beta the softmax of the counts, against a dense U x U reference; items untouched."""
    inter, kg, _ = emmkgr_setup
    torch.manual_seed(3)
    plain = EMMKGR(inter, kg, dim=4)
    torch.manual_seed(3)
    model = EMMKGR(inter, kg, dim=4, user_graph_k=2)
    with torch.no_grad():
        base, emb = plain.embed(), model.embed()
    U = inter.n_users
    R = torch.zeros(U, inter.n_items)
    R[inter.user, inter.item] = 1.0
    C = R @ R.T
    C.fill_diagonal_(0)
    beta = torch.zeros(U, U)
    for u in range(U):
        order = sorted((v for v in range(U) if C[u, v] > 0), key=lambda v: (-C[u, v], v))[:2]
        if order:
            beta[u, order] = torch.softmax(C[u, order], 0)
    assert (beta > 0).any()
    torch.testing.assert_close(emb.user, base.user + beta @ base.user)
    torch.testing.assert_close(emb.item, base.item)
    with pytest.raises(ValueError, match="user_graph_k=-1"):
        EMMKGR(inter, kg, dim=4, user_graph_k=-1)
    from emmkgr_pyg.nn.sampled import interaction_model

    with pytest.raises(ValueError, match="the user graph and user_side read every user"):
        interaction_model(model)


@pytest.mark.parametrize("fusion", ["sum", "item_graph"])
def test_emmkgr_user_side_adds_the_mean_multimodal_part_of_the_users_items(emmkgr_setup, fusion):
    """``user_side``: h_u + mean over u's training items of what the fusion adds to H^IN_item."""
    inter, kg, _ = emmkgr_setup
    torch.manual_seed(4)
    plain = EMMKGR(inter, kg, dim=4, fusion=fusion)
    torch.manual_seed(4)
    model = EMMKGR(inter, kg, dim=4, fusion=fusion, user_side=True)
    emb = model.embed()
    with torch.no_grad():
        base = plain.embed()
    part = (base.item - base.extra["H_in_item"]).double()  # the fusion's multimodal term
    R = torch.zeros(inter.n_users, inter.n_items, dtype=torch.float64)
    R[inter.user, inter.item] = 1.0
    mean = (R @ part) / R.sum(1, keepdim=True).clamp(min=1)
    assert mean.abs().sum() > 0
    torch.testing.assert_close(emb.user.detach().double(), base.user.double() + mean)
    torch.testing.assert_close(emb.item.detach(), base.item)
    emb.user.sum().backward()  # the users' term reaches the E-MMKG encoder
    assert model.encoder.proj[0].weight.grad.abs().sum() > 0
    # the mean is over distinct items: an interaction given twice does not count twice
    twice = InteractionGraph(
        inter.n_users,
        inter.n_items,
        torch.cat([inter.user, inter.user[:3]]),
        torch.cat([inter.item, inter.item[:3]]),
    )
    torch.manual_seed(4)
    again = EMMKGR(twice, kg, dim=4, fusion=fusion, user_side=True)
    torch.testing.assert_close(again.user_side_adj.to_dense(), model.user_side_adj.to_dense())
    from emmkgr_pyg.nn.sampled import interaction_model

    with pytest.raises(ValueError, match="the user graph and user_side read every user"):
        interaction_model(model)
