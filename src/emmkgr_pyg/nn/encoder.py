r"""The E-MMKG encoder :math:`g_{enc}` (paper section 3.2, Eq. 4)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..graph.emmkg import ITEM
from ..graph.knn import principal_basis
from ..graph.triples import KGView, kg_view
from .conv import LightGCNConv

PROJECTIONS = ("linear", "mlp")
#: rows projected at a time without autograd (evaluation, export): bounds the float32 copies
PROJECT_CHUNK_ROWS = 65536


def make_projection(in_dim: int, out_dim: int, kind: str = "linear", hidden: int | None = None):
    """:math:`f_{proj}`: a linear map, or a two-layer MLP with a GELU."""
    if kind == "linear":
        return torch.nn.Linear(in_dim, out_dim)
    if kind == "mlp":
        hidden = hidden or max(out_dim, min(in_dim, 4 * out_dim))
        return torch.nn.Sequential(
            torch.nn.Linear(in_dim, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, out_dim)
        )
    raise ValueError(f"make_projection: kind '{kind}' is not one of {PROJECTIONS}.")


def reduce_rows(x: Tensor, basis: Tensor) -> Tensor:
    """``x @ basis`` in ``x``'s dtype (float16 features stay float16), computed in float32
    :data:`PROJECT_CHUNK_ROWS` rows at a time: no float32 copy of the whole matrix."""
    out = torch.empty(x.size(0), basis.size(1), dtype=x.dtype)
    with torch.no_grad():
        for s in range(0, x.size(0), PROJECT_CHUNK_ROWS):
            out[s : s + PROJECT_CHUNK_ROWS] = x[s : s + PROJECT_CHUNK_ROWS].float() @ basis
    return out


class EMMKGEncoder(torch.nn.Module):
    r"""Projects every modality node into the shared space, gives items learnable id embeddings,
    and propagates over the E-MMKG with :class:`LightGCNConv`:

    .. math::
        \mathbf{E}^{MM} = [\mathbf{E}^{i}; \mathbf{Z}^{m_1}; \dots], \quad
        \mathbf{z}^{m}_j = f^{m}_{proj}(\hat{\mathbf{m}}_j), \quad
        \mathbf{H}^{MM} = \frac{1}{L+1} \sum_{l=0}^{L} \tilde{\mathbf{A}}^{l} \mathbf{E}^{MM}

    The graph structure is fixed at construction (its normalised adjacency is built once);
    node features stay frozen buffers unless ``train_features`` (the authors train them). Node
    types without features after the modalities (entity nodes, ``graph.entities``) get learnable
    embeddings like the items: :math:`\mathbf{E}^{MM}` is then
    :math:`[\mathbf{E}^{i}; \mathbf{Z}^{m_1}; \dots; \mathbf{E}^{e_1}; \dots]`.

    Args:
        data: the E-MMKG (``item`` nodes and one node type per modality with features ``x``).
        dim: the shared embedding size :math:`d` (default ``64``).
        num_layers: :math:`L` (default ``2``).
        projection: ``"linear"`` or ``"mlp"`` (default ``"linear"``).
        proj_norm: scale each projected modality node to this L2 norm, or ``None`` to leave it
            (the authors L2-normalise; default ``None``).
        train_features: make the modality features trainable (default ``False``).
        add_self_loops: add self-loops to :math:`A` (the authors' code; default ``False``).
        backend: sparse backend of :class:`LightGCNConv` (default ``"auto"``).
        feature_dim: reduce frozen features wider than this to their top principal directions
            once, at construction; :math:`f_{proj}` then maps the reduced features (a linear
            :math:`f_{proj}` becomes one restricted to that subspace). Saves the per-step cost of
            projecting e.g. 4096-d image vectors. ``"auto"``: ``4 * dim`` for frozen features
            (none with ``train_features``). ``None`` keeps them (default ``None``). Frozen float16
            features stay float16 (half the memory); rows are cast when projected.
        item_init_bound: draw the item table uniformly in :math:`\pm` this bound (the RotatE
            reference code and the authors: :math:`(\gamma + 2) / (d/2)`), or ``None`` for Xavier
            uniform (default ``None``).

    Shapes:
        - :meth:`forward`: ``{node type: [num nodes of type, d]}``
        - :meth:`propagate`: ``[total nodes, d]`` in the block order of :attr:`view`
    """

    def __init__(
        self,
        data: HeteroData,
        dim: int = 64,
        num_layers: int = 2,
        projection: str = "linear",
        proj_norm: float | None = None,
        train_features: bool = False,
        add_self_loops: bool = False,
        backend: str = "auto",
        feature_dim: int | str | None = None,
        item_init_bound: float | None = None,
    ) -> None:
        super().__init__()
        if feature_dim == "auto":
            feature_dim = None if train_features else 4 * dim
        if feature_dim is not None and train_features:
            raise ValueError(
                "EMMKGEncoder: feature_dim reduces frozen features; it cannot be combined with "
                "train_features=True (set one of them)."
            )
        self.dim, self.num_layers = dim, num_layers
        self.item_init_bound = item_init_bound
        self.projection, self.proj_norm = projection, proj_norm
        self.view: KGView = kg_view(data)
        if self.view.node_types[0] != ITEM:
            raise ValueError("EMMKGEncoder: the graph's first node type must be 'item'.")
        types = self.view.node_types[1:]
        self.modalities = [t for t in types if "x" in data[t]]
        self.entities = [t for t in types if "x" not in data[t]]
        if types != self.modalities + self.entities:
            raise ValueError(
                f"EMMKGEncoder: node types without features {self.entities} must follow the "
                f"modalities {self.modalities} (build the graph with build_emmkg)."
            )
        self.n_items = int(data[ITEM].num_nodes)
        self.item_emb = torch.nn.Embedding(self.n_items, dim)
        self.entity_sizes = [int(data[t].num_nodes) for t in self.entities]
        self.entity_emb = torch.nn.Embedding(sum(self.entity_sizes), dim) if self.entities else None
        self.proj = torch.nn.ModuleList()
        for i, m in enumerate(self.modalities):
            x = data[m].x
            x = x if x.dtype == torch.float16 and not train_features else x.float()
            basis = None
            if feature_dim is not None and x.size(1) > feature_dim:
                basis = torch.from_numpy(principal_basis(x.numpy(), feature_dim))
                x = reduce_rows(x, basis)
            # raw features of new content (queries, cold-start items) go through the same basis
            self.register_buffer(f"basis_{i}", basis)
            if train_features:
                self.register_parameter(f"feat_{i}", torch.nn.Parameter(x.clone()))
            else:  # frozen and not saved in checkpoints: they come with the graph
                self.register_buffer(f"feat_{i}", x, persistent=False)
            self.proj.append(make_projection(x.size(1), dim, projection))
        self.register_buffer("edge_index", self.view.edge_index, persistent=False)
        self.conv = LightGCNConv(cached=True, add_self_loops=add_self_loops, backend=backend)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for table in (self.item_emb, self.entity_emb):
            if table is None or table.weight.numel() == 0:
                continue
            if self.item_init_bound is None:
                torch.nn.init.xavier_uniform_(table.weight)
            else:
                torch.nn.init.uniform_(table.weight, -self.item_init_bound, self.item_init_bound)
        for p in self.proj:
            for layer in p.modules():
                if isinstance(layer, torch.nn.Linear):
                    layer.reset_parameters()
        self.conv.reset_parameters()

    def features(self, i: int) -> Tensor:
        return getattr(self, f"feat_{i}")

    def input_dim(self, i: int) -> int:
        """Width of modality ``i``'s raw features (what :meth:`project` takes; wider than the stored
        features when ``feature_dim`` reduced them)."""
        basis = getattr(self, f"basis_{i}")
        return int(basis.size(0) if basis is not None else self.features(i).size(1))

    def project(self, i: int, x: Tensor, reduced: bool = False) -> Tensor:
        """:math:`f^{m}_{proj}` of modality ``i`` (position in :attr:`modalities`) on raw
        features, or on already reduced ones (``reduced=True``, the stored node features).
        Without autograd, :data:`PROJECT_CHUNK_ROWS` rows at a time (the same values)."""
        if not torch.is_grad_enabled() and x.size(0) > PROJECT_CHUNK_ROWS:
            # evaluation: a float32 copy of a block of rows at a time, not of the whole matrix
            # (1.5 GiB per 384-d modality at a million float16 rows)
            return torch.cat(
                [
                    self.project(i, x[s : s + PROJECT_CHUNK_ROWS], reduced)
                    for s in range(0, x.size(0), PROJECT_CHUNK_ROWS)
                ]
            )
        basis = getattr(self, f"basis_{i}")
        x = x.float()  # float16 features; a no-op for float32
        if basis is not None and not reduced:
            x = x @ basis
        z = self.proj[i](x)
        if self.proj_norm is not None:
            z = self.proj_norm * torch.nn.functional.normalize(z, dim=-1)
        return z

    def initial_embeddings(self) -> Tensor:
        r""":math:`\mathbf{E}^{MM}`, ``[total nodes, d]``."""
        parts = [self.item_emb.weight]
        parts += [self.project(i, self.features(i), reduced=True) for i in range(len(self.modalities))]
        if self.entity_emb is not None:
            parts.append(self.entity_emb.weight)
        return torch.cat(parts, dim=0)

    def propagate(self, x0: Tensor | None = None) -> Tensor:
        r""":math:`\mathbf{H}^{MM}` for every node, the mean of the ``L + 1`` layers."""
        h = self.initial_embeddings() if x0 is None else x0
        out = h
        for _ in range(self.num_layers):
            h = self.conv(h, self.edge_index)
            out = out + h
        return out / (self.num_layers + 1)

    def split(self, h: Tensor) -> dict[str, Tensor]:
        """Cut a ``[total nodes, d]`` tensor into ``{node type: embeddings}``."""
        sizes = [self.n_items] + [self.features(i).size(0) for i in range(len(self.modalities))]
        sizes += self.entity_sizes
        return dict(zip(self.view.node_types, torch.split(h, sizes), strict=True))

    def forward(self) -> dict[str, Tensor]:
        return self.split(self.propagate())
