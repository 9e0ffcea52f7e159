"""Cleaning the text fields of real catalogues (HTML entities and fragments, blank values), and
their word tokens."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

_TAG = re.compile(r"<[^>]*>?")
_SPACE = re.compile(r"\s+")
_TOKEN = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def tokens(text: str | None) -> list[str]:
    """Lower-case word tokens (hyphenated words stay whole: ``non-stick``): what search queries are
    built from and BM25 matches."""
    return _TOKEN.findall(text.lower()) if text else []


def clean_text(value: object) -> str | None:
    """HTML-unescaped text without tags or repeated blanks; ``None`` for an empty value.

    Lists (Amazon 2018 descriptions are lists of paragraphs) are joined with spaces.
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = " ".join(str(v) for v in value if v)
    text = html.unescape(str(value))
    text = _TAG.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    return text or None


def is_html_fragment(value: object) -> bool:
    """True for a field that is markup and nothing else (e.g. ``<span class="a-size-medium"``)."""
    return isinstance(value, str) and value.strip().startswith("<") and clean_text(value) is None


def attributes_text(brand: str | None, categories: Iterable[str]) -> str | None:
    """The ``attributes`` modality: brand and category path as one sentence."""
    parts = []
    if brand:
        parts.append(f"Brand: {brand}.")
    cats = [c for c in categories if c]
    if cats:
        parts.append("Category: " + " > ".join(cats) + ".")
    return " ".join(parts) or None


def split_category_path(value: object) -> list[str]:
    """A category path as a list: from a list, or from a comma-separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        items = value.split(",")
    else:
        items = list(value)
        if items and isinstance(items[0], (list, tuple)):  # 2014 metadata: a list of paths
            items = list(items[0])
    out = []
    for c in items:
        c = clean_text(c)
        if c:
            out.append(c)
    return out
