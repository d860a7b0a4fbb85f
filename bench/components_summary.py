#!/usr/bin/env python3
# Turns bench/components.sh's raw wrk results into its one table: wasmhost against `wasmtime serve` per component, median [min–max], p50/p99, ratios.
"""Usage: components_summary.py RESULTS.tsv EXTRA.tsv

RESULTS.tsv lines: scenario <TAB> round <TAB> 2xx req/s <TAB> p50 ms <TAB> p99 ms
                   <TAB> errors <TAB> requests <TAB> server CPU µs per request
(scenario: "<server>: <what>", server "wasmhost" or "wasmtime serve[ flags]";
errors: non-2xx responses plus socket errors; req/s counts 2xx responses only)
EXTRA.tsv lines:   label <TAB> value          (printed under the table as is)

Each "wasmhost: X" row is compared with the "wasmtime serve...: X" row of the
same X, round by round; "wasmhost: JSON-ABI hello module" with
"wasmhost: Rust hello component".
"""

import statistics
import sys

HEADLINE = "Rust hello component"
REFERENCE = ("wasmhost: JSON-ABI hello module", f"wasmhost: {HEADLINE}")


def fmt_rps(x: float) -> str:
    return f"{x:,.0f}"


def main() -> int:
    results, extra = sys.argv[1], sys.argv[2]
    runs: dict[str, dict[int, tuple[float, float, float, int, int, float]]] = {}
    order: list[str] = []
    with open(results) as f:
        for line in f:
            if not line.strip():
                continue
            name, rnd, rps, p50, p99, errors, total, cpu = line.rstrip("\n").split("\t")
            if name not in runs:
                order.append(name)
            runs.setdefault(name, {})[int(rnd)] = (
                float(rps),
                float(p50),
                float(p99),
                int(errors),
                int(total),
                float(cpu),
            )

    def med(name: str, i: int) -> float:
        return statistics.median(v[i] for v in runs[name].values())

    def what(name: str) -> str:
        return name.split(": ", 1)[1]

    # Pairs: each wasmhost row with the wasmtime serve row of the same component.
    refs: dict[str, str] = {}
    for name in order:
        if name.startswith("wasmhost: "):
            twins = [n for n in order if n.startswith("wasmtime serve") and what(n) == what(name)]
            if twins:
                refs[name] = twins[0]
    if REFERENCE[0] in runs and REFERENCE[1] in runs:
        refs[REFERENCE[0]] = REFERENCE[1]
    # Table order: each component's wasmhost row, then its wasmtime serve row;
    # the JSON-ABI reference last.
    rows: list[str] = []
    for name in order:
        if name in rows or name == REFERENCE[0]:
            continue
        if name.startswith("wasmhost: "):
            rows.append(name)
            if name in refs:
                rows.append(refs[name])
        elif name not in refs.values():
            rows.append(name)
    if REFERENCE[0] in runs:
        rows.append(REFERENCE[0])

    print(
        "| scenario | 2xx req/s median [min–max] | p50 ms | p99 ms | server CPU µs/req "
        "| compared with | req/s ratio [per-round min–max] | p99 ratio | non-2xx/errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in rows:
        rps = [v[0] for v in runs[name].values()]
        errors = sum(v[3] for v in runs[name].values())
        total = sum(v[4] for v in runs[name].values())
        cells = [
            name,
            f"{fmt_rps(statistics.median(rps))} [{fmt_rps(min(rps))}–{fmt_rps(max(rps))}]",
            f"{med(name, 1):.2f}",
            f"{med(name, 2):.2f}",
            f"{med(name, 5):,.0f}",
        ]
        ref = refs.get(name)
        if ref:
            per_round = [
                runs[name][r][0] / runs[ref][r][0]
                for r in runs[name]
                if r in runs[ref] and runs[ref][r][0] > 0
            ]
            ratio = med(name, 0) / med(ref, 0) if med(ref, 0) else float("nan")
            cells += [
                ref,
                f"{ratio:.2f} [{min(per_round):.2f}–{max(per_round):.2f}]" if per_round else f"{ratio:.2f}",
                f"{med(name, 2) / med(ref, 2):.2f}" if med(ref, 2) else "–",
            ]
        else:
            cells += ["–", "–", "–"]
        cells.append(f"{errors} ({100 * errors / total:.1f}%)" if total else str(errors))
        print("| " + " | ".join(cells) + " |")

    print()
    head = f"wasmhost: {HEADLINE}"
    if head in refs:
        ref = refs[head]
        per_round = sorted(
            runs[head][r][0] / runs[ref][r][0] for r in runs[head] if r in runs[ref] and runs[ref][r][0] > 0
        )
        print(
            f"wasmhost / {ref.split(':')[0]}, {HEADLINE}: {med(head, 0) / med(ref, 0):.2f} "
            f"(ratio of the medians; per round {', '.join(f'{x:.2f}' for x in per_round)})"
        )
    failed = sorted(n for n, r in runs.items() if any(v[3] for v in r.values()))
    if failed:
        print(
            "WARNING: non-2xx responses or socket errors in: "
            + ", ".join(failed)
            + " (req/s counts 2xx answers only; latencies include the failed ones; KEEP=1 keeps the logs)"
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
