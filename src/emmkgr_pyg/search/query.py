r"""Queries into the item space of a trained E-MMKGR run (paper section 3.3, Eq. 7).

A query is content of one modality kind: text (a search phrase), or a feature vector where the
run has a feature (image) modality. It is encoded with the same :math:`f^{m}_{enc}` as modality
:math:`m` (Eq. 1) and mapped into the item space in one of two ways (``search.mapping``):

- ``paper``: through that modality's projection, :math:`\mathbf{h}_q = f^{m}_{proj}(f^{m}_{enc}(q))`
  (section 3.3). With several query modalities (``query_modality: all``), the mean of the
  L2-normalised projections.
- ``propagated``: the query becomes a new item whose only content is the query, attached to the
  trained E-MMKG like any item (:class:`InductivePropagator`): its modality node links to its top-n
  most similar nodes of that modality (Eq. 2) and the trained encoder's propagation (Eq. 4) gives
  its :math:`\mathbf{h}^{MM}`, which lives where the items' :math:`\mathbf{H}^{MM}` live.

The same propagation embeds cold-start items (:mod:`.cold_start`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import faiss
import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from ..data.encoders import Encoder
from ..graph.emmkg import ITEM, ITEM_ITEM, item_modal_relation, modal_modal_relation
from ..graph.knn import normalize_rows
from ..nn.encoder import EMMKGEncoder
from .index import SearchError

MAPPINGS = ("paper", "propagated")
#: ``search.query_modality`` besides a modality name
QUERY_MODALITY_CHOICES = ("all", "first")


class InductivePropagator:
    r"""The :math:`\mathbf{h}^{MM}` of new items attached to a trained E-MMKG, without retraining.

    A new item :math:`q` with content in modalities :math:`M_q` gets one node per modality,
    :math:`\mathbf{z}^{m}_q = f^{m}_{proj}(\hat{\mathbf{m}}_q)`, and an item node with
    :math:`\mathbf{e}_q = \mathbf{0}` (it has no learned id embedding). It is wired as the trained
    graph wires items: item-modal edges :math:`q - m_q`, modal-modal edges from :math:`m_q` to its
    top-n nodes :math:`N_m(q)` of modality :math:`m` by cosine of raw features (Eq. 2), and, when
    the graph has them, item-item edges to the items owning :math:`N_m(q)`; every new edge both
    ways. With degrees :math:`d` of the graph with :math:`q` added (an existing node :math:`j` gains
    the edges to :math:`q`'s nodes), the new nodes propagate as Eq. 4:

    .. math::
        \mathbf{h}^{(l)}_s = \sum_{t \in N(s),\, t \text{ new}}
            \frac{\mathbf{h}^{(l-1)}_t}{\sqrt{d_s d_t}}
          + \sum_{j \in N(s),\, j \text{ existing}} \frac{\mathbf{H}^{(l-1)}_j}{\sqrt{d_s d_j}},
        \qquad
        \mathbf{h}^{MM}_q = \frac{1}{L+1} \sum_{l=0}^{L} \mathbf{h}^{(l)}_q

    where :math:`\mathbf{H}^{(l)}` are the existing nodes' layers in the trained graph, kept fixed.
    Without item-item edges and with :math:`L \le 2` (the default) this is exactly the item's
    embedding in the graph with :math:`q` added (its layer-2 term reaches existing nodes only at
    layer 0); for deeper encoders it neglects :math:`q`'s effect on the existing nodes. Items of one
    batch are embedded independently (never attached to each other).

    Args:
        encoder: the trained :class:`EMMKGEncoder`.
        kg: the E-MMKG it was trained on (its features find the neighbours; its ``item`` vectors
            name the items owning modality nodes).
        top_n: neighbours per new modality node (default ``10``, as the graph's ``top_n``).

    Shapes:
        - :meth:`embed`: ``B`` dicts ``{modality: raw features [F_m]}`` -> ``[B, d]``
    """

    def __init__(self, encoder: EMMKGEncoder, kg: HeteroData, top_n: int = 10) -> None:
        self.encoder = encoder
        self.top_n = top_n
        view = encoder.view
        self.modalities = list(encoder.modalities)
        relations = set(view.relations)
        self.item_modal = {m: item_modal_relation(m) in relations for m in self.modalities}
        self.modal_modal = {m: modal_modal_relation(m) in relations for m in self.modalities}
        self.item_item = ITEM_ITEM in relations
        self.self_loops = bool(encoder.conv.add_self_loops)
        self.owners = {m: kg[m].item.long() for m in self.modalities}
        self.offsets = dict(view.offsets)
        with torch.no_grad():
            h = encoder.initial_embeddings()
            self.layers = [h]
            for _ in range(encoder.num_layers - 1):
                h = encoder.conv(h, encoder.edge_index)
                self.layers.append(h)
        deg = torch.bincount(encoder.edge_index[1], minlength=view.num_nodes).double()
        self.degree = deg + (1.0 if self.self_loops else 0.0)
        self.knn: dict[str, faiss.Index] = {}
        for m in self.modalities:
            # the graph's own features (Eq. 2), also when the encoder trained its copy of them
            x = normalize_rows(kg[m].x.detach().cpu().numpy())
            index = faiss.IndexFlatIP(x.shape[1])
            index.add(x)
            self.knn[m] = index

    def feature_dim(self, modality: str) -> int:
        return int(self.knn[modality].d)

    @torch.no_grad()
    def embed(self, contents: Sequence[Mapping[str, np.ndarray]]) -> Tensor:
        """:math:`\\mathbf{h}^{MM}` ``[B, d]`` of new items given their raw modality features."""
        b = len(contents)
        for j, c in enumerate(contents):
            unknown = [m for m in c if m not in self.knn]
            if unknown:
                raise SearchError(f"new item {j}: unknown modality {unknown}; the run has {self.modalities}.")
            if not any(self.item_modal[m] for m in c):
                raise SearchError(
                    f"new item {j}: no content in a modality linked to items (it has {sorted(c)}); "
                    f"give content for one of {[m for m in self.modalities if self.item_modal[m]]}."
                )
        z_parts, owner_parts = [], []
        int_src, int_dst = [], []  # new-new edges (one direction; mirrored below)
        ext_new, ext_old = [], []  # new node, existing node
        n_new = b
        for i, m in enumerate(self.modalities):
            rows = [j for j, c in enumerate(contents) if m in c]
            if not rows:
                continue
            x = np.stack([np.asarray(contents[j][m], dtype=np.float32).reshape(-1) for j in rows])
            if x.shape[1] != self.feature_dim(m):
                raise SearchError(
                    f"modality '{m}': content of dimension {x.shape[1]}, the run's features have "
                    f"{self.feature_dim(m)}; encode it with the run's f_enc for '{m}'."
                )
            z_parts.append(self.encoder.project(i, torch.from_numpy(x)))
            ids = torch.arange(n_new, n_new + len(rows))
            owner = torch.tensor(rows)
            owner_parts.append(owner)
            if self.item_modal[m]:
                int_src.append(owner)
                int_dst.append(ids)
            if self.modal_modal[m] or self.item_item:
                k = min(self.top_n, self.knn[m].ntotal)
                _, nbr = self.knn[m].search(normalize_rows(x), k)
                nbr = torch.from_numpy(nbr)
                valid = nbr >= 0
                if self.modal_modal[m]:
                    ext_new.append(ids.unsqueeze(1).expand_as(nbr)[valid])
                    ext_old.append(nbr[valid] + self.offsets[m])
                if self.item_item:
                    items = self.owners[m][nbr.clamp(min=0)]
                    ext_new.append(owner.unsqueeze(1).expand_as(nbr)[valid])
                    ext_old.append(items[valid] + self.offsets[ITEM])
            n_new += len(rows)
        d = self.encoder.dim
        h0 = torch.cat([torch.zeros(b, d)] + z_parts) if z_parts else torch.zeros(b, d)
        none = torch.zeros(0, dtype=torch.long)
        new = torch.cat(ext_new) if ext_new else none
        old = torch.cat(ext_old) if ext_old else none
        # item-item pairs found through several modalities are one edge, as in the trained graph
        new, old = torch.unique(torch.stack([new, old]), dim=1)
        item = torch.cat([torch.arange(b)] + owner_parts)[new]  # the new item of each new node
        isrc = torch.cat(int_src) if int_src else none
        idst = torch.cat(int_dst) if int_dst else none
        deg_new = torch.bincount(torch.cat([isrc, idst, new]), minlength=n_new).double()
        deg_new += 1.0 if self.self_loops else 0.0
        # an existing node gains one edge per node of the same new item that links to it
        _, inverse, counts = torch.unique(
            torch.stack([item, old]), dim=1, return_inverse=True, return_counts=True
        )
        deg_old = self.degree[old] + counts[inverse].double()
        w_ext = (deg_new[new] * deg_old).rsqrt().float()
        size = (n_new, self.degree.numel())
        a_ext = torch.sparse_coo_tensor(
            torch.stack([new, old]), w_ext, size, check_invariants=False
        ).coalesce()
        src = torch.cat([isrc, idst])
        dst = torch.cat([idst, isrc])
        if self.self_loops:
            loop = torch.arange(n_new)
            src, dst = torch.cat([src, loop]), torch.cat([dst, loop])
        w_int = (deg_new[src] * deg_new[dst]).rsqrt().float()
        a_int = torch.sparse_coo_tensor(
            torch.stack([dst, src]), w_int, (n_new, n_new), check_invariants=False
        ).coalesce()
        h, out = h0, h0.clone()
        for layer in range(self.encoder.num_layers):
            h = torch.sparse.mm(a_int, h) + torch.sparse.mm(a_ext, self.layers[layer])
            out += h
        return (out / (self.encoder.num_layers + 1))[:b]


class QueryEncoder:
    r"""Maps queries into the item space: :math:`f^{m}_{enc}` of each query modality, then the
    ``paper`` mapping (:math:`f^{m}_{proj}`) or the ``propagated`` one (see the module docstring).

    Args:
        encoder: the trained :class:`EMMKGEncoder` (its :math:`f_{proj}` and graph).
        f_enc: per modality, its feature encoder (``None`` for feature modalities: vectors are
            taken as they are).
        kinds: per modality, its kind (``text``, ``image``, ``feature``).
        mapping: ``"paper"`` or ``"propagated"`` (default ``"paper"``).
        query_modality: the text modalities a text query is encoded as: ``"all"``, ``"first"`` or
            a modality name (default ``"all"``).
        propagator: needed by the ``propagated`` mapping.
    """

    def __init__(
        self,
        encoder: EMMKGEncoder,
        f_enc: Mapping[str, Encoder | None],
        kinds: Mapping[str, str],
        mapping: str = "paper",
        query_modality: str = "all",
        propagator: InductivePropagator | None = None,
    ) -> None:
        if mapping not in MAPPINGS:
            raise SearchError(f"search.mapping={mapping}: choose one of {MAPPINGS}.")
        if mapping == "propagated" and propagator is None:
            raise SearchError("QueryEncoder: mapping 'propagated' needs an InductivePropagator.")
        self.encoder = encoder
        self.f_enc = dict(f_enc)
        self.kinds = dict(kinds)
        self.mapping = mapping
        self.propagator = propagator
        self.modalities = list(encoder.modalities)
        self.text_modalities = [m for m in self.modalities if self.kinds.get(m) == "text"]
        self.query_modalities = self._resolve(query_modality)

    @classmethod
    def from_run(
        cls,
        run: Any,
        mapping: str = "paper",
        query_modality: str = "all",
        top_n: int | None = None,
    ) -> QueryEncoder:
        """The query encoder of a :class:`~emmkgr_pyg.runs.TrainedRun` of E-MMKGR."""
        encoder = getattr(run.model, "encoder", None)
        if not isinstance(encoder, EMMKGEncoder):
            raise SearchError(
                f"run_dir={run.run_dir}: model '{run.cfg.model.name}' has no E-MMKG encoder (no "
                "f_proj to map queries with); search needs a run trained with model=emmkgr."
            )
        kinds = {m: run.dataset.modalities[m].kind for m in encoder.modalities}
        f_enc = modality_encoders(run.cfg.modality, kinds)
        propagator = None
        if mapping == "propagated":
            n = int(top_n if top_n is not None else run.cfg.graph.get("top_n", 10))
            propagator = InductivePropagator(encoder, run.kg, top_n=n)
        return cls(encoder, f_enc, kinds, mapping, query_modality, propagator)

    def _resolve(self, query_modality: str) -> list[str]:
        if not self.text_modalities:
            return []
        if query_modality == "all":
            return list(self.text_modalities)
        if query_modality == "first":
            return self.text_modalities[:1]
        if query_modality not in self.text_modalities:
            raise SearchError(
                f"search.query_modality={query_modality}: not a text modality of the run "
                f"({self.text_modalities}); use one of them, 'first' or 'all'."
            )
        return [query_modality]

    def raw_text(
        self, texts: Sequence[str], modalities: Sequence[str] | None = None, progress: bool = False
    ) -> dict[str, np.ndarray]:
        r""":math:`f^{m}_{enc}(q)` for each text modality ``m`` (default: all text modalities);
        modalities that share an encoder are encoded once."""
        texts = [str(t) for t in texts]
        if not texts or any(not t.strip() for t in texts):
            raise SearchError('query is empty: give a search phrase, e.g. query="wireless mouse".')
        if not self.text_modalities:
            raise SearchError(f"this run has no text modality ({self.modalities}); give a feature vector.")
        out: dict[str, np.ndarray] = {}
        done: dict[int, np.ndarray] = {}
        for m in modalities or self.text_modalities:
            enc = self.f_enc[m]
            if id(enc) not in done:
                x = enc.encode(texts, progress=progress, desc="encode queries")
                done[id(enc)] = np.asarray(x, dtype=np.float32)
            out[m] = done[id(enc)]
        return out

    def raw_content(self, contents: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """One item's content per modality (a text, an image path, or a feature vector) through
        that modality's :math:`f^{m}_{enc}`, ``{modality: [F_m]}``."""
        out = {}
        for m, value in contents.items():
            if m not in self.modalities:
                raise SearchError(f"modality '{m}' is not one of the run's {self.modalities}.")
            enc = self.f_enc.get(m)
            if enc is None:
                out[m] = self.raw_vectors(np.asarray(value, dtype=np.float32), m)[m][0]
            elif self.kinds[m] == "text" and not str(value).strip():
                raise SearchError(f"modality '{m}': empty text; give content or leave it out.")
            else:
                out[m] = np.asarray(enc.encode([str(value)], progress=False), dtype=np.float32)[0]
        return out

    def raw_vectors(self, vectors: np.ndarray, modality: str | None = None) -> dict[str, np.ndarray]:
        """Feature-vector queries ``[B, F]`` of a feature (image) modality, taken as they are
        (default: the run's first non-text modality)."""
        others = [m for m in self.modalities if self.kinds.get(m) != "text"]
        if modality is None:
            if not others:
                raise SearchError(f"this run has no image or feature modality ({self.modalities}).")
            modality = others[0]
        if modality not in others:
            raise SearchError(f"query_modality={modality}: not a feature modality of the run ({others}).")
        x = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        dim = self.encoder.input_dim(self.modalities.index(modality))
        if x.shape[1] != dim:
            raise SearchError(f"query vector of dimension {x.shape[1]}; modality '{modality}' has {dim}.")
        return {modality: x}

    @torch.no_grad()
    def map(self, raw: Mapping[str, np.ndarray]) -> np.ndarray:
        """Raw query embeddings ``{modality: [B, F_m]}`` -> the item space ``[B, d]``."""
        if self.mapping == "propagated":
            b = len(next(iter(raw.values())))
            contents = [{m: x[j] for m, x in raw.items()} for j in range(b)]
            return self.propagator.embed(contents).numpy()
        parts = []
        for m, x in raw.items():
            x = torch.from_numpy(np.asarray(x, dtype=np.float32))
            z = self.encoder.project(self.modalities.index(m), x)
            parts.append(torch.nn.functional.normalize(z, dim=-1))
        return torch.stack(parts).mean(0).numpy()

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Text queries -> the item space ``[B, d]`` through :attr:`query_modalities`."""
        return self.map(self.raw_text(texts, self.query_modalities))

    def encode_vectors(self, vectors: np.ndarray, modality: str | None = None) -> np.ndarray:
        """Feature-vector queries -> the item space ``[B, d]``."""
        return self.map(self.raw_vectors(vectors, modality))


def modality_encoders(modality_cfg: Mapping[str, Any], kinds: Mapping[str, str]) -> dict[str, Encoder | None]:
    r""":math:`f^{m}_{enc}` of each modality as the run's ``modality`` config builds it: an
    ``extra`` entry's own encoder, else the text (image) encoder for text (image) modalities;
    ``None`` for feature modalities."""
    from hydra.utils import instantiate

    shared: dict[str, Encoder | None] = {}
    out: dict[str, Encoder | None] = {}
    extra = modality_cfg.get("extra") or {}
    for m, kind in kinds.items():
        entry = extra.get(m) or {}
        if entry.get("encoder"):
            out[m] = instantiate(entry["encoder"])
        elif kind in ("text", "image"):
            if kind not in shared:
                cfg = modality_cfg.get(f"{kind}_encoder")
                shared[kind] = instantiate(cfg) if cfg is not None else None
            out[m] = shared[kind]
        else:
            out[m] = None
    return out
