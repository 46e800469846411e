"""Long op-fuzzing run, outside CI: every group of tests/test_fuzz_ops.py, in chunks of fresh
hypothesis seeds, until at least --cases cases were tried in all (default 100,000).

Each chunk runs in a child interpreter (a crash is a failed chunk, not a dead run) and appends
one JSON line to --log, so an interrupted run still has its counts. A failing chunk (a crash,
an oracle disagreement, a well-formed call rejected) is reported with its group and seed;
``python scripts/fuzz_long.py --replay GROUP SEED EXAMPLES`` runs that chunk again.
Exit status 0 only when every chunk passed. Usually started through scripts/fuzz_long.sh.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import test_fuzz_ops as fuzz  # noqa: E402

# Examples per chunk: about 3,000 cases in each group's chunk (a case per builder per example).
CHUNK = {"dense": 500, "spatial": 1000, "optim_layers": 1500}


def run_chunk(group: str, seed: int, examples: int) -> dict:
    """One chunk in a child interpreter: its counts, or {"failed": output}."""
    started = time.time()
    try:
        counts = fuzz.run_in_child("test_fuzz_ops", "run_properties", examples, fuzz.GROUPS[group], seed,
                                   timeout=3600)
    except (AssertionError, Exception) as e:  # child crashed, timed out or found a failure
        return {"group": group, "seed": seed, "examples": examples, "failed": str(e)[-6000:],
                "seconds": round(time.time() - started, 1)}
    return {"group": group, "seed": seed, "examples": examples, **counts, "seconds": round(time.time() - started, 1)}


def summarise(records: list[dict]) -> dict:
    """Per group and in all: chunks, cases tried, rejected, accepted, not compared, failures."""
    table: dict[str, dict] = {}
    for r in records:
        row = table.setdefault(r["group"], {"chunks": 0, "tried": 0, "rejected": 0, "accepted": 0,
                                            "not_compared": 0, "failures": 0})
        row["chunks"] += 1
        if "failed" in r:
            row["failures"] += 1
            continue
        for k in ("tried", "rejected", "accepted"):
            row[k] += r[k]
        row["not_compared"] += r["empty"] + r["unchecked"]
    total = {k: sum(row[k] for row in table.values()) for k in ("chunks", "tried", "rejected", "accepted",
                                                                "not_compared", "failures")}
    return {"groups": table, "total": total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000, help="stop once this many cases were tried in all")
    parser.add_argument("--log", type=Path, default=Path("fuzz_long.jsonl"), help="JSON line per chunk (appended)")
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--replay", nargs=3, metavar=("GROUP", "SEED", "EXAMPLES"))
    args = parser.parse_args(argv)
    if args.replay:
        group, seed, examples = args.replay[0], int(args.replay[1]), int(args.replay[2])
        record = run_chunk(group, seed, examples)
        print(json.dumps(record))
        return 1 if "failed" in record else 0
    records: list[dict] = []
    seed = args.first_seed
    while summarise(records)["total"]["tried"] < args.cases:
        for group in sorted(fuzz.GROUPS):
            record = run_chunk(group, seed, CHUNK[group])
            records.append(record)
            with args.log.open("a") as f:
                f.write(json.dumps(record) + "\n")
            status = "FAILED" if "failed" in record else f"{record['tried']} cases"
            print(f"[{time.strftime('%H:%M:%S')}] {group} seed {seed}: {status} ({record['seconds']} s); "
                  f"{summarise(records)['total']['tried']} in all", flush=True)
        seed += 1
    summary = summarise(records)
    print(json.dumps(summary, indent=2))
    for r in records:
        if "failed" in r:
            print(f"FAILED: {r['group']} seed {r['seed']} ({r['examples']} examples):\n{r['failed']}", file=sys.stderr)
    return 1 if summary["total"]["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
