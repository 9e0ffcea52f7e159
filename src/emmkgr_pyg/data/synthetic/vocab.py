"""The synthetic shop's vocabularies: colours, styles, brands and the catalogue tree.

Six departments, four categories each, three leaves each (``Home & Kitchen > Cookware > Frying
Pans``). A category has its own materials, a department its own shapes (fits, for clothing) and
sizes; colours, styles and brands are shared. Every leaf has three features (``non-stick``).
:func:`build_taxonomy` flattens the tree into arrays that the generator indexes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
