"""Regenerate ``sample_data/`` byte for byte (digital reference study, seed 2026).

Usage (from the repository root)::

    python scripts/make_sample_data.py [--out sample_data]

Writes ``baseline/``, ``followup/`` (DICOM) and ``truth/`` next to ``README.md`` in the
output folder; existing study folders there are replaced. Deterministic: same code ->
identical bytes (no clock, fixed UIDs and file names).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from myoimg.phantom import generate_study

SEED = 2026
VARIANT = "standard"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "sample_data"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".generating"
    if tmp.exists():
        shutil.rmtree(tmp)
    t0 = time.perf_counter()
    generate_study(tmp, seed=SEED, variant=VARIANT, progress=lambda m: print(f"  {m}", flush=True))
    for name in ("baseline", "followup", "truth"):
        if (out / name).exists():
            shutil.rmtree(out / name)
        (tmp / name).rename(out / name)
    tmp.rmdir()
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 1e6:.1f} MB) in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
