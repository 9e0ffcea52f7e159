"""The embedded default dataset: a seeded synthetic shop whose side information carries real signal.

The generative story, every step drawn from ``seed`` (no external data):

1. **Catalogue tree.** Six departments, four categories each, three leaves each
   (``Home & Kitchen > Cookware > Frying Pans``). A category has its own materials, a department its
   own shapes (fits, for clothing) and sizes; colours and styles are shared. Every leaf has a few
   features (``non-stick``, ``waterproof``) and draws its own priors over colours, materials,
   shapes, sizes and styles (Dirichlet, ``prior_concentration``), so a leaf has typical looks.
2. **Brands.** Most brands specialise in one department (they sell mostly there); the others are
   generalists. Each brand has a quality level.
3. **Items.** An item draws a leaf, a brand (given the leaf's department), attribute values from the
   leaf's priors (the style sometimes from the brand's signature style), a subset of the leaf's
   features and a quality (its brand's plus noise). Popularity is a power law over items
   (``pop_exponent``), ranked mostly by quality.
4. **Texts.** The title joins the brand, some attributes and the leaf noun
   (``Acme Red Stainless Steel Round Frying Pan, Large``); the description is 1-3 sentences from
   varied templates mentioning more attributes and features; a share of items
   (``description_missing``) has none. Texts never mention an attribute value the item lacks.
5. **Image.** A feature vector made from the *visual* attributes only (colour, material, shape,
   style): their embeddings summed, through a fixed random two-layer network (tanh), scaled to unit
   variance, plus Gaussian noise (``image_noise``). A share of items (``image_missing``) has none.
6. **Users.** A user's taste is a nested Dirichlet over departments, categories and leaves
   (``taste_concentration``: small = focused), mixed with a little of the catalogue's leaf shares,
   plus Dirichlet preferences over colours, materials, styles and brands.
7. **Interactions.** A user draws a long-tailed count (at least 5, summing to ``n_interactions``),
   spreads it over leaves by taste, and in each leaf picks items without replacement by
   Gumbel-top-k over ``taste_strength`` x attribute match + popularity; a leaf with too few items
   hands the remainder to a top-up over the whole catalogue. No (user, item) pair repeats.
8. **Reviews.** Every interaction gets a rating (from the item's quality) and a one-line review
   that mentions the item's real attributes ("Love the red colour, would buy again."). The
   interactions are split by the MMRec protocol (``split_seed``) and the ``review`` modality of an
   item joins the reviews of its *training* interactions only (at most ``max_reviews_per_item``), so
   validation and test interactions never leak into the side information.

Modalities: ``title``, ``description`` and ``review`` (text) and ``image`` (feature). Everything is
vectorised with numpy (loops only over leaves and, to compose strings, over items), so the Amazon
Clothing size (39,387 users, 23,033 items, 278,677 interactions, 4096-d images) takes seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .dataset import TRAIN, Catalog, MMDataset, Modality
from .readers.base import Reader, finalize
from .readers.lcrec_json import text_modality
from .split import mmrec_split

MIN_USER_INTERACTIONS = 5

COLOURS = (
    "Black", "White", "Red", "Blue", "Green", "Grey",
    "Navy", "Pink", "Yellow", "Brown", "Beige", "Purple",
)  # fmt: skip
STYLES = ("Modern", "Classic", "Vintage", "Minimalist", "Rustic", "Sporty", "Elegant", "Playful")
BRANDS = (
    "Acme", "Northwind", "Brightwell", "Kestrel", "Lumora", "Oakhurst", "Vantora", "Pinecrest",
    "Solvane", "Tidewell", "Corvex", "Halden", "Meridia", "Quillon", "Stonebridge", "Veloce",
    "Wrenfield", "Zephra", "Ambrio", "Bexley", "Calloway", "Everly", "Foxglove", "Granton",
    "Hollis", "Ironvale", "Juniper", "Kinsley", "Larkspur", "Marlow", "Nimbus", "Orla",
    "Pemberton", "Ravel", "Summit", "Tamsin",
)  # fmt: skip

# (department, shapes, sizes, categories); category = (name, materials, leaves);
# leaf = (category-path name, title noun, features)
TAXONOMY: tuple = (
    ("Home & Kitchen", ("Round", "Square", "Oval", "Rectangular"), ("Small", "Medium", "Large"), (
        ("Cookware", ("Stainless Steel", "Cast Iron", "Aluminium", "Copper"), (
            ("Frying Pans", "Frying Pan", ("non-stick", "oven-safe", "induction-compatible")),
            ("Saucepans", "Saucepan", ("non-stick", "dishwasher-safe", "induction-compatible")),
            ("Stock Pots", "Stock Pot", ("oven-safe", "dishwasher-safe", "heavy-duty")),
        )),
        ("Tableware", ("Ceramic", "Porcelain", "Stoneware", "Glass"), (
            ("Dinner Plates", "Dinner Plate", ("microwave-safe", "dishwasher-safe",
                                               "chip-resistant")),
            ("Serving Bowls", "Serving Bowl", ("microwave-safe", "stackable", "dishwasher-safe")),
            ("Mugs", "Mug", ("microwave-safe", "insulated", "dishwasher-safe")),
        )),
        ("Storage & Organisation", ("Plastic", "Bamboo", "Glass", "Wicker"), (
            ("Food Containers", "Food Container", ("airtight", "food-safe", "stackable")),
            ("Storage Baskets", "Storage Basket", ("foldable", "stackable", "handwoven")),
            ("Spice Racks", "Spice Rack", ("wall-mountable", "rotating", "adjustable")),
        )),
        ("Bedding", ("Cotton", "Linen", "Microfiber", "Silk"), (
            ("Pillows", "Pillow", ("hypoallergenic", "machine-washable", "cooling")),
            ("Duvet Covers", "Duvet Cover", ("machine-washable", "wrinkle-resistant",
                                             "breathable")),
            ("Throw Blankets", "Throw Blanket", ("machine-washable", "reversible", "lightweight")),
        )),
    )),
    ("Clothing, Shoes & Jewelry", ("Slim-Fit", "Regular-Fit", "Relaxed-Fit", "Oversized"),
     ("Small", "Medium", "Large", "Extra Large"), (
        ("Women's Clothing", ("Cotton", "Silk", "Linen", "Polyester"), (
            ("Dresses", "Dress", ("machine-washable", "wrinkle-resistant", "fully-lined")),
            ("Blouses", "Blouse", ("breathable", "wrinkle-resistant", "machine-washable")),
            ("Cardigans", "Cardigan", ("machine-washable", "lightweight", "pilling-resistant")),
        )),
        ("Men's Clothing", ("Cotton", "Wool", "Denim", "Polyester"), (
            ("T-Shirts", "T-Shirt", ("breathable", "pre-shrunk", "machine-washable")),
            ("Jackets", "Jacket", ("waterproof", "insulated", "windproof")),
            ("Jeans", "Jeans", ("stretchy", "machine-washable", "fade-resistant")),
        )),
        ("Shoes", ("Leather", "Suede", "Canvas", "Mesh"), (
            ("Sneakers", "Sneakers", ("breathable", "lightweight", "cushioned")),
            ("Boots", "Boots", ("waterproof", "insulated", "slip-resistant")),
            ("Sandals", "Sandals", ("quick-drying", "adjustable", "cushioned")),
        )),
        ("Accessories", ("Leather", "Canvas", "Nylon", "Wool"), (
            ("Backpacks", "Backpack", ("water-resistant", "padded", "lightweight")),
            ("Wallets", "Wallet", ("card-protecting", "zippered", "water-resistant")),
            ("Scarves", "Scarf", ("lightweight", "machine-washable", "reversible")),
        )),
    )),
    ("Sports & Outdoors", ("Compact", "Round", "Rectangular", "Contoured"),
     ("Small", "Medium", "Large"), (
        ("Camping", ("Nylon", "Polyester", "Aluminium", "Canvas"), (
            ("Tents", "Tent", ("waterproof", "windproof", "quick-pitch")),
            ("Sleeping Bags", "Sleeping Bag", ("insulated", "lightweight", "water-resistant")),
            ("Camping Lanterns", "Camping Lantern", ("rechargeable", "waterproof", "dimmable")),
        )),
        ("Fitness", ("Rubber", "Foam", "Steel", "Neoprene"), (
            ("Yoga Mats", "Yoga Mat", ("non-slip", "extra-thick", "eco-friendly")),
            ("Dumbbells", "Dumbbell", ("adjustable", "non-slip", "rust-resistant")),
            ("Resistance Bands", "Resistance Band", ("latex-free", "anti-snap", "portable")),
        )),
        ("Cycling", ("Polycarbonate", "Aluminium", "Carbon Fibre", "Silicone"), (
            ("Bike Helmets", "Bike Helmet", ("lightweight", "ventilated", "adjustable")),
            ("Bike Lights", "Bike Light", ("rechargeable", "waterproof", "ultra-bright")),
            ("Water Bottles", "Water Bottle", ("insulated", "leak-proof", "food-safe")),
        )),
        ("Water Sports", ("Neoprene", "Silicone", "Vinyl", "Microfiber"), (
            ("Swim Goggles", "Swim Goggles", ("anti-fog", "leak-proof", "adjustable")),
            ("Dry Bags", "Dry Bag", ("waterproof", "roll-top", "lightweight")),
            ("Beach Towels", "Beach Towel", ("quick-drying", "sand-free", "absorbent")),
        )),
    )),
    ("Office Products", ("Round", "Square", "Rectangular", "Slim"), ("Small", "Medium", "Large"), (
        ("Writing Instruments", ("Plastic", "Metal", "Brass", "Resin"), (
            ("Ballpoint Pens", "Ballpoint Pen", ("refillable", "retractable", "smudge-proof")),
            ("Fountain Pens", "Fountain Pen", ("refillable", "smooth-writing", "gift-boxed")),
            ("Highlighters", "Highlighter", ("quick-drying", "smudge-proof", "chisel-tip")),
        )),
        ("Paper Products", ("Recycled Paper", "Kraft Paper", "Cardstock", "Linen Paper"), (
            ("Notebooks", "Notebook", ("acid-free", "dotted", "lay-flat")),
            ("Sticky Notes", "Sticky Notes", ("repositionable", "acid-free", "recyclable")),
            ("Planners", "Planner", ("undated", "acid-free", "hardcover")),
        )),
        ("Desk Accessories", ("Metal", "Wood", "Acrylic", "Leather"), (
            ("Pen Holders", "Pen Holder", ("non-slip", "weighted", "stackable")),
            ("File Trays", "File Tray", ("stackable", "non-slip", "letter-sized")),
            ("Desk Lamps", "Desk Lamp", ("dimmable", "energy-efficient", "flicker-free")),
        )),
        ("Office Furniture", ("Mesh", "Wood", "Steel", "Leather"), (
            ("Office Chairs", "Office Chair", ("height-adjustable", "ergonomic", "padded")),
            ("Standing Desks", "Standing Desk", ("height-adjustable", "motorised", "sturdy")),
            ("Bookshelves", "Bookshelf", ("sturdy", "wall-anchored", "adjustable")),
        )),
    )),
    ("Electronics", ("Slim", "Compact", "Curved", "Rugged"), ("Small", "Medium", "Large"), (
        ("Audio", ("Plastic", "Aluminium", "Fabric", "Silicone"), (
            ("Headphones", "Headphones", ("wireless", "noise-cancelling", "over-ear")),
            ("Bluetooth Speakers", "Bluetooth Speaker", ("waterproof", "portable", "rechargeable")),
            ("Earbuds", "Earbuds", ("wireless", "sweat-resistant", "noise-cancelling")),
        )),
        ("Computer Accessories", ("Plastic", "Aluminium", "Rubber", "Fabric"), (
            ("Keyboards", "Keyboard", ("wireless", "backlit", "mechanical")),
            ("Computer Mice", "Computer Mouse", ("wireless", "ergonomic", "silent-click")),
            ("Laptop Stands", "Laptop Stand", ("adjustable", "foldable", "ventilated")),
        )),
        ("Phone Accessories", ("Silicone", "Leather", "Plastic", "Tempered Glass"), (
            ("Phone Cases", "Phone Case", ("shockproof", "scratch-resistant", "grippy")),
            ("Chargers", "Charger", ("fast-charging", "overheat-protected", "multi-port")),
            ("Screen Protectors", "Screen Protector", ("bubble-free", "scratch-resistant",
                                                       "anti-glare")),
        )),
        ("Camera & Photo", ("Aluminium", "Carbon Fibre", "Plastic", "Nylon"), (
            ("Action Cameras", "Action Camera", ("waterproof", "image-stabilised", "wireless")),
            ("Tripods", "Tripod", ("lightweight", "foldable", "adjustable")),
            ("Camera Bags", "Camera Bag", ("padded", "water-resistant", "adjustable")),
        )),
    )),
    ("Toys & Games", ("Round", "Square", "Star-Shaped", "Animal-Shaped"),
     ("Small", "Medium", "Large"), (
        ("Building Toys", ("Plastic", "Wood", "Foam", "Metal"), (
            ("Building Blocks", "Building Block Set", ("non-toxic", "stackable", "food-safe")),
            ("Marble Runs", "Marble Run", ("expandable", "non-toxic", "glow-in-the-dark")),
            ("Magnetic Tiles", "Magnetic Tile Set", ("non-toxic", "durable", "rounded-edge")),
        )),
        ("Puzzles", ("Cardboard", "Wood", "Plastic", "Metal"), (
            ("Jigsaw Puzzles", "Jigsaw Puzzle", ("glare-free", "precision-cut", "thick-piece")),
            ("Brain Teasers", "Brain Teaser", ("portable", "pocket-sized", "challenging")),
            ("Puzzle Cubes", "Puzzle Cube", ("speed-tuned", "portable", "durable")),
        )),
        ("Outdoor Play", ("Nylon", "Plastic", "Rubber", "Polyester"), (
            ("Kites", "Kite", ("tear-resistant", "lightweight", "beginner-friendly")),
            ("Water Guns", "Water Gun", ("leak-proof", "long-range", "lightweight")),
            ("Jump Ropes", "Jump Rope", ("adjustable", "tangle-free", "lightweight")),
        )),
        ("Plush & Dolls", ("Plush", "Cotton", "Vinyl", "Polyester"), (
            ("Plush Toys", "Plush Toy", ("machine-washable", "hypoallergenic", "super-soft")),
            ("Dolls", "Doll", ("poseable", "washable", "non-toxic")),
            ("Hand Puppets", "Hand Puppet", ("machine-washable", "non-toxic", "lightweight")),
        )),
    )),
)  # fmt: skip


@dataclass
class Taxonomy:
    """The catalogue tree flattened into arrays; attribute values index the global vocabularies."""

    departments: list[str]
    categories: list[str]
    cat_dept: np.ndarray  # [C] department of each category
    leaves: list[str]
    nouns: list[str]
    leaf_cat: np.ndarray  # [L] category of each leaf
    leaf_features: list[tuple[str, ...]]
    materials: list[str]
    shapes: list[str]
    sizes: list[str]
    cat_materials: list[np.ndarray]  # per category: allowed indices into ``materials``
    dept_shapes: list[np.ndarray]  # per department: allowed indices into ``shapes``
    dept_sizes: list[np.ndarray]  # per department: allowed indices into ``sizes``

    @property
    def leaf_dept(self) -> np.ndarray:
        return self.cat_dept[self.leaf_cat]

    def path(self, leaf: int) -> list[str]:
        c = int(self.leaf_cat[leaf])
        return [self.departments[self.cat_dept[c]], self.categories[c], self.leaves[leaf]]


def build_taxonomy() -> Taxonomy:
    """Flatten :data:`TAXONOMY`."""
    vocab: dict[str, dict[str, int]] = {"materials": {}, "shapes": {}, "sizes": {}}

    def ids(kind: str, values: tuple[str, ...]) -> np.ndarray:
        table = vocab[kind]
        return np.array([table.setdefault(v, len(table)) for v in values], dtype=np.int64)

    departments: list[str] = []
    categories: list[str] = []
    leaves: list[str] = []
    nouns: list[str] = []
    leaf_features: list[tuple[str, ...]] = []
    cat_dept: list[int] = []
    leaf_cat: list[int] = []
    cat_materials: list[np.ndarray] = []
    dept_shapes: list[np.ndarray] = []
    dept_sizes: list[np.ndarray] = []
    for d, (dept, shapes, sizes, cats) in enumerate(TAXONOMY):
        departments.append(dept)
        dept_shapes.append(ids("shapes", shapes))
        dept_sizes.append(ids("sizes", sizes))
        for cat, materials, cat_leaves in cats:
            cat_dept.append(d)
            cat_materials.append(ids("materials", materials))
            for leaf, noun, features in cat_leaves:
                leaves.append(leaf)
                nouns.append(noun)
                leaf_cat.append(len(categories))
                leaf_features.append(features)
            categories.append(cat)
    return Taxonomy(
        departments=departments,
        categories=categories,
        cat_dept=np.array(cat_dept, dtype=np.int64),
        leaves=leaves,
        nouns=nouns,
        leaf_cat=np.array(leaf_cat, dtype=np.int64),
        leaf_features=leaf_features,
        materials=list(vocab["materials"]),
        shapes=list(vocab["shapes"]),
        sizes=list(vocab["sizes"]),
        cat_materials=cat_materials,
        dept_shapes=dept_shapes,
        dept_sizes=dept_sizes,
    )


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

    def text_fields(self, tax: Taxonomy, i: int) -> dict[str, str]:
        """The words that templates about item ``i`` may use, lower-case but the brand."""
        leaf = int(self.leaf[i])
        plural = tax.nouns[leaf] == tax.leaves[leaf]  # "Jeans", "Sneakers": leaf name = noun
        style = STYLES[self.style[i]].lower()
        shape = tax.shapes[self.shape[i]].lower()
        size = tax.sizes[self.size[i]].lower()
        feats = self.features(tax, i)
        return {
            "brand": BRANDS[self.brand[i]],
            "noun": tax.nouns[leaf].lower(),
            "category": tax.categories[tax.leaf_cat[leaf]].lower(),
            "colour": COLOURS[self.colour[i]].lower(),
            "material": tax.materials[self.material[i]].lower(),
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


class SyntheticReader(Reader):
    """Generate the synthetic shop (see the module docstring); ``read`` ignores ``root``.

    Args:
        n_users: number of users.
        n_items: number of items.
        n_interactions: total interactions (exact unless ``5 * n_users`` is larger).
        image_dim: dimension of the image feature vectors.
        seed: seeds everything but the split.
        split_seed: seed of the MMRec split.
        pop_exponent: power-law exponent of item popularity (0 = no popularity effect).
        taste_concentration: Dirichlet concentration of user tastes; smaller = more focused users.
        taste_strength: weight of the attribute match (colour, material, style, brand) in the
            choice of items within a leaf.
        explore: share of a user's leaf choices that follows the catalogue instead of the taste.
        activity_sigma: log-normal spread of the per-user interaction counts (long tail).
        prior_concentration: Dirichlet concentration of each leaf's attribute priors.
        image_hidden: width of the random network making the image vectors.
        image_noise: standard deviation of the image noise (the clean signal has unit variance).
        description_missing: share of items without a description.
        image_missing: share of items without an image.
        max_reviews_per_item: reviews joined into an item's ``review`` text (``None``: all).
    """

    def __init__(
        self,
        n_users: int = 3000,
        n_items: int = 2000,
        n_interactions: int = 30000,
        image_dim: int = 512,
        seed: int = 0,
        split_seed: int = 999,
        pop_exponent: float = 0.8,
        taste_concentration: float = 0.3,
        taste_strength: float = 1.0,
        explore: float = 0.1,
        activity_sigma: float = 1.0,
        prior_concentration: float = 0.7,
        image_hidden: int = 256,
        image_noise: float = 0.5,
        description_missing: float = 0.2,
        image_missing: float = 0.05,
        max_reviews_per_item: int | None = 20,
    ) -> None:
        super().__init__(split_seed)
        if n_users < 1 or n_items < 2 * MIN_USER_INTERACTIONS or image_dim < 1:
            raise ValueError(
                f"SyntheticReader: need n_users >= 1, n_items >= {2 * MIN_USER_INTERACTIONS} and "
                f"image_dim >= 1 (got {n_users}, {n_items}, {image_dim})."
            )
        self.n_users = n_users
        self.n_items = n_items
        self.n_interactions = n_interactions
        self.image_dim = image_dim
        self.seed = seed
        self.pop_exponent = pop_exponent
        self.taste_concentration = taste_concentration
        self.taste_strength = taste_strength
        self.explore = explore
        self.activity_sigma = activity_sigma
        self.prior_concentration = prior_concentration
        self.image_hidden = image_hidden
        self.image_noise = image_noise
        self.description_missing = description_missing
        self.image_missing = image_missing
        self.max_reviews_per_item = max_reviews_per_item

    def settings(self) -> dict[str, Any]:
        """The generator's options (they and the code determine the dataset)."""
        return {
            k: getattr(self, k)
            for k in (
                "n_users", "n_items", "n_interactions", "image_dim", "seed", "split_seed",
                "pop_exponent", "taste_concentration", "taste_strength", "explore",
                "activity_sigma", "prior_concentration", "image_hidden", "image_noise",
                "description_missing", "image_missing", "max_reviews_per_item",
            )
        }  # fmt: skip

    def read(self, root: str | Path | None, name: str = "synthetic") -> MMDataset:
        """Generate the dataset (``root`` is ignored: nothing is read)."""
        world = self.generate()
        tax = world.taxonomy
        rng = self._rng("texts")
        titles = _titles(tax, world.items, rng)
        descriptions = _descriptions(tax, world.items, rng, self.description_missing)
        image_items, image = self._image(world)
        modalities = {
            "title": text_modality("title", titles),
            "description": text_modality("description", descriptions),
            "review": text_modality("review", self._review_texts(world)),
            "image": Modality("image", "feature", image_items, features=image),
        }
        width = max(6, len(str(self.n_items - 1)))
        catalog = Catalog(
            item_ids=[f"SYN-{i:0{width}d}" for i in range(self.n_items)],
            title=titles,
            brand=[BRANDS[b] for b in world.items.brand],
            categories=[tax.path(int(leaf)) for leaf in world.items.leaf],
            modalities=modalities,
        )
        uwidth = max(6, len(str(self.n_users - 1)))
        report = {
            "generator": "emmkgr_pyg.data.synthetic.SyntheticReader",
            "seed": self.seed,
            "settings": self.settings(),
            "split": f"mmrec protocol, seed {self.split_seed}",
            "items_without_interactions": int(self.n_items - len(np.unique(world.item))),
        }
        return finalize(
            name,
            [f"SYN-U{u:0{uwidth}d}" for u in range(self.n_users)],
            world.user,
            world.item,
            catalog,
            split=world.split,
            rating=world.rating,
            report=report,
            source=f"SyntheticReader(seed={self.seed})",
        )

    # ------------------------------------------------------------------ generation

    def _rng(self, stream: str) -> np.random.Generator:
        """An independent generator per part of the story, so that e.g. the image network does not
        change when ``n_users`` does."""
        key = [ord(c) for c in stream]
        return np.random.default_rng(np.random.SeedSequence([self.seed, *key]))

    def generate(self) -> SyntheticWorld:
        """Draw the catalogue, the users, the interactions with their split, ratings and reviews."""
        tax = build_taxonomy()
        items = self._items(tax)
        user, item = self._interactions(tax, items)  # no pair repeats: nothing to deduplicate
        split = mmrec_split(user, seed=self.split_seed)
        rating, review = _reviews(tax, items, item, self._rng("reviews"))
        return SyntheticWorld(tax, items, user, item, split, rating, review)

    def _items(self, tax: Taxonomy) -> Items:
        rng = self._rng("items")
        n, n_leaves, n_dept = self.n_items, len(tax.leaves), len(tax.departments)
        a = self.prior_concentration

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
        brand = _sample_rows(rng, brand_dept[dept_of[leaf]])
        style = np.where(rng.random(n) < 0.35, brand_style[brand], _sample_rows(rng, p_style[leaf]))
        quality = brand_quality[brand] + rng.normal(0.0, 0.7, n)
        # popularity ranks follow quality, loosely (Gumbel-perturbed)
        rank = np.empty(n, dtype=np.int64)
        rank[np.argsort(-(quality + rng.gumbel(size=n)))] = np.arange(1, n + 1)
        return Items(
            leaf=leaf,
            brand=brand,
            colour=_sample_rows(rng, p_colour[leaf]),
            material=_sample_rows(rng, p_material[leaf]),
            shape=_sample_rows(rng, p_shape[leaf]),
            size=_sample_rows(rng, p_size[leaf]),
            style=style,
            has_feature=rng.random((n, 3)) < 0.5,
            quality=quality,
            log_popularity=-self.pop_exponent * np.log(rank),
        )

    def _interactions(self, tax: Taxonomy, items: Items) -> tuple[np.ndarray, np.ndarray]:
        """(user, item) pairs, grouped by user, without repeats."""
        rng = self._rng("users")
        n_users, n_items = self.n_users, self.n_items
        n_leaves = len(tax.leaves)

        # interaction counts: 5 each, the rest spread by log-normal activity (a long tail)
        extra = max(self.n_interactions - MIN_USER_INTERACTIONS * n_users, 0)
        activity = rng.lognormal(0.0, self.activity_sigma, n_users)
        counts = MIN_USER_INTERACTIONS + rng.multinomial(extra, activity / activity.sum())
        counts = np.minimum(counts, n_items)

        # tastes over leaves: nested Dirichlet (department > category > leaf), with exploration
        a = self.taste_concentration
        dept = _group_dirichlet(rng, a, np.zeros(len(tax.departments), dtype=np.int64), n_users)
        cat = _group_dirichlet(rng, 2 * a, tax.cat_dept, n_users)
        leaf_t = _group_dirichlet(rng, 4 * a, tax.leaf_cat, n_users)
        taste = dept[:, tax.leaf_dept] * cat[:, tax.leaf_cat] * leaf_t
        leaf_size = np.bincount(items.leaf, minlength=n_leaves)
        taste = (1 - self.explore) * taste * (leaf_size > 0) + self.explore * leaf_size / n_items
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
            prefs[attr] = (self.taste_strength * np.log(weights + 0.1 / k)).astype(np.float32)
        pop = items.log_popularity.astype(np.float32)

        def scores(users: np.ndarray, cand: np.ndarray) -> np.ndarray:
            s = np.broadcast_to(pop[cand], (len(users), len(cand))).copy()
            for attr, pref in prefs.items():
                s += pref[np.ix_(users, getattr(items, attr)[cand])]
            return s - np.log(rng.standard_exponential(s.shape, dtype=np.float32) + 1e-30)  # Gumbel

        # leaves first (by taste), then items within each leaf by Gumbel-top-k
        per_leaf = np.minimum(rng.multinomial(counts, taste), leaf_size[None, :])
        out_u, out_i = [], []
        leaf_items = np.argsort(items.leaf, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(leaf_size)])
        for leaf in np.flatnonzero(leaf_size):
            cand = leaf_items[bounds[leaf] : bounds[leaf + 1]]
            users = np.flatnonzero(per_leaf[:, leaf])
            for rows in _chunks(len(users), len(cand)):
                u = users[rows]
                r, c = _top_m(scores(u, cand), per_leaf[u, leaf])
                out_u.append(u[r])
                out_i.append(cand[c])

        # top-up: users whose leaves ran out of items pick the rest from the whole catalogue
        short = np.flatnonzero(per_leaf.sum(1) < counts)
        if len(short):
            user = np.concatenate(out_u)
            item = np.concatenate(out_i)
            everything = np.arange(n_items)
            for rows in _chunks(len(short), n_items):
                u = short[rows]
                s = scores(u, everything) + np.log(taste[u][:, items.leaf] + 1e-12)
                row_of = np.full(n_users, -1)
                row_of[u] = np.arange(len(u))
                mine = row_of[user] >= 0
                s[row_of[user[mine]], item[mine]] = -np.inf  # no repeats
                r, c = _top_m(s, counts[u] - per_leaf[u].sum(1))
                out_u.append(u[r])
                out_i.append(c)

        user = np.concatenate(out_u)
        item = np.concatenate(out_i)
        order = np.argsort(user, kind="stable")
        return user[order], item[order]

    def _image(self, world: SyntheticWorld) -> tuple[np.ndarray, np.ndarray]:
        """(items with an image, their features): visual attributes through a fixed random MLP."""
        tax = world.taxonomy
        net = self._rng("image-network")
        h = np.zeros((self.n_items, self.image_hidden), dtype=np.float32)
        for values, k in (
            (world.items.colour, len(COLOURS)),
            (world.items.material, len(tax.materials)),
            (world.items.shape, len(tax.shapes)),
            (world.items.style, len(STYLES)),
        ):
            emb = net.normal(0.0, 0.5, (k, self.image_hidden)).astype(np.float32)
            h += emb[values]
        h = np.tanh(h)
        w = net.standard_normal((self.image_hidden, self.image_dim), dtype=np.float32)
        w /= np.sqrt(self.image_hidden * float(np.mean(h * h)))  # unit-variance outputs

        rng = self._rng("image")
        keep = np.flatnonzero(rng.random(self.n_items) >= self.image_missing)
        out = np.empty((len(keep), self.image_dim), dtype=np.float32)
        for rows in _chunks(len(keep), self.image_dim):
            block = h[keep[rows]] @ w
            block += self.image_noise * rng.standard_normal(block.shape, dtype=np.float32)
            out[rows] = block
        return keep, out

    def _review_texts(self, world: SyntheticWorld) -> list[str | None]:
        """Per item: its training interactions' reviews joined (``None`` without any)."""
        train = np.flatnonzero(world.split == TRAIN)
        train = train[np.argsort(world.item[train], kind="stable")]
        counts = np.bincount(world.item[train], minlength=self.n_items)
        groups = np.split(world.review[train], np.cumsum(counts)[:-1])
        cap = self.max_reviews_per_item
        return [" ".join(g[:cap]) if len(g) else None for g in groups]


