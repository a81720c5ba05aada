"""``atlas.format.ingestlog``: the list of files past ingests could not store, as JSON."""

from __future__ import annotations

import json

import pytest

from atlas.format.ingestlog import (
    FAILURES_KEY,
    LOG_FORMAT,
    Failure,
    decode_failures,
    encode_failures,
)


def _failure(i: int) -> Failure:
    return Failure(
        file=f"aoml/{i}/é.nc",
        dataset=f"aoml:{i}:é",
        reason="OSError: not a NetCDF file",
        size=100 + i,
        mtime="2024-01-02T03:04:05.000006+00:00",
        sha256="ab" * 32,
        atlas_version="0.1.0",
        when="2024-02-01T00:00:00+00:00",
    )


def test_round_trip() -> None:
    failures = [_failure(1), _failure(2)]
    data = encode_failures(failures)
    assert decode_failures(data) == failures
    assert decode_failures(encode_failures([])) == []


def test_the_layout_is_json_with_one_failure_a_line() -> None:
    data = encode_failures([_failure(1), _failure(2)])
    doc = json.loads(data)
    assert doc["format"] == LOG_FORMAT == 1
    assert doc["failures"][0]["dataset"] == "aoml:1:é"
    lines = data.decode().splitlines()
    assert len(lines) == 4 and lines[1].startswith('  {"file": "aoml/1/é.nc"')  # not escaped
    assert FAILURES_KEY == "ingest/failures.json"


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xff", "not JSON"),
        (b"{", "not JSON"),
        (b"[]", "not an ingest log of format 1"),
        (b'{"format": 2, "failures": []}', "not an ingest log of format 1"),
        (b'{"format": 1, "failures": {}}', "not an ingest log of format 1"),
        (b'{"format": 1, "failures": [{"file": "a"}]}', "malformed failure record"),
    ],
)
def test_what_is_not_a_log_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        decode_failures(data)
