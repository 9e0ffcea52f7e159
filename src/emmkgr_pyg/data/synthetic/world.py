"""The synthetic shop's hidden truth: items with their attributes, users, and who bought what.

:func:`generate_world` draws, from :class:`SyntheticOptions` alone:

1. **Items.** Every leaf draws its own priors over colours, materials, shapes, sizes and styles
   (Dirichlet, ``prior_concentration``). Most brands specialise in one department, the others are
   generalists; each has a quality level. An item draws a leaf, a brand (given the leaf's
   department), attribute values from the leaf's priors (the style sometimes from the brand's
   signature style), a subset of the leaf's features and a quality (its brand's plus noise).
   Popularity is a power law over items (``pop_exponent``), ranked mostly by quality.
2. **Users.** A user's taste is a nested Dirichlet over departments, categories and leaves
   (``taste_concentration``: small = focused), mixed with a little of the catalogue's leaf shares
   (``explore``), plus Dirichlet preferences over colours, materials, styles and brands.
3. **Interactions.** A user draws a long-tailed count (at least 5, summing to ``n_interactions``),
   spreads it over leaves by taste, and in each leaf picks items without replacement by
   Gumbel-top-k over ``taste_strength`` x attribute match + popularity; a leaf with too few items
   hands the remainder to a top-up over the whole catalogue. No (user, item) pair repeats. In a
   leaf of more than :data:`EXACT_LEAF_ITEMS` items (the largest leaves from ~5,000 items on)
   scoring every item for every user would grow with N^2, so each user scores a pool of
   :data:`POOL` items drawn by popularity instead (sampling-importance-resampling: the pool carries
   the popularity term, Gumbel-top-k over the pool the attribute match), which keeps the draw
   linear in N.
4. **Split, ratings, reviews.** The MMRec split (``split_seed``), then a rating and a one-line
   review per interaction (:func:`~.text.draw_reviews`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..split import mmrec_split
from .options import MIN_USER_INTERACTIONS, SyntheticOptions
from .sampling import chunks, group_dirichlet, sample_rows, top_m
from .text import draw_reviews
from .vocab import BRANDS, COLOURS, STYLES, Taxonomy, build_taxonomy

#: pool drawn per user in a large leaf (with replacement, repeats merged)
POOL = 256
#: leaves up to this size score every item for every user (exact Gumbel-top-k); larger ones draw
#: a popularity-weighted pool per user. The pool's size: exact scoring is then never more work per
#: user than the pool (up to stop 32 it was 2,048, and the leaves between 256 and 2,048 items made
#: the draw grow with N^2 from the Clothing size to 100,000 items). The embedded default stays
#: exact (its largest leaf holds 108 items); at the Clothing size 80% of the items are in larger
#: leaves, from 100,000 items on all of them.
EXACT_LEAF_ITEMS = POOL


def popularity_pool(rng: np.random.Generator, log_pop: np.ndarray, n_rows: int) -> np.ndarray:
    """``[n_rows, POOL]`` candidate positions drawn with replacement in proportion to
    ``exp(log_pop)``, each row sorted: inverse-CDF lookups of row-sorted uniforms. The same draws
    as ``np.sort(rng.choice(len(log_pop), (n_rows, POOL), p=...), axis=1)`` (numpy's ``choice``
    looks up unsorted uniforms in the same CDF, and the lookup is monotone), at 2.3x its speed
    (10,000 candidates, 16,384 rows): sorted keys keep the binary search's lower bound."""
    weight = np.exp(log_pop - log_pop.max()).astype(np.float64)
    cdf = np.cumsum(weight / weight.sum())
    cdf /= cdf[-1]
    u = rng.random((n_rows, POOL))
    u.sort(axis=1)
    return cdf.searchsorted(u, side="right")


@dataclass
class Items:
    """The items' hidden attributes. Values index the vocabularies: ``colour`` :data:`COLOURS`,
    ``style`` :data:`STYLES`, ``brand`` :data:`BRANDS`, the others the :class:`Taxonomy` lists."""

    leaf: np.ndarray
    brand: np.ndarray
    colour: np.ndarray
    material: np.ndarray
    shape: np.ndarray
    size: np.ndarray
    style: np.ndarray
    has_feature: np.ndarray  # [n_items, 3] bool: which of its leaf's features an item has
    quality: np.ndarray
    log_popularity: np.ndarray

    def features(self, tax: Taxonomy, i: int) -> list[str]:
        """The features item ``i`` has (``non-stick``, ...)."""
        leaf_features = tax.leaf_features[self.leaf[i]]
        return [f for f, has in zip(leaf_features, self.has_feature[i], strict=True) if has]


