"""``atlas demo``: synthetic profiles written, ingested and read across."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import run


def test_demo(tmp_path: Path) -> None:
    proc = run("demo", "--dir", tmp_path, "--files", "40", "--json")
    result = json.loads(proc.stdout)
    assert result["ingest"]["datasets_added"] == 40
    summary = result["summary"]
    assert summary["variable"] == "temperature" and summary["datasets"] == 40
    assert summary["count"] > 40 * 19 and -5 < summary["min"] < summary["mean"] < summary["max"] < 40
    assert (tmp_path / "profiles").is_dir() and (tmp_path / "profiles.atlas").is_dir()
