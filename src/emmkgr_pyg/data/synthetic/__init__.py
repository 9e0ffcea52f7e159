"""The embedded default dataset: a seeded synthetic shop whose side information carries real signal.

Everything is drawn from :class:`SyntheticOptions` (no external data); the same options give the
same dataset, byte for byte. One module per part of the story:

- :mod:`.vocab`: colours, styles, brands and the catalogue tree (department > category > leaf).
- :mod:`.options`: the options and the independent random stream of each part.
- :mod:`.world`: the hidden truth: items and their attributes, users' tastes, the interactions and
  their split (:func:`generate_world`).
- :mod:`.text`: titles, descriptions, ratings and reviews from templates.
- :mod:`.image`: image vectors from the visual attributes.
- :mod:`.reader`: :class:`SyntheticReader`, which turns all of it into an :class:`MMDataset`.

Everything is vectorised with numpy (loops only over leaves and, to compose strings, over items), so
the Amazon Clothing size (39,387 users, 23,033 items, 278,677 interactions, 4096-d images) takes
seconds.
"""

from .options import MIN_USER_INTERACTIONS, SyntheticOptions
from .reader import SyntheticReader
from .vocab import BRANDS, COLOURS, STYLES, TAXONOMY, Taxonomy, build_taxonomy
from .world import Items, SyntheticWorld, generate_world

__all__ = [
    "BRANDS",
    "COLOURS",
    "MIN_USER_INTERACTIONS",
    "STYLES",
    "TAXONOMY",
    "Items",
    "SyntheticOptions",
    "SyntheticReader",
    "SyntheticWorld",
    "Taxonomy",
    "build_taxonomy",
    "generate_world",
]
