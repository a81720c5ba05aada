"""The public package: what ``import atlas`` loads, and what it leaves to later."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_import_atlas_leaves_pandas_to_the_first_catalogue(tmp_path: Path) -> None:
    script = (
        "import sys, atlas; assert 'pandas' not in sys.modules, 'imported with atlas'; "
        f"s = atlas.Atlas.create({str(tmp_path / 's')!r}); s.create_dataset('d').set_attribute('k', 1); s.flush(); "
        "t = s.catalog(attributes=['k']); assert 'pandas' in sys.modules and list(t['k']) == [1]"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr



def test_import_atlas_leaves_the_test_suites_and_pytest_alone() -> None:
    # atlas.testing needs pytest, a test dependency only
    script = (
        "import sys, atlas, atlas.storage; "
        "bad = sorted(m for m in sys.modules if m.startswith(('atlas.testing', 'pytest', '_pytest'))); "
        "assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
