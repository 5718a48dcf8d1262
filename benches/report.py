#!/usr/bin/env python3
"""Prints the results table of a results.json as Markdown (for docs/performance.md).

Usage: benches/report.py [RESULTS.json [OTHER.json ...]]
Each other file adds a column with the same ratio in that run."""
import json
import os
import sys

from run import LANG, fmt, round_trip_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def num(v):
    return fmt(v, " ")


def short_unit(unit):
    u = unit or ""
    for key, short in (("ns per message", "ns/msg"), ("lock+unlock pairs per second", "pairs/s"),
                       ("ns per lock+unlock", "ns/pair"), ("ns per round trip", "ns/round trip"), ("ns per round", "ns/round"),
                       ("ns per spawn+join", "ns/spawn+join"), ("ns per call", "ns/call"),
                       ("ns per loop iteration", "ns/iteration"), ("us time-to-safepoint", "us to safepoint"),
                       ("us full stop+resume", "us stop+resume")):
        if u.startswith(key):
            return short
    return u


def variant_label(variant):
    """'cg/weft' -> 'C on green', 'c/state' -> 'C state'."""
    lang, _, name = variant.partition("/")
    label = LANG.get(lang, lang)
    return label if name == "weft" else f"{label} {name}"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/bench/results.json")
    with open(path) as f:
        res = json.load(f)
    others, other_lines = [], []
    for i, other_path in enumerate(sys.argv[2:]):
        with open(other_path) as f:
            o = json.load(f)
        others.append({(r["title"], r["weft"], r["peer"]): r for r in o["rows"]})
        other_lines.append(f"Run {chr(ord('B') + i)}: {o['mode']}, {o['date']}, {o['duration_s']:.0f} s; load average "
                           f"before {o['load_average_before']}, after {o['load_average_after']}.")
    m = res["machine"]
    print(f"Run{' A' if others else ''}: {res['mode']}, {res['date']}, {res['duration_s']:.0f} s; load average before "
          f"{res['load_average_before']}, after {res['load_average_after']}; {m.get('cpu')}, {m.get('nproc')} CPUs.")
    for line in other_lines:
        print()
        print(line)
    print()
    extra_cols = "".join(f" run {chr(ord('B') + i)} |" for i in range(len(others)))
    print(f"| case | figure | weft | peer | weft/peer{' (run A)' if others else ''} |" + extra_cols + " goal | |")
    print("|---|---|---:|---:|---:|" + "---:|" * len(others) + "---|---|")
    not_built = {}
    # Several weft variants against one peer (native and green against Go, say): each
    # row names its variant.
    seen = {}
    for r in res["rows"]:
        seen[(r["title"], r["peer"])] = seen.get((r["title"], r["peer"]), 0) + 1
    for r in res["rows"]:
        verdict = {True: "meets", False: "**misses**", None: ""}[r.get("meets")]
        if r["status"] == "not built":
            not_built.setdefault(r["title"], {})[r["peer_label"]] = r["peer_median"]
            continue
        if r["status"] != "ok":
            print(f"| {r['title']} | {short_unit(r['unit'])} | {r['status']} | {r['peer_label']} {num(r['peer_median'])} "
                  f"| - | {r['goal_text']} | |")
            continue
        ratio = f"{r['ratio']:.3g}"
        if r["goal"] and r["goal"]["on"] == "delta":
            ratio += f" ({r['delta']:+.1f} ns)"
        if r.get("fairness"):
            spread = ", ".join(f"{k} {num(v)}%" for k, v in r["fairness"].items() if v is not None)
            verdict = (verdict + "; " if verdict else "") + f"spread {spread}; {round_trip_text(r)}"
        cell = ""
        for other in others:
            o = other.get((r["title"], r["weft"], r["peer"]))
            mode = f" ({round_trip_text(o)})" if o and r.get("fairness") else ""
            cell += f" {o['ratio']:.3g}{mode} |" if o and o.get("ratio") is not None else " - |"
        weft = num(r["weft_median"])
        if seen[(r["title"], r["peer"])] > 1:
            weft = f"{variant_label(r['weft'])} {weft}"
        print(f"| {r['title']} | {short_unit(r['unit'])} | {weft} | {r['peer_label']} "
              f"{num(r['peer_median'])} | {ratio} |{cell} {r['goal_text']} | {verdict} |")
    if not_built:
        peers = sorted({p for v in not_built.values() for p in v})
        print()
        print("weft side not built (weft.h has no channel API yet); the peers' figures, ns per message:")
        print()
        print("| case | " + " | ".join(peers) + " |")
        print("|---|" + "---:|" * len(peers))
        for title, v in not_built.items():
            print(f"| {title} | " + " | ".join(num(v.get(p)) for p in peers) + " |")


if __name__ == "__main__":
    main()
