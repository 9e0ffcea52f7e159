r"""The optimiser of a :class:`~emmkgr_pyg.train.Trainer` (``train.optimizer``).

- ``"adam"``: :class:`torch.optim.Adam` over every parameter (the field's protocol).
- ``"sparse_adam"``: the ID tables (every :class:`torch.nn.Embedding` of the model) take sparse
  gradients and are updated by :class:`torch.optim.SparseAdam`, the rest by Adam. A step then
  touches only the rows the batch used (lazy Adam: a row's moments advance only when it is in a
  batch), instead of every row of tables that grow with the catalogue: at a million items the dense
  Adam step and ``zero_grad`` over 3.5M x 64 rows took about half of a sampled step. It needs every
  training-time read of a table to go through the module (``table(ids)``), which is what sampled
  propagation (``train.propagation=sampled``) does; full-graph propagation reads whole tables, so
  the pair is refused.
- ``"auto"``: ``sparse_adam`` under sampled propagation, ``adam`` under full.
"""

from __future__ import annotations

from typing import Any

import torch

OPTIMIZERS = ("adam", "sparse_adam", "auto")


def resolve_optimizer(name: str, propagation: str) -> str:
    """The optimiser ``train.optimizer`` names under ``train.propagation`` (``auto`` resolved)."""
    if name not in OPTIMIZERS:
        raise ValueError(f"train.optimizer: '{name}' is not one of {OPTIMIZERS}.")
    if name == "auto":
        return "sparse_adam" if propagation == "sampled" else "adam"
    if name == "sparse_adam" and propagation != "sampled":
        raise ValueError(
            "train.optimizer=sparse_adam needs train.propagation=sampled (full-graph propagation "
            "reads whole ID tables, so their gradients are dense); set train.optimizer=adam."
        )
    return name


def sparse_tables(model: torch.nn.Module) -> list[torch.nn.Embedding]:
    """The model's trainable :class:`torch.nn.Embedding` tables (ID embeddings, relation phases)."""
    return [m for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.weight.requires_grad]


class SparseDenseAdam:
    """SparseAdam over the (sparse-gradient) ID tables and Adam over every other parameter, with
    the interface the trainer uses (``zero_grad``, ``step``, ``state_dict``, ``load_state_dict``).

    Args:
        model: the model; its :func:`sparse_tables` are switched to sparse gradients.
        params: the parameters to train (the tables' weights among them go to SparseAdam).
        lr: learning rate of both.
    """

    def __init__(self, model: torch.nn.Module, params: list[torch.nn.Parameter], lr: float) -> None:
        tables = sparse_tables(model)
        for t in tables:
            t.sparse = True
        table_ids = {id(t.weight) for t in tables}
        sparse = [p for p in params if id(p) in table_ids]
        dense = [p for p in params if id(p) not in table_ids]
        self.optimizers: list[torch.optim.Optimizer] = []
        if sparse:
            self.optimizers.append(torch.optim.SparseAdam(sparse, lr=lr))
        if dense:
            self.optimizers.append(torch.optim.Adam(dense, lr=lr))
        self._sparse = sparse

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.optimizers:
            o.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for p in self._sparse:
            if p.grad is not None and not p.grad.is_sparse:
                raise RuntimeError(
                    "train.optimizer=sparse_adam: an ID table got a dense gradient (the model "
                    "read its whole weight during training); set train.optimizer=adam."
                )
        for o in self.optimizers:
            o.step()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state.get("optimizers") if isinstance(state, dict) else None
        if saved is None or len(saved) != len(self.optimizers):
            raise ValueError("optimizer state was saved by another train.optimizer; start a new run folder.")
        for o, s in zip(self.optimizers, saved, strict=True):
            o.load_state_dict(s)


def make_optimizer(
    model: torch.nn.Module,
    params: list[torch.nn.Parameter],
    name: str,
    propagation: str,
    lr: float,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer | SparseDenseAdam:
    """The optimiser ``train.optimizer=name`` under ``train.propagation`` over ``params``."""
    if resolve_optimizer(name, propagation) == "adam":
        for t in sparse_tables(model):  # dense again, should an earlier trainer have made them sparse
            t.sparse = False
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if weight_decay:
        raise ValueError(
            "train.optimizer=sparse_adam: train.weight_decay is not supported by SparseAdam; "
            "use the models' L2 term (model.net.reg_weight) or train.optimizer=adam."
        )
    return SparseDenseAdam(model, params, lr)
