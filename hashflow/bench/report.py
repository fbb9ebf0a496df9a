"""Benchmark summaries and outputs: results.json, results.md, plots and the example figure.

Point EPE is reported two ways: **pooled** over all points of all pairs (one
``flow_metrics`` call on the concatenated points; mean, median, 1/3/5 px) and the **mean of
per-pair means**. Real-flow sets are dense: EPE over the valid pixels, pooled over the set's
pixels (count-weighted means of per-sample statistics); their median is the median of
per-sample medians.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hashflow.atomic import atomic_path, write_text_atomic
from hashflow.metrics import flow_metrics

# Paper Table 2 (EPE px, 100 translated COCO pairs, radius 50, 256 points), order n=1 / n=2.
PAPER_TABLE2 = {
    "hashflow-pixel-o1": 36.45, "hashflow-pixel-o2": 34.58,
    "hashflow-patch-o1": 34.04, "hashflow-patch-o2": 33.02,
    "hashflow-image-o1": 4.26, "hashflow-image-o2": 2.94,
}
POOLING_NOTE = ("EPE mean/median and 1/3/5 px accuracy are pooled over all points of all pairs; "
                "'mean of pair means' averages the per-pair EPE means.")
_POINT_KEYS = ("epe_mean", "epe_median", "acc_1px", "acc_3px", "acc_5px", "fl_all", "count")
_POOLED_REAL_KEYS = ("epe_mean", "acc_1px", "acc_3px", "acc_5px", "fl_all", "angular_error")


# ---------------------------------------------------------------------------------------------
# Summaries


def summarise_points(records: list[dict]) -> dict:
    """Pooled and per-pair statistics of one method's successful point records."""
    pred = np.concatenate([np.asarray(r["pred"], np.float64) for r in records])
    gt = np.concatenate([np.broadcast_to(np.asarray(r["gt"], np.float64), (len(r["pred"]), 2))
                         for r in records])
    pooled = flow_metrics(pred, gt)
    return {"pooled": {key: pooled[key] for key in _POINT_KEYS},
            "mean_of_pair_means": float(np.mean([r["metrics"]["epe_mean"] for r in records])),
            "pairs": len(records)}


def summarise_dense(records: list[dict]) -> dict:
    """Count-weighted (pooled over pixels) statistics of one method on one real-flow set."""
    counts = np.array([r["metrics"]["count"] for r in records], np.float64)
    pooled = {key: float(np.average([r["metrics"][key] for r in records], weights=counts))
              for key in _POOLED_REAL_KEYS}
    pooled["epe_median"] = float(np.median([r["metrics"]["epe_median"] for r in records]))
    pooled["count"] = int(counts.sum())
    return {"pooled": pooled, "samples": {r["pair"]: r["metrics"] for r in records},
            "seconds_median": _median_seconds(records)}


def _median_seconds(records: list[dict]) -> float:
    return float(np.median([r["seconds"] for r in records]))


def summarise_method(records: list[dict]) -> dict:
    """One method's entry in results.json: point metrics, time, memory, failures."""
    ok = [r for r in records if r["status"] == "ok"]
    entry = {"pairs_ok": len(ok), "pairs_failed": len(records) - len(ok),
             "errors": sorted({r["error"] for r in records if r["status"] != "ok"})[:5]}
    if ok:
        entry.update(summarise_points(ok))
        entry["seconds_median"] = _median_seconds(ok)
        entry["seconds_mean"] = float(np.mean([r["seconds"] for r in ok]))
        entry["peak_mb"] = float(max(r["peak_mb"] for r in ok))
        entry["memory_kind"] = ok[0]["memory_kind"]
    return entry


