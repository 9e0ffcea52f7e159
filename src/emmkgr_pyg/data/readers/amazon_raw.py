"""Amazon review data as it ships: gzipped reviews and item metadata, one record per line.

Two releases share the layout, with different file names and field spellings:

* 2018 (Ni, Li, McAuley): ``<Category>_5.json.gz`` (reviews: ``reviewerID``, ``asin``, ``overall``,
  ``unixReviewTime``, ``summary``, ``reviewText``, ...) and ``meta_<Category>.json.gz`` (``asin``,
  ``title``, ``description`` as a list of paragraphs, ``brand``, ``category`` as a path, ``image``
  as a list of URLs, ...), one JSON object per line.
* 2014 (McAuley et al.): ``reviews_<Category>_5.json.gz`` and ``meta_<Category>.json.gz``
  (``asin``, ``title``, ``description`` as a string, ``brand``, ``categories`` as a list of paths of
  which the first is kept, ``imUrl``), one Python literal per line (JSON lines are read as well).

Reviews are deduplicated per (user, item), keeping the first line, then k-core filtered; the split
follows the MMRec protocol. Modalities, each text and each only where non-empty: ``title``,
``description`` and ``review`` (the item's *training* reviews, summary then text, in time order; no
validation or test review leaks into it). Image URLs are catalogue metadata, not a modality. The
defects of the real files (unreadable lines, duplicate metadata rows, HTML fragments as titles,
items without metadata) are repaired and counted in the dataset report.
"""

from __future__ import annotations

import ast
import gzip
import json
import logging
import math
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..dataset import TRAIN, Catalog, DataError, MMDataset, drop_duplicate_interactions, index_ids
from ..split import mmrec_split
from ..text import check_categories, check_text, clean_text, is_html_fragment, split_category_path
from .base import Reader, finalize
from .lcrec_json import text_modality

log = logging.getLogger(__name__)

RELEASES = ("2014", "2018")
ON_BAD_LINE = ("skip", "fail")


def _python_literal(line: str) -> Any:
    """A 2014 line: JSON when it is (fast), else a Python literal (``{'asin': ...}``)."""
    try:
        return json.loads(line)
    except ValueError:
        return ast.literal_eval(line)


_PARSERS: dict[str, Callable[[str], Any]] = {"2014": _python_literal, "2018": json.loads}
# The 2018 metadata names its image list "image" in some categories, "imageURLHighRes" in others.
_IMAGE_FIELDS = {"2014": ("imUrl",), "2018": ("image", "imageURLHighRes", "imageURL")}
_CATEGORY_FIELD = {"2014": "categories", "2018": "category"}


@dataclass
class _Interactions:
    """The review file read, k-cored and split (one row per kept review), with what reading the
    metadata next needs."""

    user: np.ndarray
    item: np.ndarray
    split: np.ndarray
    texts: list[str | None]
    rating: np.ndarray
    timestamp: np.ndarray
    user_ids: list[str]
    item_ids: list[str]
    report: dict[str, Any]
    release: str
    parse: Callable[[str], Any]
    review_path: Path
    meta_path: Path


