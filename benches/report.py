#!/usr/bin/env python3
"""Prints the results table of a results.json as Markdown (for docs/performance.md).

Usage: benches/report.py [RESULTS.json [OTHER.json]]
With a second file, a column shows the same ratio in that other run."""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def num(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g} M"
    if a >= 1e4:
        return f"{v / 1e3:.3g} k"
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def short_unit(unit):
    u = unit or ""
    for key, short in (("ns per message", "ns/msg"), ("lock+unlock pairs per second", "pairs/s"),
                       ("ns per lock+unlock", "ns/pair"), ("ns per round trip", "ns/round trip"),
                       ("ns per spawn+join", "ns/spawn+join"), ("ns per call", "ns/call"),
                       ("ns per loop iteration", "ns/iteration"), ("us time-to-safepoint", "us to safepoint"),
                       ("us full stop+resume", "us stop+resume")):
        if u.startswith(key):
            return short
    return u


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/bench/results.json")
    with open(path) as f:
        res = json.load(f)
    other, other_line = {}, None
    if len(sys.argv) > 2:
        with open(sys.argv[2]) as f:
            o = json.load(f)
        other = {(r["title"], r["peer_label"]): r for r in o["rows"]}
        other_line = (f"Other run: {o['mode']}, {o['date']}, {o['duration_s']:.0f} s; load average before "
                      f"{o['load_average_before']}, after {o['load_average_after']}.")
    m = res["machine"]
    print(f"Run: {res['mode']}, {res['date']}, {res['duration_s']:.0f} s; load average before "
          f"{res['load_average_before']}, after {res['load_average_after']}; {m.get('cpu')}, {m.get('nproc')} CPUs.")
    if other_line:
        print()
        print(other_line)
    print()
    extra_col = " other run |" if other else ""
    print("| case | figure | weft | peer | weft/peer |" + extra_col + " goal | |")
    print("|---|---|---:|---:|---:|" + ("---:|" if other else "") + "---|---|")
    not_built = {}
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
            verdict = (verdict + "; " if verdict else "") + f"spread {spread}"
        cell = ""
        if other:
            o = other.get((r["title"], r["peer_label"]))
            cell = f" {o['ratio']:.3g} |" if o and o.get("ratio") is not None else " - |"
        print(f"| {r['title']} | {short_unit(r['unit'])} | {num(r['weft_median'])} | {r['peer_label']} "
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
