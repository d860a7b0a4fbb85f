#!/usr/bin/env python3
# Turns bench/run.sh's raw wrk results into the one summary table (median [min–max], p50/p99, ratios to nginx).
"""Usage: summarize.py RESULTS.tsv EXTRA.tsv

RESULTS.tsv lines: scenario <TAB> round <TAB> 2xx req/s <TAB> p50 ms <TAB> p99 ms <TAB> errors <TAB> requests
(errors: non-2xx responses plus socket errors; req/s counts 2xx responses only)
EXTRA.tsv lines:   label <TAB> value          (printed under the table as is)
"""

import statistics
import sys

# (scenario, what it is compared with); order is the table's order.
SCENARIOS = [
    ("wasm hello", "nginx return 200"),
    ("wasm echo 1 KiB POST", "nginx return 200"),
    ("wasm todo index, 50 todos", "wasm todo index, 50 todos, no preinit"),
    ("wasm todo index, 50 todos, no preinit", "nginx return 200"),
    ("static 1 KiB", "nginx static 1 KiB"),
    ("static 100 KiB", "nginx static 100 KiB"),
    ("nginx return 200", None),
    ("nginx static 1 KiB", None),
    ("nginx static 100 KiB", None),
]
# "wasm hello + N idle conns" is compared with "wasm hello" of the same rounds.
IDLE_PREFIX = "wasm hello + "


def fmt_rps(x: float) -> str:
    return f"{x:,.0f}"


def main() -> int:
    results, extra = sys.argv[1], sys.argv[2]
    runs: dict[str, dict[int, tuple[float, float, float, int, int]]] = {}
    with open(results) as f:
        for line in f:
            if not line.strip():
                continue
            name, rnd, rps, p50, p99, errors, total = line.rstrip("\n").split("\t")
            runs.setdefault(name, {})[int(rnd)] = (
                float(rps),
                float(p50),
                float(p99),
                int(errors),
                int(total),
            )

    def med(name: str, i: int) -> float:
        return statistics.median(v[i] for v in runs[name].values())

    header = (
        "| scenario | 2xx req/s median [min–max] | p50 ms | p99 ms | compared with "
        "| req/s ratio [per-round min–max] | p50 ratio | p99 ratio | non-2xx/errors |"
    )
    print(header)
    print("|---|---|---|---|---|---|---|---|---|")
    idle = [(n, "wasm hello") for n in sorted(runs) if n.startswith(IDLE_PREFIX)]
    order = SCENARIOS[:6] + idle + SCENARIOS[6:]
    for name, ref in order:
        if name not in runs:
            continue
        rps = [v[0] for v in runs[name].values()]
        errors = sum(v[3] for v in runs[name].values())
        total = sum(v[4] for v in runs[name].values())
        cells = [
            name,
            f"{fmt_rps(statistics.median(rps))} [{fmt_rps(min(rps))}–{fmt_rps(max(rps))}]",
            f"{med(name, 1):.2f}",
            f"{med(name, 2):.2f}",
        ]
        if ref and ref in runs:
            per_round = [
                runs[name][r][0] / runs[ref][r][0]
                for r in runs[name]
                if r in runs[ref] and runs[ref][r][0] > 0
            ]
            ratio = med(name, 0) / med(ref, 0) if med(ref, 0) else float("nan")
            cells += [
                ref,
                f"{ratio:.2f} [{min(per_round):.2f}–{max(per_round):.2f}]"
                if per_round
                else f"{ratio:.2f}",
                f"{med(name, 1) / med(ref, 1):.2f}" if med(ref, 1) else "–",
                f"{med(name, 2) / med(ref, 2):.2f}" if med(ref, 2) else "–",
            ]
        else:
            cells += ["–", "–", "–", "–"]
        cells.append(f"{errors} ({100 * errors / total:.1f}%)" if total else str(errors))
        print("| " + " | ".join(cells) + " |")
    failed = sorted(n for n, r in runs.items() if any(v[3] for v in r.values()))
    if failed:
        print()
        print(
            "WARNING: non-2xx responses or socket errors in: "
            + ", ".join(failed)
            + " (req/s counts 2xx answers only; latencies include the failed ones;"
            + " the server's log is kept with BENCH_KEEP=1)"
        )
    print()
    with open(extra) as f:
        for line in f:
            if line.strip():
                label, _, value = line.rstrip("\n").partition("\t")
                print(f"- {label}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
