"""A large Argo-like tree for ingest benchmarks: the shared Argo sample linked many times over.

Each copy gets its own float ids (``13857`` becomes ``113857``, ``213857``... for copies
1, 2...), in the directory names and in the file names, so every file of the tree has a
name of its own. Files are symbolic links to the sample (nothing is copied); the ingest
reads them as any other file.

    .venv/bin/python bench/argo_tree.py /tmp/argo8 --copies 8     # 5,352 files

The sample holds 669 files (profiles, and each float's ``_prof``, ``_meta``, ``_tech`` and
``_Rtraj`` files), so 8 copies give 5,352 files, 174 MiB.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "argo"


def float_dirs(sample: Path) -> list[Path]:
    """The float directories of the sample (``DAC/FLOAT``)."""
    return sorted(p for p in sample.glob("*/*") if p.is_dir())


def make_tree(out: Path, copies: int, sample: Path = SAMPLE) -> int:
    """Link ``copies`` copies of ``sample`` under ``out`` (emptied first); return the number
    of files."""
    if out.exists():
        shutil.rmtree(out)
    count = 0
    for k in range(copies):
        for fdir in float_dirs(sample):
            dac, float_id = fdir.parent.name, fdir.name
            new_id = float_id if k == 0 else f"{k}{float_id}"
            for src in sorted(fdir.rglob("*.nc")):
                rel = src.relative_to(fdir)
                dest = out / dac / new_id / rel.parent / rel.name.replace(float_id, new_id)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(src.resolve(), dest)
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="directory to make (emptied if it exists)")
    parser.add_argument("--copies", type=int, default=8, help="copies of the sample (default 8: 5,352 files)")
    parser.add_argument("--sample", type=Path, default=SAMPLE, help=f"the Argo sample (default {SAMPLE})")
    args = parser.parse_args()
    if not args.sample.is_dir():
        raise SystemExit(f"no Argo sample at {args.sample}")
    n = make_tree(args.out, args.copies, args.sample)
    size = sum(p.stat().st_size for p in args.out.rglob("*.nc"))
    print(f"{args.out}: {n} files, {size / 2**20:.1f} MiB (links to {args.sample})")


if __name__ == "__main__":
    main()