@dataclass
class SyntheticWorld:
    """Everything the generator drew: the hidden truth behind a synthetic :class:`MMDataset`.

    Interactions are grouped by user; ``review`` holds the one-line review of every interaction,
    whatever its split (the ``review`` modality uses the training ones only).
    """

    taxonomy: Taxonomy
    items: Items
    user: np.ndarray
    item: np.ndarray
    split: np.ndarray
    rating: np.ndarray
    review: np.ndarray  # object array of str, one per interaction


def generate_world(options: SyntheticOptions) -> SyntheticWorld:
    """Draw the catalogue, the users, the interactions with their split, ratings and reviews."""
    tax = build_taxonomy()
    items = draw_items(options, tax)
    user, item = draw_interactions(options, tax, items)  # no pair repeats: nothing to deduplicate
    split = mmrec_split(user, seed=options.split_seed)
    rating, review = draw_reviews(tax, items, item, options.rng("reviews"))
    return SyntheticWorld(tax, items, user, item, split, rating, review)


def draw_items(options: SyntheticOptions, tax: Taxonomy) -> Items:
    """The items' hidden attributes: leaf priors, brands, then per item a leaf, a brand, attribute
    values, features, a quality and a popularity."""
    rng = options.rng("items")
    n, n_leaves, n_dept = options.n_items, len(tax.leaves), len(tax.departments)
    a = options.prior_concentration

    # leaf priors over the global vocabularies (zero outside the allowed values)
    def priors(allowed: list[np.ndarray], width: int) -> np.ndarray:
        out = np.zeros((n_leaves, width))
        for leaf, idx in enumerate(allowed):
            out[leaf, idx] = rng.dirichlet(np.full(len(idx), a))
        return out

    cat_of, dept_of = tax.leaf_cat, tax.leaf_dept
    p_colour = rng.dirichlet(np.full(len(COLOURS), a), size=n_leaves)
    p_style = rng.dirichlet(np.full(len(STYLES), a), size=n_leaves)
    p_material = priors([tax.cat_materials[c] for c in cat_of], len(tax.materials))
    p_shape = priors([tax.dept_shapes[d] for d in dept_of], len(tax.shapes))
    p_size = priors([tax.dept_sizes[d] for d in dept_of], len(tax.sizes))

    # brands: 70% specialise in a department (sell mostly there), the others sell everywhere
    n_brands = len(BRANDS)
    specialist = np.flatnonzero(rng.random(n_brands) < 0.7)
    brand_dept = np.ones((n_dept, n_brands))
    brand_dept[:, specialist] = 0.15
    brand_dept[rng.integers(n_dept, size=len(specialist)), specialist] = 6.0
    brand_dept *= rng.lognormal(0.0, 0.5, n_brands)  # brand sizes
    brand_style = rng.integers(len(STYLES), size=n_brands)
    brand_quality = rng.normal(0.0, 0.5, n_brands)

    leaf_share = rng.dirichlet(np.full(n_leaves, 3.0))
    leaf = rng.choice(n_leaves, size=n, p=leaf_share)
    brand = sample_rows(rng, brand_dept[dept_of[leaf]])
    style = np.where(rng.random(n) < 0.35, brand_style[brand], sample_rows(rng, p_style[leaf]))
    quality = brand_quality[brand] + rng.normal(0.0, 0.7, n)
    # popularity ranks follow quality, loosely (Gumbel-perturbed)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-(quality + rng.gumbel(size=n)))] = np.arange(1, n + 1)
    return Items(
        leaf=leaf,
        brand=brand,
        colour=sample_rows(rng, p_colour[leaf]),
        material=sample_rows(rng, p_material[leaf]),
        shape=sample_rows(rng, p_shape[leaf]),
        size=sample_rows(rng, p_size[leaf]),
        style=style,
        has_feature=rng.random((n, 3)) < 0.5,
        quality=quality,
        log_popularity=-options.pop_exponent * np.log(rank),
    )


