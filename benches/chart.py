"""The benchmark chart: one horizontal bar per row of results.json, the ratio weft/peer
on a log scale, a line at 1.0 and a tick at each row's goal. Standard library only."""
import math
from xml.sax.saxutils import escape

LO, HI = 1 / 64, 64  # clamp of the log2 axis
LABEL_W, PLOT_W, RIGHT_W = 430, 520, 250
ROW_H, TOP, BOTTOM = 18, 70, 60


def _x(ratio):
    r = min(max(ratio, LO), HI)
    return LABEL_W + (math.log2(r) - math.log2(LO)) / (math.log2(HI) - math.log2(LO)) * PLOT_W


def _goal_ratio(row):
    g = row.get("goal")
    if not g or row.get("peer_median") in (None, 0):
        return None
    if g["on"] == "delta":  # "at most N ns over the peer" as a ratio for this row
        return (row["peer_median"] + g["value"]) / row["peer_median"]
    return g["value"]


def svg(result):
    rows = result["rows"]
    height = TOP + ROW_H * len(rows) + BOTTOM
    width = LABEL_W + PLOT_W + RIGHT_W
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    m = result.get("machine", {})
    title = (f"weft / peer, medians of interleaved runs ({result['mode']} run, {result['date']}, "
             f"{m.get('cpu', '?')}, {m.get('nproc', '?')} CPUs)")
    out.append(f'<text x="10" y="20" font-size="13" font-weight="bold">{escape(title)}</text>')
    out.append('<text x="10" y="38">Time figures (ns, us): left of 1.0 = weft faster. Contended mutex (ops/s, marked '
               '&#8593;): right of 1.0 = weft faster. Tick = goal; green meets it, red misses it, grey has none.</text>')
    # Axis.
    plot_top, plot_bottom = TOP - 8, TOP + ROW_H * len(rows)
    for e in range(int(math.log2(LO)), int(math.log2(HI)) + 1, 2):
        x = _x(2.0 ** e)
        label = f"{2.0 ** e:g}" if e >= 0 else f"1/{2 ** -e}"
        out.append(f'<line x1="{x:.1f}" y1="{plot_top}" x2="{x:.1f}" y2="{plot_bottom}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{x:.1f}" y="{plot_top - 4}" text-anchor="middle" fill="#666">{label}</text>')
        out.append(f'<text x="{x:.1f}" y="{plot_bottom + 14}" text-anchor="middle" fill="#666">{label}</text>')
    x1 = _x(1.0)
    last_group = None
    for i, r in enumerate(rows):
        y = TOP + i * ROW_H
        group = r["case"].split("/")[0]
        if last_group is not None and group != last_group:
            out.append(f'<line x1="0" y1="{y - 1}" x2="{width}" y2="{y - 1}" stroke="#ccc"/>')
        last_group = group
        arrow = " &#8593;" if r.get("better") == "higher" else ""
        label = f"{r['title']} vs {r['peer_label']}"
        out.append(f'<text x="{LABEL_W - 6}" y="{y + 12}" text-anchor="end">{escape(label)}{arrow}</text>')
        if r["status"] != "ok":
            note = r["status"]
            if r.get("peer_median") is not None:
                note += f" ({r['peer_label']}: {r['peer_median']:.4g})"
            out.append(f'<text x="{x1 + 4}" y="{y + 12}" fill="#999" font-style="italic">{escape(note)}</text>')
            continue
        ratio = r["ratio"]
        color = {True: "#2e8b57", False: "#c0392b", None: "#8a9bb0"}[r["meets"]]
        xa, xb = sorted((x1, _x(ratio)))
        out.append(f'<rect x="{xa:.1f}" y="{y + 3}" width="{max(xb - xa, 1):.1f}" height="{ROW_H - 6}" fill="{color}"/>')
        g = _goal_ratio(r)
        if g:
            xg = _x(g)
            out.append(f'<line x1="{xg:.1f}" y1="{y + 1}" x2="{xg:.1f}" y2="{y + ROW_H - 1}" stroke="black" '
                       'stroke-width="2"/>')
        text = f"{ratio:.3g}x" + ("" if LO <= ratio <= HI else " (off scale)")
        if r.get("goal") and r["goal"]["on"] == "delta":
            text += f" ({r['delta']:+.1f} ns)"
        out.append(f'<text x="{LABEL_W + PLOT_W + 8}" y="{y + 12}">{escape(text)}</text>')
    out.append(f'<line x1="{x1:.1f}" y1="{plot_top}" x2="{x1:.1f}" y2="{plot_bottom}" stroke="black"/>')
    out.append(f'<text x="10" y="{height - 20}" fill="#666">Every row names its figure in results.json '
               '(rows[].unit, cases[].what). Log scale, clamped to 1/64..64.</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
