"""``atlas.integrations.netcdf.report``: what an ingest tells, its warnings grouped by kind."""

from __future__ import annotations

import json

from atlas.integrations.netcdf.report import IngestReport, WarningRecord


def test_a_warning_kind_masks_names_and_numbers() -> None:
    w = WarningRecord("a.nc", "UserWarning", "variable 'temp' has 3 values out of range 1.5\nmore detail")
    assert w.kind == "UserWarning: variable '…' has N values out of range N"
    assert WarningRecord("a.nc", "RuntimeWarning", "").kind == "RuntimeWarning: "
    assert WarningRecord("b.nc", "UserWarning", 'group "eng" ignored').kind == "UserWarning: group '…' ignored"


def test_warnings_are_grouped_most_frequent_first_with_an_example() -> None:
    report = IngestReport(source="src", store="s")
    report.warnings = [
        WarningRecord("a.nc", "UserWarning", "group 'x' ignored"),
        WarningRecord("b.nc", "SerializationWarning", "saving variable t with floating point data"),
        WarningRecord("c.nc", "UserWarning", "group 'y' ignored"),
    ]
    assert report.warning_kinds() == [
        ("UserWarning: group '…' ignored", 2),
        ("SerializationWarning: saving variable t with floating point data", 1),
    ]
    assert report.warning_examples()["UserWarning: group '…' ignored"].file == "a.nc"


def test_as_dict_is_json_ready() -> None:
    report = IngestReport(source="src", store="s", created=True, files_found=3, files_present=1, seconds=1.23456)
    report.added = ["a", "b"]
    report.skipped = [("c.nc", "OSError: bad")]
    report.failed_before = [("d.nc", "ValueError: old")]
    report.warnings = [WarningRecord("a.nc", "UserWarning", "w 1")]
    doc = json.loads(json.dumps(report.as_dict()))
    assert doc["datasets_added"] == 2 and doc["added"] == ["a", "b"]
    assert doc["files_already_present"] == 1 and doc["created"] is True
    assert doc["skipped"] == [{"file": "c.nc", "reason": "OSError: bad"}]
    assert doc["failed_before"] == [{"file": "d.nc", "reason": "ValueError: old"}]
    assert doc["seconds"] == 1.235
    assert doc["warnings"] == [{"kind": "UserWarning: w N", "count": 1, "example": "a.nc"}]
    assert doc["warning_details"] == [{"file": "a.nc", "category": "UserWarning", "message": "w 1"}]