def draw_interactions(
    options: SyntheticOptions, tax: Taxonomy, items: Items
) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) pairs, grouped by user, without repeats."""
    rng = options.rng("users")
    n_users, n_items = options.n_users, options.n_items
    n_leaves = len(tax.leaves)

    # interaction counts: 5 each, the rest spread by log-normal activity (a long tail)
    extra = max(options.n_interactions - MIN_USER_INTERACTIONS * n_users, 0)
    activity = rng.lognormal(0.0, options.activity_sigma, n_users)
    counts = MIN_USER_INTERACTIONS + rng.multinomial(extra, activity / activity.sum())
    counts = np.minimum(counts, n_items)

    # tastes over leaves: nested Dirichlet (department > category > leaf), with exploration
    a = options.taste_concentration
    dept = group_dirichlet(rng, a, np.zeros(len(tax.departments), dtype=np.int64), n_users)
    cat = group_dirichlet(rng, 2 * a, tax.cat_dept, n_users)
    leaf_t = group_dirichlet(rng, 4 * a, tax.leaf_cat, n_users)
    taste = dept[:, tax.leaf_dept] * cat[:, tax.leaf_cat] * leaf_t
    leaf_size = np.bincount(items.leaf, minlength=n_leaves)
    taste = (1 - options.explore) * taste * (leaf_size > 0) + options.explore * leaf_size / n_items
    taste /= taste.sum(1, keepdims=True)

    # attribute preferences, as log-weights: score(u, i) = sum of prefs[attr][u, value(i)]
    prefs = {}
    for attr, k, conc in (
        ("colour", len(COLOURS), a),
        ("material", len(tax.materials), 1.0),
        ("style", len(STYLES), a),
        ("brand", len(BRANDS), a),
    ):
        weights = rng.dirichlet(np.full(k, conc), size=n_users)
        prefs[attr] = (options.taste_strength * np.log(weights + 0.1 / k)).astype(np.float32)
    pop = items.log_popularity.astype(np.float32)

    def scores(users: np.ndarray, cand: np.ndarray) -> np.ndarray:
        s = np.broadcast_to(pop[cand], (len(users), len(cand))).copy()
        for attr, pref in prefs.items():
            s += pref[np.ix_(users, getattr(items, attr)[cand])]
        return s - np.log(rng.standard_exponential(s.shape, dtype=np.float32) + 1e-30)  # Gumbel

    def pooled(users: np.ndarray, cand: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row, item) picks of ``users`` in a large leaf: each scores a pool drawn by popularity
        on the attribute match plus the log of an item's copies in the pool (repeats merged); a
        user who wants more items than their pool holds scores the whole leaf."""
        pool = popularity_pool(rng, pop[cand], len(users))
        repeat = np.zeros(pool.shape, dtype=bool)
        repeat[:, 1:] = pool[:, 1:] == pool[:, :-1]
        s = np.zeros(pool.shape, dtype=np.float32)
        for attr, pref in prefs.items():
            s += np.take_along_axis(pref[users], getattr(items, attr)[cand][pool], 1)
        # an item drawn c times stands once, with log c added (the pool's popularity weight)
        start = np.flatnonzero(~repeat.ravel())
        copies = np.diff(np.append(start, repeat.size))
        s.ravel()[start] += np.log(copies).astype(np.float32)
        s -= np.log(rng.standard_exponential(s.shape, dtype=np.float32) + 1e-30)  # Gumbel
        s[repeat] = -np.inf
        enough = (~repeat).sum(1) >= m
        r, c = top_m(s[enough], m[enough])
        rows, picks = [np.flatnonzero(enough)[r]], [cand[pool[enough][r, c]]]
        if not enough.all():
            r, c = top_m(scores(users[~enough], cand), m[~enough])
            rows.append(np.flatnonzero(~enough)[r])
            picks.append(cand[c])
        return np.concatenate(rows), np.concatenate(picks)

    # leaves first (by taste), then items within each leaf by Gumbel-top-k
    per_leaf = np.minimum(rng.multinomial(counts, taste), leaf_size[None, :])
    out_u, out_i = [], []
    leaf_items = np.argsort(items.leaf, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(leaf_size)])
    for leaf in np.flatnonzero(leaf_size):
        cand = leaf_items[bounds[leaf] : bounds[leaf + 1]]
        users = np.flatnonzero(per_leaf[:, leaf])
        exact = len(cand) <= EXACT_LEAF_ITEMS
        for rows in chunks(len(users), len(cand) if exact else POOL):
            u = users[rows]
            if exact:
                r, c = top_m(scores(u, cand), per_leaf[u, leaf])
                out_u.append(u[r])
                out_i.append(cand[c])
            else:
                r, i = pooled(u, cand, per_leaf[u, leaf])
                out_u.append(u[r])
                out_i.append(i)

    # top-up: users whose leaves ran out of items pick the rest from the whole catalogue
    short = np.flatnonzero(per_leaf.sum(1) < counts)
    if len(short):
        user = np.concatenate(out_u)
        item = np.concatenate(out_i)
        everything = np.arange(n_items)
        for rows in chunks(len(short), n_items):
            u = short[rows]
            s = scores(u, everything) + np.log(taste[u][:, items.leaf] + 1e-12)
            row_of = np.full(n_users, -1)
            row_of[u] = np.arange(len(u))
            mine = row_of[user] >= 0
            s[row_of[user[mine]], item[mine]] = -np.inf  # no repeats
            r, c = top_m(s, counts[u] - per_leaf[u].sum(1))
            out_u.append(u[r])
            out_i.append(c)

    user = np.concatenate(out_u)
    item = np.concatenate(out_i)
    order = np.argsort(user, kind="stable")
    return user[order], item[order]
