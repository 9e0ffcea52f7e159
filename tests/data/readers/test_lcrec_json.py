import json

import pytest

from emmkgr_pyg.data.dataset import DataError
from emmkgr_pyg.data.readers import LcRecJsonReader


def test_office_statistics(shared):
    ds = LcRecJsonReader("Office").read(shared("amazon-office-2014"), "amazon_office")
    s = ds.stats()
    assert (s["n_users"], s["n_items"], s["n_interactions"]) == (4905, 2420, 53258)
    # MMRec protocol with seed 999, as ANCHORS.md section 3b reports for the authors' run
    assert s["splits"] == {"train": 40877, "valid": 5880, "test": 6501}
    mods = s["modalities"]
    assert mods["description"]["n_items_with"] == 1781  # missing descriptions stay missing
    assert mods["title"]["n_items_with"] == 2417
    assert mods["attributes"]["n_items_with"] == 2420
    assert ds.catalog.title[2] == "AT&T 210 Corded Phone, Black, 1 Handset"  # HTML entities decoded
    assert ds.catalog.categories[0] == [
        "Office Electronics",
        "Telephones & Accessories",
        "Cordless Telephones",
    ]


def _write(root, stem, inter, items):
    (root / f"{stem}.inter.json").write_text(json.dumps(inter))
    (root / f"{stem}.item.json").write_text(json.dumps(items))


def test_generic_stem_and_missing_fields(tmp_path):
    items = {
        str(i): {"title": f"thing {i}", "description": "", "brand": None, "categories": ""} for i in range(6)
    }
    items["5"] = {"title": "<b>bold</b> &amp; more"}
    _write(tmp_path, "Toy", {str(u): [0, 1, 2, 3, 4, 5] for u in range(3)}, items)
    ds = LcRecJsonReader("Toy").read(tmp_path, "toy")
    assert ds.n_items == 6 and len(ds.interactions) == 18
    assert "description" in ds.modalities and ds.modalities["description"].n_items_with == 0
    assert ds.catalog.title[5] == "bold & more"
    assert ds.modalities["attributes"].n_items_with == 0


def test_errors_name_file_and_fix(tmp_path):
    with pytest.raises(DataError, match=r"missing file .*Toy.inter.json"):
        LcRecJsonReader("Toy").read(tmp_path, "toy")
    _write(tmp_path, "Toy", {"0": [0, 1, 7]}, {"0": {}, "1": {}})
    with pytest.raises(DataError, match=r"Toy.inter.json: 1 interactions name items missing .*'7'"):
        LcRecJsonReader("Toy").read(tmp_path, "toy")
    (tmp_path / "Toy.item.json").write_text("{not json")
    with pytest.raises(DataError, match="Toy.item.json: not valid JSON"):
        LcRecJsonReader("Toy").read(tmp_path, "toy")


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"title": 12345}, r"field 'title' is an int \(12345\); it must be a string or null"),
        ({"categories": 7}, r"field 'categories' is an int \(7\); it must be a string \(comma-separated"),
        ({"categories": ["a", 3]}, r"field 'categories' is a list \(\['a', 3\]\)"),
        ({"description": {"en": "x"}}, r"field 'description' is a dict .*; it must be a string, a list of"),
        ({"brand": ["Acme"]}, r"field 'brand' is a list"),
        ({"title": "ink \ud83d toner"}, r"field 'title' holds a lone surrogate \\ud83d at character 4"),
        ("just a title", r"maps to str; expected an object \{title, description, brand, categories\}"),
    ],
    ids=[
        "numeric-title",
        "numeric-categories",
        "mixed-categories",
        "dict-description",
        "list-brand",
        "lone-surrogate",
        "not-an-object",
    ],
)
def test_metadata_of_the_wrong_type_names_file_and_item(tmp_path, meta, message):
    items = {str(i): {"title": f"thing {i}"} for i in range(3)}
    items["2"] = meta
    _write(tmp_path, "Toy", {"0": [0, 1, 2], "1": [0, 1, 2]}, items)
    with pytest.raises(DataError, match=message) as err:
        LcRecJsonReader("Toy").read(tmp_path, "toy")
    assert str(err.value).startswith(f"{tmp_path / 'Toy.item.json'}, item '2': ")


def test_null_metadata_and_paragraph_descriptions_are_accepted(tmp_path):
    items = {"0": None, "1": {"description": ["first", "second"], "categories": ["A", "B"]}, "2": {}}
    _write(tmp_path, "Toy", {"0": [0, 1, 2], "1": [0, 1, 2]}, items)
    ds = LcRecJsonReader("Toy").read(tmp_path, "toy")
    assert ds.modalities["description"].raw == ["first second"] and ds.catalog.categories[1] == ["A", "B"]
