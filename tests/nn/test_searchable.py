import pytest
import torch
import torch.nn.functional as F

from emmkgr_pyg.graph.emmkg import build_emmkg
from emmkgr_pyg.graph.interaction import InteractionGraph
from emmkgr_pyg.graph.knn import KNNBuilder
from emmkgr_pyg.nn.recommender import KGBatch
from emmkgr_pyg.nn.searchable import SearchableEMMKGR

BATCH = KGBatch(
    head=torch.tensor([0, 8]),
    rel=torch.tensor([0, 1]),
    tail=torch.tensor([8, 1]),
    neg_head=torch.tensor([[0], [8]]),
    neg_tail=torch.tensor([[10], [2]]),
)


def _model(tiny_dataset, **kw):
    inter = InteractionGraph.from_dataset(tiny_dataset)
    kg = build_emmkg(tiny_dataset, top_n=2, knn=KNNBuilder(progress=False))
    torch.manual_seed(0)
    return SearchableEMMKGR(inter, kg, dim=4, **kw), kg


def test_alignment_term_by_hand(tiny_dataset):
    model, kg = _model(tiny_dataset, align_weight=0.5, align_temperature=0.2, align_batch=100)
    emb = model.embed_kg()
    torch.manual_seed(3)
    losses = model.kg_losses(emb, BATCH)
    assert set(losses) == {"kg", "align"}
    # every node is in the batch (align_batch > nodes), so the order does not change the loss
    h = F.normalize(emb.extra["H_mm"], dim=-1)
    want = []
    for i, m in enumerate(model.encoder.modalities):
        z = F.normalize(model.encoder.project(i, model.encoder.features(i), reduced=True), dim=-1)
        logits = z @ h[kg[m].item.long()].T / 0.2
        want.append(F.cross_entropy(logits, torch.arange(len(z))))
    assert losses["align"].item() == pytest.approx(0.5 * torch.stack(want).mean().item(), rel=1e-5)
    losses["align"].backward()
    assert model.encoder.proj[0].weight.grad.abs().sum() > 0  # it trains f_proj


def test_zero_weight_is_emmkgr_and_bad_temperature_is_refused(tiny_dataset):
    model, _ = _model(tiny_dataset, align_weight=0.0)
    assert set(model.kg_losses(model.embed_kg(), BATCH)) == {"kg"}
    with pytest.raises(ValueError, match="align_temperature -1"):
        _model(tiny_dataset, align_temperature=-1)
