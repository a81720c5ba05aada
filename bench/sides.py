"""The two sides a benchmark measures (no benchmark here): where each one's interpreter is,
and where its ``import atlas`` must resolve, so that a mix-up is caught, not measured."""

from __future__ import annotations

from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
IMPLS = ("ours", "ref")
INTERPRETERS = {
    "ours": REPO / ".venv" / "bin" / "python",
    "ref": BENCH / ".venv-ref" / "bin" / "python",
}
ATLAS_ROOTS = {"ours": REPO / "src", "ref": BENCH / ".venv-ref"}
