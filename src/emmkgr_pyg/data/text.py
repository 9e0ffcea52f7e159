"""Cleaning the text fields of real catalogues (HTML entities and fragments, blank values), and
checking their types (a reader names the file and the item of a field it cannot use), and
their word tokens."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

from .dataset import DataError

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


_SURROGATE = re.compile("[\ud800-\udfff]")

#: the JSON types a metadata field may hold, for messages
TEXT_TYPES = "a string or null"
PARAGRAPH_TYPES = "a string, a list of strings, or null"
CATEGORY_TYPES = "a string (comma-separated path), a list of strings, a list of such lists, or null"


def check_text(value: object, where: str, field: str, *, paragraphs: bool = False) -> object:
    """``value`` unchanged if it is a text field: a string or ``None`` (or, with ``paragraphs``, a
    list of strings); otherwise, or for a string with a lone surrogate (half of a broken UTF-16 pair
    that no encoder or JSON writer accepts), a :class:`DataError` naming ``where`` (the file and
    the item), the field and the fix."""
    ok = value is None or isinstance(value, str)
    if paragraphs and isinstance(value, list):
        ok = all(isinstance(v, str) or v is None for v in value)
    if not ok:
        expected = PARAGRAPH_TYPES if paragraphs else TEXT_TYPES
        raise DataError(
            f"{where}: field '{field}' is {describe_value(value)}; it must be {expected}. Fix that "
            "item's record (quote the value as a string, or remove the field)."
        )
    for text in value if isinstance(value, list) else [value]:
        check_surrogates(text, where, field)
    return value


def check_string_list(value: object, where: str, field: str, fix: str) -> list[str]:
    """``value`` unchanged if it is a list of strings without lone surrogates; otherwise a
    :class:`DataError` naming ``where``, the field and ``fix``."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(f"{where}: field '{field}' is {describe_value(value)}; it must be {fix}")
    for v in value:
        check_surrogates(v, where, field)
    return value


def check_categories(value: object, where: str, field: str = "categories") -> object:
    """``value`` unchanged if it is a category path as :func:`split_category_path` reads it;
    otherwise a :class:`DataError` naming ``where``, the field and the fix."""
    if value is None or isinstance(value, str):
        return check_text(value, where, field)
    if isinstance(value, list):
        paths = value if value and all(isinstance(v, list) for v in value) else [value]
        if all(isinstance(c, str) for path in paths for c in path):
            for path in paths:
                for c in path:
                    check_surrogates(c, where, field)
            return value
    raise DataError(
        f"{where}: field '{field}' is {describe_value(value)}; it must be {CATEGORY_TYPES}. Fix that "
        "item's record."
    )


def check_surrogates(text: object, where: str, field: str) -> None:
    """A :class:`DataError` naming ``where`` and ``field`` when ``text`` holds a lone surrogate."""
    if not isinstance(text, str):
        return
    m = _SURROGATE.search(text)
    if m:
        raise DataError(
            f"{where}: field '{field}' holds a lone surrogate \\u{ord(m.group()):04x} at character "
            f"{m.start()} (half of a broken UTF-16 pair, e.g. a cut emoji); no encoder can read it. "
            "Repair or remove that character in the source file."
        )


def describe_value(value: object) -> str:
    """``an int (42)``: a value's type and a short repr, for messages."""
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} ({shown})"