def summarise(records: list[dict], method_names: list[str]) -> dict:
    """``{"methods": {name: entry}, "real": {set: {name: entry}}}`` from the result records."""
    translated = [r for r in records if r["set"] == "translated"]
    methods = {name: summarise_method([r for r in translated if r["method"] == name])
               for name in method_names}
    real = {}
    for set_name in sorted({r["set"] for r in records} - {"translated"}):
        in_set = [r for r in records if r["set"] == set_name and r["status"] == "ok"]
        real[set_name] = {name: summarise_dense([r for r in in_set if r["method"] == name])
                          for name in method_names
                          if any(r["method"] == name for r in in_set)}
    return {"methods": methods, "real": real}


# ---------------------------------------------------------------------------------------------
# results.json and results.md


def write_json(path: Path, results: dict) -> None:
    """results.json, atomically."""
    write_text_atomic(path, json.dumps(results, indent=2, sort_keys=False) + "\n")


def _fmt(value, digits=2, scale=1.0) -> str:
    return "–" if value is None else f"{value * scale:.{digits}f}"


def _method_row(name: str, entry: dict) -> str:
    if not entry.get("pairs_ok"):
        return f"| {name} | failed on all {entry['pairs_failed']} pairs | | | | | | | |"
    pooled = entry["pooled"]
    cells = [_fmt(pooled["epe_mean"]), _fmt(pooled["epe_median"]),
             _fmt(entry["mean_of_pair_means"]), _fmt(pooled["acc_1px"], 1, 100),
             _fmt(pooled["acc_3px"], 1, 100), _fmt(pooled["acc_5px"], 1, 100),
             _fmt(entry["seconds_median"], 4), _fmt(entry["peak_mb"], 1)]
    pairs = f"{entry['pairs_ok']}" + (f" ({entry['pairs_failed']} failed)"
                                      if entry["pairs_failed"] else "")
    return f"| {name} | " + " | ".join(cells) + f" | {pairs} |"


def _points_table(results: dict) -> list[str]:
    lines = ["| method | EPE mean | EPE median | mean of pair means | 1px % | 3px % | 5px % "
             "| s/pair (median) | peak MB | pairs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_method_row(name, entry) for name, entry in results["methods"].items()]
    lines += [f"| paper Table 2: {name} | {value:.2f} | – | – | – | – | – | – | – | 100 |"
              for name, value in PAPER_TABLE2.items()]
    return lines


def _real_tables(results: dict) -> list[str]:
    lines = []
    for set_name, methods in results["real"].items():
        lines += ["", f"### {set_name} (dense EPE over valid pixels)", "",
                  "| method | EPE mean | EPE median* | 1px % | 3px % | 5px % | Fl-all % "
                  "| s/pair |", "|---|---|---|---|---|---|---|---|"]
        for name, entry in methods.items():
            p = entry["pooled"]
            lines.append(f"| {name} | {_fmt(p['epe_mean'])} | {_fmt(p['epe_median'])} | "
                         f"{_fmt(p['acc_1px'], 1, 100)} | {_fmt(p['acc_3px'], 1, 100)} | "
                         f"{_fmt(p['acc_5px'], 1, 100)} | {_fmt(p['fl_all'], 1, 100)} | "
                         f"{_fmt(entry['seconds_median'], 4)} |")
    if lines:
        lines += ["", "*median of per-sample medians; other columns pooled over pixels."]
    return lines


def render_markdown(results: dict) -> str:
    """The results.md text: protocol, main table with the paper's reference rows, notes."""
    config = results["config"]
    lines = ["# hashflow EPE benchmark", "",
             f"{results['n_pairs']} translated pairs, {config['size']}x{config['size']} px, "
             f"translation radius {config['radius']} px, {config['n_points']} points per pair "
             f"at least {config['margin']:g} px from the border, seed {config['seed']}, "
             f"sources: {results['source']}. hashflow device: {results['device']}; OpenCV "
             "baselines on the CPU.", "",
             POOLING_NOTE, f"Peak MB: {'; '.join(results['memory_notes'])}.", ""]
    lines += _points_table(results)
    lines += _real_tables(results)
    if results["skipped"]:
        lines += ["", "## Skipped", ""]
        lines += [f"- {name}: {reason}" for name, reason in results["skipped"].items()]
    failures = {n: e["errors"] for n, e in results["methods"].items() if e.get("errors")}
    if failures:
        lines += ["", "## Errors (first messages)", ""]
        lines += [f"- {name}: {'; '.join(msgs)}" for name, msgs in failures.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Plots (matplotlib Agg)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)


def _scored(results: dict) -> dict:
    return {name: e for name, e in results["methods"].items() if e.get("pairs_ok")}


def plot_epe_bars(results: dict, path: Path) -> None:
    """Bar chart of pooled EPE mean per method (median as a dot), log scale, paper lines."""
    plt = _pyplot()
    scored = _scored(results)
    names = list(scored)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names) + 2), 4))
    means = [max(scored[n]["pooled"]["epe_mean"], 1e-3) for n in names]
    medians = [max(scored[n]["pooled"]["epe_median"], 1e-3) for n in names]
    ax.bar(range(len(names)), means, color="tab:blue", label="EPE mean (pooled)")
    ax.plot(range(len(names)), medians, "o", color="tab:orange", label="EPE median")
    for name, value in PAPER_TABLE2.items():
        if name in names:
            ax.plot(names.index(name), value, "_", color="red", markersize=18)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("EPE at the points (px)")
    ax.set_title(f"EPE per method ({results['n_pairs']} pairs; red: paper Table 2)")
    ax.legend()
    _save(fig, path)