# ---------------------------------------------------------------------- helpers


def _sample_rows(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One categorical draw per row of non-negative ``weights`` ([N, K])."""
    cum = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * cum[:, -1]
    return np.minimum((u[:, None] >= cum).sum(1), weights.shape[1] - 1)


def _group_dirichlet(rng: np.random.Generator, alpha: float, group: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows of independent Dirichlet(alpha) draws within each group of columns."""
    g = rng.gamma(alpha, size=(n, len(group))) + 1e-30
    sums = g @ np.eye(int(group.max()) + 1)[group]
    return g / sums[:, group]


def _chunks(n_rows: int, width: int, budget: int = 1 << 22) -> list[slice]:
    """Row slices so that a ``[rows, width]`` block holds about ``budget`` entries."""
    step = max(1, budget // max(width, 1))
    return [slice(s, min(s + step, n_rows)) for s in range(0, n_rows, step)]


def _top_m(keys: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of the ``m[r]`` largest keys of each row ``r`` (``1 <= m[r] <= width``)."""
    k = int(m.max())
    if k < keys.shape[1]:
        top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(keys.shape[1]), keys.shape)
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(keys, top, 1), axis=1), 1)
    mask = np.arange(top.shape[1])[None, :] < m[:, None]
    return np.nonzero(mask)[0], top[mask]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _join(words: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _titles(tax: Taxonomy, items: Items, rng: np.random.Generator) -> list[str]:
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


def _descriptions(
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
        fields = items.text_fields(tax, i)
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


def _reviews(
    tax: Taxonomy, items: Items, item: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(rating, review) of every interaction with ``item``; ratings follow the item's quality."""
    logit = 1.0 + items.quality[item] + rng.normal(0.0, 1.0, len(item))
    rating = 1 + np.digitize(logit, [-1.0, 0.0, 0.8, 1.6])
    negative = (rating < 4).astype(np.int64)
    fields = [items.text_fields(tax, i) for i in range(len(items.leaf))]

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
