"""Fixtures of the integration tests: an empty store."""

from __future__ import annotations

from pathlib import Path

import pytest

import atlas


@pytest.fixture
def store(tmp_path: Path) -> atlas.Atlas:
    return atlas.Atlas.create(tmp_path / "s.atlas")
