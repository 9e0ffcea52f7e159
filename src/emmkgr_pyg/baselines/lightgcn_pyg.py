r"""PyG's stock :class:`torch_geometric.nn.models.LightGCN` behind the :class:`Recommender` interface."""

from __future__ import annotations

from torch import Tensor
from torch_geometric.data import HeteroData
from torch_geometric.nn.models import LightGCN as PyGLightGCN

from ..graph.interaction import InteractionGraph
from ..nn.recommender import Embeddings, Recommender


class LightGCNPyG(Recommender):
    r"""LightGCN (He et al., SIGIR 2020) as PyG ships it, so that it runs through our batched,
    masked evaluation (``LightGCN.recommend`` scores the whole user x item matrix and does not mask
    training items) and can be compared with :class:`emmkgr_pyg.nn.LightGCN`:

    .. math::
        [\mathbf{H}^u; \mathbf{H}^i] = \sum_{l=0}^{L} \alpha_l \tilde{\mathbf{A}}^{l}
        [\mathbf{E}^u; \mathbf{E}^i], \qquad \alpha_l = \frac{1}{L+1}

    computed by ``get_embedding(edge_index)`` (``LGConv`` layers, which normalise the edge list on
    every call). Users are nodes ``0..U-1``, items ``U..U+N-1``. Loss: BPR and the L2 term on the
    batch's layer-0 embeddings, as our LightGCN. One difference: PyG initialises the single
    ``(U+N) x d`` table with Xavier, whose scale depends on ``U+N``; ours draws the user and item
    tables separately. Given the same weights the two give the same embeddings.

    Args:
        inter: the training interaction graph.
        kg: unused (accepted so that every model has one signature).
        dim: embedding size (default ``64``).
        num_layers: :math:`L` (default ``2``).
        reg_weight: L2 weight on the batch's layer-0 embeddings (default ``1e-4``).
        reg_form: the L2 term's form (:func:`~emmkgr_pyg.nn.blocks.embedding_reg`; default
            ``"mmrec"``).

    Shapes:
        - :meth:`embed`: ``user`` ``[U, dim]``, ``item`` ``[N, dim]``
    """

    def __init__(
        self,
        inter: InteractionGraph,
        kg: HeteroData | None = None,
        dim: int = 64,
        num_layers: int = 2,
        reg_weight: float = 1e-4,
        reg_form: str = "mmrec",
    ) -> None:
        super().__init__(inter, reg_weight, reg_form)
        self.dim, self.num_layers = dim, num_layers
        self.net = PyGLightGCN(inter.num_nodes, dim, num_layers)
        self.register_buffer("edge_index", inter.edge_index(), persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.net.reset_parameters()

    def embed(self) -> Embeddings:
        out = self.net.get_embedding(self.edge_index)
        return Embeddings(out[: self.n_users], out[self.n_users :])

    def ego_embeddings(self, users: Tensor, pos: Tensor, neg: Tensor) -> list[Tensor]:
        table = self.net.embedding
        return [table(users), table(pos + self.n_users), table(neg + self.n_users)]
