"""Texts of the synthetic shop name only an item's own attribute values."""

from __future__ import annotations

import numpy as np

from emmkgr_pyg.data.synthetic import BRANDS, COLOURS, STYLES, Items, build_taxonomy
from emmkgr_pyg.data.synthetic.text import descriptions, draw_reviews, text_fields, titles


def two_items():
    """Item 0: a frying pan with two features; item 1: jeans (a plural noun) with none."""
    tax = build_taxonomy()
    pan, jeans = tax.leaves.index("Frying Pans"), tax.leaves.index("Jeans")
    items = Items(
        leaf=np.array([pan, jeans]),
        brand=np.array([0, 1]),
        colour=np.array([COLOURS.index("Red"), COLOURS.index("Navy")]),
        material=np.array([tax.materials.index("Cast Iron"), tax.materials.index("Denim")]),
        shape=np.array([tax.shapes.index("Round"), tax.shapes.index("Slim-Fit")]),
        size=np.array([tax.sizes.index("Large"), tax.sizes.index("Medium")]),
        style=np.array([STYLES.index("Elegant"), STYLES.index("Classic")]),
        has_feature=np.array([[True, False, True], [False, False, False]]),
        quality=np.array([2.0, -3.0]),
        log_popularity=np.zeros(2),
    )
    return tax, items


def test_text_fields_are_the_items_own_words():
    tax, items = two_items()
    pan = text_fields(tax, items, 0)
    assert pan["brand"] == BRANDS[0] and pan["noun"] == "frying pan" and pan["colour"] == "red"
    assert pan["material"] == "cast iron" and pan["category"] == "cookware"
    assert pan["features"] == "non-stick and induction-compatible" and pan["feature"] == "non-stick"
    assert (pan["this"], pan["is"], pan["a_style"], pan["a_size"]) == ("this", "is", "an elegant", "a large")
    jeans = text_fields(tax, items, 1)
    assert (jeans["this"], jeans["is"], jeans["a_size"]) == ("these", "are", "medium")
    assert jeans["features"] == "" and jeans["feature"] == "well made"


def test_titles_descriptions_and_reviews_mention_no_other_values():
    tax, items = two_items()
    rng = np.random.default_rng(0)
    for title, noun, brand in zip(titles(tax, items, rng), ("Frying Pan", "Jeans"), BRANDS[:2], strict=True):
        assert title.startswith(brand + " ") and noun in title
    other_colours = {c.lower() for c in COLOURS} - {"red", "navy"}
    texts = descriptions(tax, items, rng, missing_rate=0.0)
    rating, review = draw_reviews(tax, items, np.array([0, 0, 1, 1, 1]), np.random.default_rng(1))
    assert rating.dtype == np.float32 and set(rating.tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert all(r.endswith(".") and ", " in r for r in review)
    for text in [*texts, *review]:
        words = set(text.lower().replace(".", " ").replace(",", " ").split())
        assert not words & other_colours, text
    assert "wool" not in " ".join(review).lower() and descriptions(tax, items, rng, 1.0) == [None, None]
