"""The synthetic shop's texts: titles, descriptions and reviews, from templates that only ever
mention an item's real attribute values.

- The **title** joins the brand, some attributes and the leaf noun
  (``Acme Red Stainless Steel Round Frying Pan, Large``).
- The **description** is 1-3 sentences from varied templates mentioning more attributes and
  features; a share of items (``description_missing``) has none.
- Every interaction gets a **rating** (from the item's quality) and a one-line **review** that
  mentions the item's real attributes ("Love the red colour, would buy again.").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .vocab import BRANDS, COLOURS, STYLES, Taxonomy

if TYPE_CHECKING:  # world.py draws the reviews with this module: import the type only
    from .world import Items


def text_fields(tax: Taxonomy, items: Items, i: int) -> dict[str, str]:
    """The words that templates about item ``i`` may use, lower-case but the brand."""
    leaf = int(items.leaf[i])
    plural = tax.nouns[leaf] == tax.leaves[leaf]  # "Jeans", "Sneakers": leaf name = noun
    style = STYLES[items.style[i]].lower()
    shape = tax.shapes[items.shape[i]].lower()
    size = tax.sizes[items.size[i]].lower()
    feats = items.features(tax, i)
    return {
        "brand": BRANDS[items.brand[i]],
        "noun": tax.nouns[leaf].lower(),
        "category": tax.categories[tax.leaf_cat[leaf]].lower(),
        "colour": COLOURS[items.colour[i]].lower(),
        "material": tax.materials[items.material[i]].lower(),
        "shape": shape,
        "size": size,
        "style": style,
        "features": _join(feats),
        "feature": feats[0] if feats else "well made",
        "this": "these" if plural else "this",
        "is": "are" if plural else "is",
        "a_shape": f"{_article(shape)} {shape}",
        "a_style": f"{_article(style)} {style}",
        "a_size": size if plural else f"{_article(size)} {size}",
    }


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _join(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def titles(tax: Taxonomy, items: Items, rng: np.random.Generator) -> list[str]:
    """``Brand [Style] [Colour] [Feature] [Material] [Shape] Noun[, Size]``."""
    n = len(items.leaf)
    use = rng.random((n, 6)) < np.array([0.2, 0.85, 0.3, 0.7, 0.4, 0.5])
    out = []
    for i in range(n):
        feats = items.features(tax, i)
        words = [BRANDS[items.brand[i]]]
        if use[i, 0]:
            words.append(STYLES[items.style[i]])
        if use[i, 1]:
            words.append(COLOURS[items.colour[i]])
        if use[i, 2] and feats:
            words.append(feats[0].title())
        if use[i, 3]:
            words.append(tax.materials[items.material[i]])
        if use[i, 4]:
            words.append(tax.shapes[items.shape[i]])
        words.append(tax.nouns[items.leaf[i]])
        title = " ".join(words)
        out.append(f"{title}, {tax.sizes[items.size[i]]}" if use[i, 5] else title)
    return out


_DESCRIPTION_TEMPLATES = (
    "{this} {style} {noun} from {brand} {is} made of {material}.",
    "Comes in {colour} with {a_shape} design.",
    "{features}, built for everyday use.",
    "{a_size} {colour} {noun} in {material}, ideal as a gift.",
    "The {material} finish adds {a_style} touch.",
    "Size: {size}.",
    "Part of the {brand} {category} range: {features}.",
    "A good pick for fans of {style} design.",
)


def descriptions(
    tax: Taxonomy, items: Items, rng: np.random.Generator, missing_rate: float
) -> list[str | None]:
    """1-3 sentences from :data:`_DESCRIPTION_TEMPLATES` (those about features only when the item
    has some); ``None`` for a share ``missing_rate`` of the items."""
    n, t = len(items.leaf), len(_DESCRIPTION_TEMPLATES)
    missing = rng.random(n) < missing_rate
    n_sentences = rng.integers(1, 4, size=n)
    order = np.argsort(rng.random((n, t)), axis=1)
    out: list[str | None] = []
    for i in range(n):
        if missing[i]:
            out.append(None)
            continue
        fields = text_fields(tax, items, i)
        usable = [
            _DESCRIPTION_TEMPLATES[j]
            for j in order[i]
            if fields["features"] or "{features}" not in _DESCRIPTION_TEMPLATES[j]
        ]
        out.append(" ".join(_sentence(t.format(**fields)) for t in usable[: n_sentences[i]]))
    return out


# A review is an opening and a closing, "Love the red colour, would buy again."; positive ones for
# ratings 4-5, negative ones otherwise. Every field is the reviewed item's own attribute value.
_OPENINGS = (
    (
        "Love the {colour} colour",
        "Great {noun}",
        "The {material} feels sturdy",
        "Really happy with {this} {brand} {noun}",
        "Looks very {style}",
        "The {shape} shape is just right",
    ),
    (
        "The {colour} looks duller than in the photos",
        "The {material} feels flimsy",
        "Disappointed with {this} {noun}",
        "Not as {style} as it looks online",
        "The {size} size runs small",
    ),
)
_CLOSINGS = (
    (
        "would buy again",
        "great value for money",
        "{feature} as advertised",
        "arrived quickly and well packed",
        "highly recommended",
    ),
    (
        "would not buy again",
        "returned it after a week",
        "not really {feature}",
        "overpriced for what it is",
    ),
)


def draw_reviews(
    tax: Taxonomy, items: Items, item: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(rating, review) of every interaction with ``item``; ratings follow the item's quality."""
    logit = 1.0 + items.quality[item] + rng.normal(0.0, 1.0, len(item))
    rating = 1 + np.digitize(logit, [-1.0, 0.0, 0.8, 1.6])
    negative = (rating < 4).astype(np.int64)
    fields = [text_fields(tax, items, i) for i in range(len(items.leaf))]

    def pick(templates: tuple[tuple[str, ...], ...]) -> np.ndarray:
        """Per interaction, one of the positive or negative ``templates`` filled for its item."""
        flat = templates[0] + templates[1]
        pool = np.empty((len(fields), len(flat)), dtype=object)
        pool[:] = [[t.format(**f) for t in flat] for f in fields]
        n_pos, n_neg = len(templates[0]), len(templates[1])
        col = rng.integers(0, np.where(negative, n_neg, n_pos)) + negative * n_pos
        return pool[item, col]

    review = pick(_OPENINGS) + ", " + pick(_CLOSINGS) + "."
    return rating.astype(np.float32), review