class AmazonRawReader(Reader):
    """Read an Amazon review-data category (2014 or 2018 release) from the files as distributed.

    Args:
        category: the category in the file names (``Magazine_Subscriptions`` for
            ``Magazine_Subscriptions_5.json.gz``).
        release: ``"2014"``, ``"2018"`` or ``"auto"`` (the release whose review file is present).
        k_core: keep only users and items with at least this many interactions, iteratively
            (``1`` keeps everything).
        on_bad_line: ``"skip"`` counts and logs unreadable lines; ``"fail"`` raises
            :class:`DataError` naming the file and the line.
        split_seed: the seed of the MMRec split.
    """

    def __init__(
        self,
        category: str,
        release: str = "auto",
        k_core: int = 5,
        on_bad_line: str = "skip",
        split_seed: int = 999,
    ) -> None:
        super().__init__(split_seed)
        if release not in ("auto", *RELEASES):
            raise DataError(
                f"AmazonRawReader: release '{release}' is not one of 'auto', "
                f"{', '.join(repr(r) for r in RELEASES)}; set dataset.reader.release."
            )
        if on_bad_line not in ON_BAD_LINE:
            raise DataError(
                f"AmazonRawReader: on_bad_line '{on_bad_line}' is not 'skip' or 'fail'; set "
                "dataset.reader.on_bad_line."
            )
        if int(k_core) < 1:
            raise DataError(
                f"AmazonRawReader: k_core={k_core}; set dataset.reader.k_core to 1 to keep every "
                "interaction or 5 for a 5-core."
            )
        self.category = category
        self.release = release
        self.k_core = int(k_core)
        self.on_bad_line = on_bad_line
        self.expected_files = tuple(
            f"{' and '.join(self._file_names(r))} ({r} release)" for r in reversed(RELEASES)
        )

    def _file_names(self, release: str) -> tuple[str, str]:
        """(review file, metadata file) of a release."""
        prefix = "" if release == "2018" else "reviews_"
        return f"{prefix}{self.category}_5.json.gz", f"meta_{self.category}.json.gz"

    def _detect_release(self, root: Path) -> str:
        """The configured release, or the one whose review file ``root`` holds."""
        if self.release != "auto":
            return self.release
        found = [r for r in RELEASES if (root / self._file_names(r)[0]).is_file()]
        if len(found) > 1:
            raise DataError(
                f"AmazonRawReader: {root} holds the review files of both releases "
                f"({' and '.join(self._file_names(r)[0] for r in found)}); set "
                "dataset.reader.release to '2014' or '2018'."
            )
        return found[0] if found else "2018"  # "2018": require() then names both releases

    def read(self, root: str | Path | None, name: str) -> MMDataset:
        x = self._interactions(root)
        meta = self._read_meta(x.meta_path, x.parse, set(x.item_ids), x.report)
        review_text = _training_reviews(x.item, x.split, x.timestamp, x.texts, len(x.item_ids))
        catalog = self._catalog(x.item_ids, meta, review_text, x.release, x.report, x.meta_path)
        _warn(str(x.review_path), x.report)
        return finalize(
            name,
            x.user_ids,
            x.user,
            x.item,
            catalog,
            split=x.split,
            rating=x.rating,
            timestamp=x.timestamp,
            report=x.report,
            source=str(x.review_path),
        )

    def heldout_reviews(self, root: str | Path | None) -> list[tuple[int, str]]:
        """(item position, review) of every validation and test interaction with text: what no
        modality encodes (``review`` joins training reviews only), where leak-free search queries
        come from."""
        x = self._interactions(root)
        return [(int(x.item[r]), x.texts[r]) for r in np.flatnonzero(x.split != TRAIN) if x.texts[r]]

    def _interactions(self, root: str | Path | None) -> _Interactions:
        """The review file read, k-cored and split: users, items, ratings, times, texts."""
        if root is None:
            raise DataError("AmazonRawReader: dataset.root is not set; point it at the folder.")
        root = Path(root)
        release = self._detect_release(root)
        review_name, meta_name = self._file_names(release)
        review_path = self.require(root, review_name, f"{release} reviews, one record per line")
        meta_path = self.require(root, meta_name, f"{release} item metadata, one record per line")
        parse = _PARSERS[release]
        report: dict[str, Any] = {
            "release": release,
            "k_core": self.k_core,
            "lines_read": {},
            "bad_lines": {},
        }

        reviews = _Reviews.collect(self._records(review_path, parse, report))
        report["reviews_missing_ids"] = reviews.missing_ids
        user, item, row, report_k = reviews.filter(self.k_core)
        report.update(report_k)
        if len(row) == 0:
            raise DataError(
                f"{review_path}: no interaction is left after the {self.k_core}-core filter "
                f"({report['reviews_missing_ids']} reviews lacked reviewerID or asin). Lower "
                "dataset.reader.k_core or check the file."
            )
        # codes follow first appearance in the file, so sorting them keeps that order
        users, user = np.unique(user, return_inverse=True)
        items, item = np.unique(item, return_inverse=True)
        user_ids = [reviews.user_ids[u] for u in users]
        item_ids = [reviews.item_ids[i] for i in items]
        rating = reviews.rating[row]
        timestamp = reviews.timestamp[row]
        texts = [reviews.text[r] for r in row]
        split = mmrec_split(user, seed=self.split_seed)
        report["split"] = f"mmrec protocol, seed {self.split_seed}"
        report["reviews_missing_rating"] = int(np.isnan(rating).sum())
        report["reviews_missing_timestamp"] = int((timestamp < 0).sum())
        report["reviews_missing_review_text"] = int((~reviews.has_body[row]).sum())
        report["reviews_without_text"] = sum(t is None for t in texts)
        return _Interactions(
            user, item, split, texts, rating, timestamp, user_ids, item_ids, report, release, parse,
            review_path, meta_path,
        )  # fmt: skip

    def _records(self, path: Path, parse: Callable[[str], Any], report: dict[str, Any]) -> Iterator[dict]:
        """The records of a gzipped one-record-per-line file; counts lines and unreadable lines."""
        n_lines = n_bad = 0
        first_bad = None
        try:
            with gzip.open(path, "rb") as f:
                for lineno, raw in enumerate(f, 1):
                    if not raw.strip():
                        continue
                    n_lines += 1
                    try:
                        obj = parse(raw.decode("utf-8"))
                        if not isinstance(obj, dict):
                            raise ValueError(f"a {type(obj).__name__}, not a record")
                    except (ValueError, SyntaxError, TypeError, RecursionError) as e:
                        if self.on_bad_line == "fail":
                            raise DataError(
                                f"{path}, line {lineno}: unreadable record ({e}). Repair or delete "
                                "the line, or set dataset.reader.on_bad_line=skip to skip it."
                            ) from e
                        n_bad += 1
                        first_bad = first_bad or lineno
                        continue
                    yield obj
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(
                f"{path}: not a readable gzip file ({e}); it is truncated or not gzip-compressed. "
                "Download it again."
            ) from e
        report["lines_read"][path.name] = n_lines
        report["bad_lines"][path.name] = n_bad
        if n_bad:
            log.warning("%s: skipped %d unreadable lines (first: line %d)", path, n_bad, first_bad)

    def _read_meta(
        self, path: Path, parse: Callable[[str], Any], wanted: set[str], report: dict[str, Any]
    ) -> dict[str, dict]:
        """The first metadata row of each wanted ASIN; counts duplicate rows over the whole file."""
        seen: set[str] = set()
        meta: dict[str, dict] = {}
        n_dup = n_no_asin = 0
        for rec in self._records(path, parse, report):
            asin = rec.get("asin")
            if not isinstance(asin, str) or not asin:
                n_no_asin += 1
            elif asin in seen:
                n_dup += 1
            else:
                seen.add(asin)
                if asin in wanted:
                    meta[asin] = rec
        report["meta_rows_missing_asin"] = n_no_asin
        report["duplicate_meta_rows"] = n_dup
        return meta

    def _catalog(
        self,
        item_ids: list[str],
        meta: dict[str, dict],
        review_text: list[str | None],
        release: str,
        report: dict[str, Any],
        source: Path,
    ) -> Catalog:
        """The catalogue: metadata fields and the ``title``, ``description`` and ``review``
        modalities. A field of the wrong type is dropped and counted (``on_bad_line=skip``) or
        raises :class:`DataError` naming ``source`` and the item (``fail``)."""
        title, description, brand, cats, urls = [], [], [], [], []
        n_html = n_bad = 0

        def field(rec: dict, name: str, check: Callable[..., Any], where: str, **kw: Any) -> Any:
            nonlocal n_bad
            try:
                return check(rec.get(name), where, name, **kw)
            except DataError as e:
                if self.on_bad_line == "fail":
                    raise DataError(f"{e} Or set dataset.reader.on_bad_line=skip to drop such fields.") from e
                n_bad += 1
                return None

        for asin in item_ids:
            rec = meta.get(asin, {})
            where = f"{source}, item '{asin}'"
            raw_title = field(rec, "title", check_text, where)
            if is_html_fragment(raw_title):
                n_html += 1
                raw_title = None
            title.append(clean_text(raw_title))
            description.append(clean_text(field(rec, "description", check_text, where, paragraphs=True)))
            brand.append(clean_text(field(rec, "brand", check_text, where)))
            cats.append(split_category_path(field(rec, _CATEGORY_FIELD[release], check_categories, where)))
            urls.append(_image_urls(rec, release))
        report["bad_metadata_fields"] = n_bad
        report["items_without_metadata"] = sum(a not in meta for a in item_ids)
        report["html_fragment_titles"] = n_html
        modalities = {
            "title": text_modality("title", title),
            "description": text_modality("description", description),
            "review": text_modality("review", review_text),
        }
        return Catalog(item_ids, title, brand, cats, image_urls=urls, modalities=modalities)


