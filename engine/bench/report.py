"""The quality report: ``report.md`` with tables, image grids per class and method, a plot of
quality and class consistency against the diversity value, and ``report.json`` with every run."""

from __future__ import annotations

import json
import re
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from engine.atomic import atomic_path, atomic_write_bytes
from engine.bench.quality import REAL
from engine.bench.speed import machine
from engine.data.contact_sheet import label_tile
from engine.metrics.novelty import NEAR_COPY_QUANTILE

TILE = 84
LABEL = 150
# (key, column title, format, direction): the columns of each domain's table
COLUMNS_2D = [("fid", "FID ↓", "{:.2f}"), ("precision", "precision ↑", "{:.2f}"), ("recall", "recall ↑", "{:.2f}"),
              ("class_consistency", "class consistency ↑", "{:.0%}"), ("diversity_ratio", "diversity (1 = real)", "{:.2f}"),
              ("near_copy", "near copies ↓", "{:.0%}"), ("speckle_ratio", "speckle (1 = real)", "{:.2f}")]
COLUMNS_3D = [("mmd", "MMD-CD ↓ (×10³)", "{:.2f}", 1e3), ("cov", "COV ↑", "{:.0%}"), ("1nna", "1-NNA (50% best)", "{:.0%}"),
              ("near_copy", "near copies ↓", "{:.0%}"), ("watertight", "one watertight mesh ↑", "{:.0%}"),
              ("like_family", "like its family ↑", "{:.0%}")]


def _fmt(entry: dict, column: tuple) -> str:
    key, _, fmt = column[:3]
    scale = column[3] if len(column) > 3 else 1.0
    v = entry.get(key)
    if v is None:
        return "–"
    mean, std = v["mean"] * scale, v["std"] * scale
    return f"{fmt.format(mean)} ± {fmt.format(std).rstrip('%')}" + ("%" if fmt.endswith("%}") else "")