def plot_epe_vs_time(results: dict, path: Path) -> None:
    """Scatter of pooled EPE mean against median seconds per pair, both log scale."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, entry in _scored(results).items():
        x, y = max(entry["seconds_median"], 1e-5), max(entry["pooled"]["epe_mean"], 1e-3)
        ax.plot(x, y, "o")
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("seconds per pair (median)")
    ax.set_ylabel("EPE mean at the points (px)")
    ax.set_title("EPE vs time per pair")
    ax.grid(True, which="both", alpha=0.3)
    _save(fig, path)


def plot_example(path: Path, img1: np.ndarray, img2: np.ndarray, gt_flow: np.ndarray,
                 flows: dict[str, np.ndarray], points: np.ndarray, max_radius: float) -> None:
    """One pair: img1, img2, ground truth and each method's flow as colour wheels.

    Args:
        img1, img2: (H, W, 3) uint8. gt_flow: (H, W, 2). points: (N, 2) (x, y).
        flows: method -> (H, W, 2) dense flow, or (N, 2) flow at ``points`` (drawn as dots).
        max_radius: the one saturation radius (px) used for every panel.
    """
    from hashflow.flow_viz import flow_to_color
    plt = _pyplot()
    panels = [("img1", img1), ("img2", img2),
              ("ground truth", flow_to_color(gt_flow, max_radius=max_radius))]
    panels += [(name, _flow_panel(flow, img1.shape[:2], points, max_radius))
               for name, flow in flows.items()]
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.1 * rows), squeeze=False)
    for ax, (title, image) in zip(axes.ravel(), panels):
        ax.imshow(image)
        ax.set_title(title, fontsize=9)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(f"flow colours saturate at {max_radius:.1f} px; "
                 "methods without a dense map are drawn at the points")
    _save(fig, path)


def _flow_panel(flow: np.ndarray, shape, points: np.ndarray, max_radius: float) -> np.ndarray:
    """Colour image of a dense flow, or of point flows as 5x5 dots on white."""
    from hashflow.flow_viz import flow_to_color
    if flow.ndim == 3:
        return flow_to_color(flow, max_radius=max_radius)
    colors = flow_to_color(flow[None].astype(np.float64), max_radius=max_radius)[0]
    canvas = np.full(tuple(shape) + (3,), 255, np.uint8)
    for (x, y), color in zip(np.round(points).astype(int), colors):
        canvas[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3] = color
    return canvas
