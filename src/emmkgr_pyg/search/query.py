r"""Queries into the item space of a trained E-MMKGR run (paper section 3.3, Eq. 7).

A query is content of one modality kind: text (a search phrase), or a feature vector where the
run has a feature (image) modality. It is encoded with the same :math:`f^{m}_{enc}` as modality
:math:`m` (Eq. 1) and mapped into the item space in one of two ways (``search.mapping``):

- ``paper``: through that modality's projection, :math:`\mathbf{h}_q = f^{m}_{proj}(f^{m}_{enc}(q))`
  (section 3.3). With several query modalities (``query_modality: all``), the mean of the
  L2-normalised projections.
- ``propagated``: the query becomes a new item whose only content is the query, attached to the
  trained E-MMKG like any item (:class:`~emmkgr_pyg.nn.inductive.InductivePropagator`): its
  modality node links to its top-n most similar nodes of that modality (Eq. 2) and the trained
  encoder's propagation (Eq. 4) gives its :math:`\mathbf{h}^{MM}`, which lives where the items'
  :math:`\mathbf{H}^{MM}` live.

The same propagation embeds cold-start items (:mod:`.cold_start`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..data.encoders import Encoder
from ..nn.encoder import EMMKGEncoder
from ..nn.inductive import InductivePropagator
from .errors import SearchError

MAPPINGS = ("paper", "propagated")
#: ``search.query_modality`` besides a modality name
QUERY_MODALITY_CHOICES = ("all", "first")


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
            return propagate(self.propagator, contents)
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


def propagate(propagator: InductivePropagator, contents: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
    """:meth:`InductivePropagator.embed` as ``[B, d]`` numpy, its content errors as
    :class:`SearchError` (what the search commands report to the user)."""
    try:
        return propagator.embed(contents).numpy()
    except ValueError as e:
        raise SearchError(str(e)) from e
