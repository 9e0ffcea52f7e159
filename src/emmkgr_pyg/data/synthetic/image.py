"""The synthetic shop's image modality: feature vectors made from the *visual* attributes only.

An item's colour, material, shape and style embeddings are summed, passed through a fixed random
two-layer network (tanh), scaled to unit variance, and Gaussian noise (``image_noise``) is added.
A share of items (``image_missing``) has no image.
"""

from __future__ import annotations

import numpy as np

from .options import SyntheticOptions
from .sampling import chunks
from .vocab import COLOURS, STYLES
from .world import SyntheticWorld


def image_features(options: SyntheticOptions, world: SyntheticWorld) -> tuple[np.ndarray, np.ndarray]:
    """(items with an image, their ``[n, image_dim]`` float32 features)."""
    tax = world.taxonomy
    net = options.rng("image-network")
    h = np.zeros((options.n_items, options.image_hidden), dtype=np.float32)
    for values, k in (
        (world.items.colour, len(COLOURS)),
        (world.items.material, len(tax.materials)),
        (world.items.shape, len(tax.shapes)),
        (world.items.style, len(STYLES)),
    ):
        emb = net.normal(0.0, 0.5, (k, options.image_hidden)).astype(np.float32)
        h += emb[values]
    h = np.tanh(h)
    w = net.standard_normal((options.image_hidden, options.image_dim), dtype=np.float32)
    w /= np.sqrt(options.image_hidden * float(np.mean(h * h)))  # unit-variance outputs

    rng = options.rng("image")
    keep = np.flatnonzero(rng.random(options.n_items) >= options.image_missing)
    out = np.empty((len(keep), options.image_dim), dtype=np.float32)
    for rows in chunks(len(keep), options.image_dim):
        # float64 product: a float32 BLAS sum depends on the thread count in its last bits, and a
        # run's catalogue fingerprint must not (training and loading may use different counts)
        block = (h[keep[rows]].astype(np.float64) @ w.astype(np.float64)).astype(np.float32)
        block += options.image_noise * rng.standard_normal(block.shape, dtype=np.float32)
        out[rows] = block
    return keep, out
