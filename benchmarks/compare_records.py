"""Compare two recorded results field by field, wall times aside: ``records.csv`` files row by row, or
JSON files (``protocol.json``, ``claims.json``, ``leaderboard.json``) value by value.

    python benchmarks/compare_records.py OLD/records.csv NEW/records.csv
    python benchmarks/compare_records.py OLD/protocol.json NEW/protocol.json
    python benchmarks/compare_records.py OLD/records.csv NEW/records.csv --old-arms --skip-arm continual_backprop

``--old-arms`` compares only the records of arms OLD has (NEW may add arms: they are listed, not
compared); ``--skip-arm NAME`` (repeatable) leaves an arm out on both sides (one whose change is known).

Exit status 0 when they agree, 1 when they differ (the first differences are printed). Accuracies,
losses and step counts are exactly reproducible on CPU, so any difference is a change in behaviour.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

TIME_WORDS = ("seconds", "time", "date", "elapsed", "wall")
"""Keys (and record columns) holding wall times or dates: machine-dependent, left out."""


def _timed(key: str) -> bool:
    return any(word in key for word in TIME_WORDS)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return sorted(rows, key=lambda r: (r.get("arm", ""), r.get("seed", ""), int(r.get("round") or 0)))


def compare_csv(old: Path, new: Path, *, old_arms: bool = False, skip: tuple[str, ...] = ()) -> list[str]:
    a, b = _rows(old), _rows(new)
    a = [r for r in a if r.get("arm") not in skip]
    kept = {r.get("arm") for r in a}
    if old_arms:
        added = sorted({str(r.get("arm")) for r in b} - kept - set(skip))
        if added:
            print(f"arms only in {new} (not compared): {', '.join(added)}")
    b = [r for r in b if r.get("arm") not in skip and (not old_arms or r.get("arm") in kept)]
    if len(a) != len(b):
        return [f"{len(a)} records against {len(b)}"]
    out = []
    if a and set(a[0]) != set(b[0]):
        out.append(f"columns differ: {sorted(set(a[0]) ^ set(b[0]))}")
    for ra, rb in zip(a, b, strict=True):
        for key in sorted(set(ra) & set(rb)):
            if not _timed(key) and ra[key] != rb[key]:
                out.append(
                    f"{ra.get('arm')} seed {ra.get('seed')} round {ra.get('round')}: {key} {ra[key]} -> {rb[key]}"
                )
    return out


def _walk(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if _timed(key):
                continue
            if key not in a or key not in b:
                out.append(f"{path}/{key}: only in {'new' if key not in a else 'old'}")
            else:
                _walk(a[key], b[key], f"{path}/{key}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _walk(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {a!r} -> {b!r}")


def compare_json(old: Path, new: Path) -> list[str]:
    out: list[str] = []
    _walk(json.loads(old.read_text()), json.loads(new.read_text()), "", out)
    return out


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--old-arms", action="store_true", help="records.csv: compare only OLD's arms")
    parser.add_argument("--skip-arm", action="append", default=[], help="records.csv: leave this arm out")
    args = parser.parse_args(argv)
    old, new = args.old, args.new
    if old.suffix == ".csv":
        differences = compare_csv(old, new, old_arms=args.old_arms, skip=tuple(args.skip_arm))
    elif args.old_arms or args.skip_arm:
        parser.error("--old-arms and --skip-arm apply to records.csv files")
    else:
        differences = compare_json(old, new)
    print(f"{new}: {len(differences)} difference(s) from {old}")
    for line in differences[:10]:
        print("  " + line)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
