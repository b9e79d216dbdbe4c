"""The 2D scaling study's table and plot from `equigen bench quality` reports.

Run: ``.venv/bin/python benchmarks/scaling_2d.py --out docs/quality/glyphs-2d LABEL=REPORT_DIR ...``,
one ``LABEL=DIR`` per trained model or sampler setting, each DIR a `bench quality` folder. Reads
the EquiGen row at D = 0.5 (the studio's default) of each report; writes ``scaling.md`` and
``scaling.png`` (FID and class consistency against training steps, one line per width).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRICS = [("fid", "FID ↓", "{:.1f}"), ("precision", "precision ↑", "{:.2f}"), ("recall", "recall ↑", "{:.2f}"),
           ("class_consistency", "class consistency ↑", "{:.0%}"), ("near_copy", "near copies ↓", "{:.0%}"),
           ("speckle_ratio", "speckle (1 = real)", "{:.2f}"), ("diversity_ratio", "diversity (1 = real)", "{:.2f}")]


def row_at(report: dict, method: str = "equigen", diversity: float = 0.5) -> dict:
    rows = [r for r in report["summary"] if r["method"] == method and r["diversity"] in (diversity, None)]
    if not rows:
        raise SystemExit(f"no {method} row at D = {diversity}")
    return rows[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("runs", nargs="+", metavar="LABEL=DIR")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| model / setting | " + " | ".join(h for _, h, _ in METRICS) + " |",
             "|---|" + "---|" * len(METRICS)]
    real = None
    points = {}
    for spec in args.runs:
        label, folder = spec.split("=", 1)
        report = json.loads((Path(folder) / "report.json").read_text())
        real = real or row_at(report, "real (held-out)")
        r = row_at(report)
        cells = [fmt.format(r[k]["mean"]) + (f" ± {fmt.format(r[k]['std'])}" if k == "fid" else "")
                 for k, _, fmt in METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
        m = re.match(r"w(\d+), (\d+)k steps", label)
        if m:
            points.setdefault(int(m.group(1)), []).append((int(m.group(2)) * 1000, r["fid"]["mean"],
                                                           r["class_consistency"]["mean"]))
    lines.append("| real (held-out) | " + " | ".join(fmt.format(real[k]["mean"]) for k, _, fmt in METRICS) + " |")
    (out / "scaling.md").write_text("\n".join(lines) + "\n")
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for width, pts in sorted(points.items()):
        pts.sort()
        a.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"width {width}")
        b.plot([p[0] for p in pts], [100 * p[2] for p in pts], "o-", label=f"width {width}")
    a.axhline(real["fid"]["mean"], color="grey", ls="--", label="real (held-out)")
    b.axhline(100 * real["class_consistency"]["mean"], color="grey", ls="--", label="real (held-out)")
    for ax, title in ((a, "FID at D = 0.5 (lower is better)"), (b, "class consistency at D = 0.5, %")):
        ax.set_xscale("log")
        ax.set_xlabel("training steps (batch 64)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=120)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
