"""Print a Markdown table of bench_detection.py result files (ratio of the last to the first).

Usage:
    python benchmarks/summarize_results.py benchmarks/results/bench-1M.json \
        benchmarks/results/bench-10M.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RULES = (
    "balance_deduction_on_failure",
    "consecutive_failures",
    "balance_mismatch_detection",
    "negative_balance_detection",
    "balance_chain_break",
    "temporal_duplicate_detection",
    "concurrent_transaction_detection",
)


def _row(title: str, values: list[Any]) -> str:
    return "| " + " | ".join([title, *(str(v) for v in values)]) + " |"


def table(results: list[dict[str, Any]], names: list[str]) -> str:
    lines = [_row("", names), "|---" * (len(names) + 1) + "|"]

    def add(title: str, get: Any) -> None:
        values = []
        for r in results:
            try:
                values.append(get(r))
            except (KeyError, TypeError):
                values.append("–")
        lines.append(_row(title, values))

    add(
        "server",
        lambda r: (
            f"PostgreSQL {r['server']['server_version'].split()[0]}, "
            f"shared_buffers {r['server']['shared_buffers']}"
        ),
    )
    add(
        "log rows / cards / scans", lambda r: f"{r['log_rows']:,} / {r['cards']:,} / {r['scans']:,}"
    )
    add(
        "load average at start (1/5/15 min)",
        lambda r: " / ".join(f"{x:.1f}" for x in r["load_average_start"]),
    )
    add("migrate (incl. reference indexes), s", lambda r: f"{r['migrate_ms'] / 1000:.1f}")
    add("first cycle, ms", lambda r: f"{r['first_cycle_ms']:.0f}")
    add(
        "catch-up: critical job runs / total s / median per run ms",
        lambda r: "{runs} / {total_s:.1f} / {per_run_median_ms:.0f}".format(
            **r["catch_up_critical"]
        ),
    )
    add(
        "catch-up: medium job runs / total s / median per run ms",
        lambda r: "{runs} / {total_s:.1f} / {per_run_median_ms:.0f}".format(**r["catch_up_medium"]),
    )
    add("first cycle + catch-up, s", lambda r: f"{r['first_cycle_plus_catch_up_s']:.1f}")
    add(
        "**critical job after 1 000 new transactions: median ms**",
        lambda r: f"**{r['critical_after_1000']['median_ms']:.1f}**",
    )
    add("… p95 ms (rounds)", lambda r: "{p95_ms:.1f} ({runs})".format(**r["critical_after_1000"]))
    add(
        "… min / max ms", lambda r: "{min_ms:.1f} / {max_ms:.1f}".format(**r["critical_after_1000"])
    )
    for rule in RULES:
        add(
            f"… {rule} (median ms)",
            lambda r, rule=rule: f"{r['critical_after_1000_rule_median_ms'][rule]:.1f}",
        )
    add("critical job with nothing new, ms", lambda r: f"{r['critical_idle_ms']:.1f}")
    add(
        "**full balance sweep (run_medium_detection): median ms**",
        lambda r: f"**{r['full_sweep']['median_ms']:.0f}**",
    )
    add(
        "… balance_mismatch_detection sweep (median ms, cards)",
        lambda r: (
            f"{r['full_sweep_rule_median_ms']['balance_mismatch_detection']:.0f}"
            f" ({r['full_sweep_cards_checked']:,})"
        ),
    )
    add("health snapshot: median ms", lambda r: f"{r['health_snapshot']['median_ms']:.1f}")
    add(
        "anomalies found / injected",
        lambda r: "{detected} / {injected}".format(**r["ground_truth"]),
    )
    add("unexpected events", lambda r: r["ground_truth"]["unexpected"])
    if len(results) >= 2:
        first, last = results[0], results[-1]
        ratio = last["critical_after_1000"]["median_ms"] / first["critical_after_1000"]["median_ms"]
        lines.append("")
        lines.append(f"Critical-job median ratio {names[-1]} / {names[0]}: {ratio:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--names", nargs="*", help="column titles (default: the labels)")
    args = parser.parse_args()
    results = [json.loads(f.read_text()) for f in args.files]
    names = args.names or [r["label"] for r in results]
    print(table(results, names))


if __name__ == "__main__":
    main()
