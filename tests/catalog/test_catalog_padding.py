"""``find`` compares strings with trailing blanks ignored, as CF/Argo readers do."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import atlas


def _store(tmp_path: Path) -> atlas.Atlas:
    s = atlas.Atlas.create(tmp_path / "s.atlas")
    for name, platform, station in (("a", "13857   ", "KNMI\0\0"), ("b", "2901746 ", " KNMI"), ("c", "13857", "X")):
        d = s.create_dataset(name)
        d.set_attribute("station", station)
        d.define_array("PLATFORM_NUMBER", "string", ["N_PROF"], [2], [2])
        d.write_array("PLATFORM_NUMBER", [0], np.array([platform, platform], dtype=object))
    s.flush()
    return s


def test_array_values_match_without_their_padding(tmp_path: Path) -> None:
    s = _store(tmp_path)
    assert s.find("PLATFORM_NUMBER == '13857'") == ["a", "c"]
    assert s.find("PLATFORM_NUMBER == '13857   '") == ["a", "c"]  # the literal's padding too
    assert s.find("PLATFORM_NUMBER in ['2901746', '0']") == ["b"]
    assert s.find("PLATFORM_NUMBER != '13857'") == ["b"]
    assert s.find("PLATFORM_NUMBER.max == '2901746'") == ["b"]


def test_attributes_match_without_their_padding(tmp_path: Path) -> None:
    s = _store(tmp_path)
    assert s.find("station == 'KNMI'") == ["a"]  # NULs are padding; leading blanks are not
    assert s.find(station="KNMI") == ["a"]
    assert s.find("station == ' KNMI'") == ["b"]
    assert s.find("station < 'KNMI '") == ["b"]


def test_catalog_leaves_variable_attributes_out_unless_asked(tmp_path: Path) -> None:
    s = _store(tmp_path)
    for name in s.list_datasets():
        d = s.open_dataset(name)
        d.set_attribute("PLATFORM_NUMBER.long_name", "Float unique identifier")
        d.set_attribute("PLATFORM_NUMBER.conventions", "WMO float identifier : A9IIIII")
    s.open_dataset("b").set_attribute("title", "Argo float vertical profile")
    s.flush()
    again = atlas.Atlas.open(s.location)  # from the manifest, as a new process sees it
    for handle in (s, again):
        default = handle.catalog()
        assert list(default.columns[:2]) == ["station", "title"]
        assert "PLATFORM_NUMBER.long_name" not in default.columns
        assert "PLATFORM_NUMBER.max" in default.columns
        full = handle.catalog(array_attributes=True)
        assert list(full["PLATFORM_NUMBER.conventions"]) == ["WMO float identifier : A9IIIII"] * 3
        assert full["title"].isna().tolist() == [True, False, True]
    assert again.find("`PLATFORM_NUMBER.long_name` == 'Float unique identifier'") == ["a", "b", "c"]


def test_many_columns_over_datasets_of_different_kinds(tmp_path: Path) -> None:
    # keys and arrays at different positions in each kind: the one-pass lookups must agree
    # with the lookups of one column at a time
    s = atlas.Atlas.create(tmp_path / "kinds.atlas")
    for i in range(6):
        d = s.create_dataset(f"d{i}")
        keys = [f"k{j}" for j in range(8)]
        for j, key in enumerate(keys[i % 3 :] + keys[: i % 3]):
            if (i + j) % 5:
                d.set_attribute(key, i * 10 + j if j % 2 else f"v{i}{j}  ")
        for j in range(7):
            if (i + j) % 3:
                name = f"a{(j + i) % 7}"
                d.define_array(name, "float64", ["n"], [2], [2], np.nan)
                d.write_array(name, [0], np.array([i, j], dtype=float))
    s.flush()
    again = atlas.Atlas.open(s.location)
    whole = again.catalog()
    for key in [c for c in whole.columns if c.startswith("k")]:
        one = atlas.Atlas.open(s.location).catalog(arrays=[], attributes=[key])
        assert whole[key].tolist() == one[key].tolist(), key
    for name in sorted({c.split(".")[0] for c in whole.columns if c.startswith("a")}):
        one = atlas.Atlas.open(s.location).catalog(arrays=[name], attributes=[])
        for field in ("min", "max", "shape"):
            column = f"{name}.{field}"
            assert whole[column].astype(object).tolist() == one[column].astype(object).tolist(), column
