"""Medians of run.sh's decode tok/s per (prompt, batch, precision), before and after."""
import json, pathlib, statistics, sys, collections
runs = collections.defaultdict(list)
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    which, p, b, prec, _ = f.stem.split("-")
    runs[(int(p[1:]), int(b[1:]), prec, which)].append(json.loads(f.read_text())["decode_tok_s"])
print("| prompt | batch | panels | before tok/s | after tok/s | after / before | rounds (before; after) |")
print("|---|---|---|---|---|---|---|")
for (p, b, prec) in sorted({k[:3] for k in runs}, key=lambda k: (k[0], k[1], k[2] != "f32")):
    bef, aft = runs[(p, b, prec, "before")], runs[(p, b, prec, "after")]
    mb, ma = statistics.median(bef), statistics.median(aft)
    fmt = lambda xs: " / ".join(f"{x:.1f}" for x in xs)
    print(f"| {p} | {b} | {prec} | {mb:.1f} | {ma:.1f} | {ma / mb:.2f}× | {fmt(bef)}; {fmt(aft)} |")
