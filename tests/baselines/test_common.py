"""The shared pieces of the baselines."""

from __future__ import annotations

import torch

from emmkgr_pyg.baselines.common import ModalFeatures


def test_modal_features_same_rows_and_gradients_whichever_way_they_are_projected():
    g = torch.Generator().manual_seed(0)
    feats = {"text": torch.randn(6, 5, generator=g), "image": torch.randn(6, 3, generator=g)}
    model = ModalFeatures(feats, dim=4)
    few = torch.tensor([0, 4, 4])  # fewer than the table's rows: those rows are projected
    many = torch.randint(6, (5, 3), generator=g)  # more: the table is projected once, then indexed
    for m, x in feats.items():
        lin = model.proj[m]
        for items in (few, many):
            model.zero_grad()
            out = model(m, items)
            expected = x[items] @ lin.weight.T + lin.bias
            assert out.shape == (*items.shape, 4)
            torch.testing.assert_close(out, expected)
            out.pow(2).sum().backward()
            grad = model.tables[m].weight.grad.clone()
            # the same loss on the dense reference: rows projected one by one
            table = model.tables[m].weight.detach().clone().requires_grad_(True)
            ref = torch.stack([table[i] @ lin.weight.T + lin.bias for i in items.reshape(-1)])
            ref.pow(2).sum().backward()
            torch.testing.assert_close(grad, table.grad)
        torch.testing.assert_close(model(m), x @ lin.weight.T + lin.bias)