@dataclass
class _Reviews:
    """Review lines as parallel arrays; user and item codes in order of first appearance."""

    user_ids: list[str]
    item_ids: list[str]
    user: np.ndarray
    item: np.ndarray
    rating: np.ndarray
    timestamp: np.ndarray
    has_body: np.ndarray
    text: list[str | None]
    missing_ids: int

    @classmethod
    def collect(cls, records: Iterator[dict]) -> _Reviews:
        users, items, ratings, times, has_body, texts = [], [], [], [], [], []
        missing_ids = 0
        for rec in records:
            u, i = rec.get("reviewerID"), rec.get("asin")
            if not u or not i:
                missing_ids += 1
                continue
            users.append(str(u))
            items.append(str(i))
            ratings.append(_float(rec.get("overall")))
            times.append(_int(rec.get("unixReviewTime")))
            summary, body = clean_text(rec.get("summary")), clean_text(rec.get("reviewText"))
            has_body.append(body is not None)
            texts.append(" ".join(p for p in (summary, body) if p) or None)
        user_index, item_index = index_ids(users), index_ids(items)
        return cls(
            user_ids=list(user_index),
            item_ids=list(item_index),
            user=np.fromiter((user_index[u] for u in users), np.int64, len(users)),
            item=np.fromiter((item_index[i] for i in items), np.int64, len(items)),
            rating=np.asarray(ratings, dtype=np.float32),
            timestamp=np.asarray(times, dtype=np.int64),
            has_body=np.asarray(has_body, dtype=bool),
            text=texts,
            missing_ids=missing_ids,
        )

    def filter(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
        """Drop repeated (user, item) reviews, then apply the k-core.

        Returns the user codes, item codes and review rows kept, and the counts for the report.
        """
        keep, n_dup = drop_duplicate_interactions(self.user, self.item)
        row = np.flatnonzero(keep)
        user, item = self.user[row], self.item[row]
        core = k_core_mask(user, item, k)
        counts = {
            "duplicate_reviews_dropped": n_dup,
            "interactions_removed_by_k_core": int(len(core) - core.sum()),
            "users_removed_by_k_core": len(np.unique(user)) - len(np.unique(user[core])),
            "items_removed_by_k_core": len(np.unique(item)) - len(np.unique(item[core])),
        }
        return user[core], item[core], row[core], counts


def k_core_mask(user: np.ndarray, item: np.ndarray, k: int) -> np.ndarray:
    """The interactions of the k-core: repeatedly drop users and items with fewer than ``k``."""
    keep = np.ones(len(user), dtype=bool)
    n_users, n_items = int(user.max(initial=-1)) + 1, int(item.max(initial=-1)) + 1
    while True:
        user_count = np.bincount(user[keep], minlength=n_users)
        item_count = np.bincount(item[keep], minlength=n_items)
        core = keep & (user_count[user] >= k) & (item_count[item] >= k)
        if core.sum() == keep.sum():
            return core
        keep = core


def _training_reviews(
    item: np.ndarray,
    split: np.ndarray,
    timestamp: np.ndarray,
    texts: list[str | None],
    n_items: int,
) -> list[str | None]:
    """Per item, its training-split review texts in time order (then file order), joined."""
    rows = np.flatnonzero(split == TRAIN)
    rows = rows[np.lexsort((rows, timestamp[rows], item[rows]))]
    out: list[list[str]] = [[] for _ in range(n_items)]
    for r in rows:
        if texts[r]:
            out[item[r]].append(texts[r])
    return [" ".join(t) or None for t in out]


def _image_urls(rec: dict, release: str) -> list[str]:
    for field in _IMAGE_FIELDS[release]:
        value = rec.get(field)
        urls = [value] if isinstance(value, str) else value or []
        urls = [u.strip() for u in urls if isinstance(u, str) and u.strip()]
        if urls:
            return urls
    return []


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return -1


def _warn(source: str, report: dict[str, Any]) -> None:
    """One warning line with every defect the reader repaired."""
    defects = {k: v for k, v in report.items() if isinstance(v, int) and k != "k_core" and v}
    bad = {f: n for f, n in report["bad_lines"].items() if n}
    if bad:
        defects["bad_lines"] = bad
    if defects:
        log.warning("%s: repaired or dropped: %s", source, ", ".join(f"{k}={v}" for k, v in defects.items()))