def summary_table(result: dict) -> str:
    """The headline markdown table: one row per method and diversity value, mean ± std over repeats."""
    two_d = "fid" in _first_metrics(result)
    columns = COLUMNS_2D if two_d else COLUMNS_3D
    lines = ["| method | D | " + " | ".join(c[1] for c in columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    order = {m: i for i, m in enumerate([REAL, "equigen", "equigen-no-perturb", "hyperdiffusion", "shots-noise"])}
    rows = sorted(result["summary"], key=lambda e: (order.get(e["method"], 9), e["diversity"] or 0))
    for e in rows:
        d = "–" if e["diversity"] is None else f"{e['diversity']:g}"
        name = f"**{e['method']}**" if e["method"] == "equigen" else e["method"]
        lines.append(f"| {name} | {d} | " + " | ".join(_fmt(e, c) for c in columns) + " |")
    info = result["info"]
    caption = (f"{', '.join(info['classes'])}: {info['config']['shots']} shots, {info['samples']} samples per row, "
               f"mean ± std over {info['config']['repeats']} shot sets. ")
    caption += ("Features: the harness' own CNN trained on this corpus, not Inception; FIDs compare only within "
                "this table." if two_d else "2,048 normalised surface points per shape, Chamfer distance.")
    return "\n".join(lines + ["", f"*{caption}*"])


def _first_metrics(result: dict) -> dict:
    return result["runs"][0] if result["runs"] else {}


def _tile(item, renderer) -> np.ndarray:
    if item is None:
        return np.zeros((TILE, TILE, 3), np.uint8)
    if isinstance(item, np.ndarray):
        img = Image.fromarray(np.round(np.clip(item, 0, 1) * 255).astype(np.uint8)).resize(
            (TILE, TILE), Image.Resampling.NEAREST)
        return np.repeat(np.asarray(img)[..., None], 3, axis=2)
    return renderer.render(item)


def write_grids(result: dict, out_dir: Path) -> dict[str, str]:
    """One PNG per class: the shots, then each method's samples (first repeat); returns names."""
    renderer = None
    written = {}
    try:
        for name, rows in result["grids"].items():
            if renderer is None and any(not isinstance(t, np.ndarray) and t is not None
                                        for tiles in rows.values() for t in tiles):
                from engine.render import MeshRenderer  # VTK only when there are meshes to show

                renderer = MeshRenderer(TILE)
            width = max(len(t) for t in rows.values())
            strips = []
            for label, tiles in rows.items():
                imgs = [_tile(t, renderer) for t in tiles] + [np.zeros((TILE, TILE, 3), np.uint8)] * (width - len(tiles))
                strips.append(np.concatenate([label_tile(label, TILE, LABEL)] + imgs, axis=1))
            path = out_dir / "grids" / f"{_safe(name)}.png"
            with atomic_path(path) as tmp:
                Image.fromarray(np.concatenate(strips, axis=0)).save(tmp, format="PNG")
            written[name] = f"grids/{path.name}"
    finally:
        if renderer is not None:
            renderer.close()
    return written


def _safe(name: str) -> str:
    # class names like "G" and "g" must not share a file on case-insensitive file systems
    return re.sub(r"[^A-Za-z0-9]+", "_", name) + ("-upper" if name.isupper() else "")


def write_plot(result: dict, path: Path) -> None:
    """Quality and class consistency (2D) or MMD and near copies (3D) against the diversity value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    two_d = "fid" in _first_metrics(result)
    panels = [("fid", "FID (harness features) ↓"), ("class_consistency", "class consistency ↑"),
              ("near_copy", "near-copy rate ↓")] if two_d else \
        [("mmd", "MMD-CD ↓"), ("1nna", "1-NNA (50% best)"), ("near_copy", "near-copy rate ↓")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for ax, (key, title) in zip(axes, panels):
        for method, style in (("equigen", "o-"), ("hyperdiffusion", "^-."), ("shots-noise", "s--")):
            pts = sorted((e["diversity"], e[key]) for e in result["summary"]
                         if e["method"] == method and key in e and e["diversity"] is not None)
            if pts:
                xs = [p[0] for p in pts]
                ax.errorbar(xs, [p[1]["mean"] for p in pts], yerr=[p[1]["std"] for p in pts], fmt=style,
                            label=method, capsize=3)
        for e in result["summary"]:
            if e["diversity"] is None and key in e:
                ax.axhline(e[key]["mean"], linestyle=":", label=e["method"],
                           color={"equigen-no-perturb": "C2", "hyperdiffusion": "C3"}.get(e["method"], "0.4"))
        ax.set_title(title)
        ax.set_xlabel("diversity D")
        if key in ("fid", "mmd"):  # methods differ by orders of magnitude here
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def write_report(result: dict, out_dir: str | os.PathLike, command: str = "") -> Path:
    """Write ``report.md``, ``report.json``, ``quality_vs_diversity.png`` and ``grids/`` under
    ``out_dir``; returns the markdown path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = result["info"]
    grids = write_grids(result, out_dir)
    write_plot(result, out_dir / "quality_vs_diversity.png")
    two_d = "fid" in _first_metrics(result)
    fn = info.get("feature_net") or {}
    cfg = info["config"]
    lines = [
        f"# Generation quality: {Path(info['corpus']).name} ({info['spec']})", "",
        f"Made {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {machine()['cpu']}, {os.cpu_count()} cores "
        f"(computed on {info.get('device') or machine()['device']}), "
        f"in {info['seconds'] / 60:.1f} min." + (f" Reproduce: `{command}`" if command else ""), "",
        f"- Model: `{info['model']}`" + (f"; HyperDiffusion baseline: `{info['hyperdiffusion_model']}`"
                                         if info["hyperdiffusion_model"] else "; no HyperDiffusion model given"),
        f"- Held-out target classes (never trained on): {', '.join(info['classes'])}. Per class, "
        f"{cfg['repeats']} different {cfg['shots']}-shot sets; per set, {info['samples']} samples per method "
        f"and diversity value, every method on the same shots and seed.",
        "- Every figure: mean over the target classes, then mean ± std over the repeats.",
        f"- Reference: the class' unseen real items (never the shots). The row *{REAL}* measures "
        f"{info['samples']} other unseen real items the same way: what real data scores at this sample count.",
        f"- Near copies: the share of samples closer to their nearest shot than {1 - NEAR_COPY_QUANTILE:.0%} of "
        f"the unseen real items are to theirs (real items score {NEAR_COPY_QUANTILE:.0%} by construction, "
        "copies of the shots 100%).",
    ]
    if two_d:
        lines.append(
            f"- **Features: the harness' own CNN classifier** ({fn.get('config', {}).get('feature_dim')}-d "
            f"penultimate layer), trained on {fn.get('images')} real images of all the corpus' classes "
            f"(held-out accuracy {fn.get('heldout_accuracy', float('nan')):.1%}); not Inception, so FIDs "
            "compare only within this report. Class consistency: the share of samples it assigns to the "
            "target class. Diversity: mean pairwise feature distance of the samples over that of real items. "
            "Precision/recall: k-NN manifolds, k = 3.")
    else:
        lines.append(
            f"- Shapes: 2,048 surface points each, centred and scaled into the unit sphere; Chamfer distance. "
            f"Samples and references alike are meshed by marching cubes at {cfg['resolution']}³. A sample that "
            "decodes to nothing counts as points at the origin.")
    lines += ["", "## Results", "", summary_table(result), "",
              "![quality against diversity](quality_vs_diversity.png)", "", "## Shots and samples", "",
              "First repeat of each class: the shots, then each method's first samples "
              f"(those with a diversity value at D = {info['grid_diversity']:g}).", ""]
    lines += [f"### {name}\n\n![{name}]({rel})\n" for name, rel in grids.items()]
    path = out_dir / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    atomic_write_bytes(out_dir / "report.json", json.dumps(
        {k: v for k, v in result.items() if k != "grids"}, indent=2).encode())
    return path
