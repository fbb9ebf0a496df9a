"""A self-contained demo: two synthetic pairs from scikit-image photos, hashflow vs OpenCV DIS.

:func:`run_demo` makes a translated pair (the paper's protocol at a small size) and a smooth
non-rigid warp with known flow, estimates flow with hashflow in patch and image mode (one
:class:`~hashflow.estimator.FlowEstimator`, so each frame is encoded once for both modes),
runs OpenCV's DIS (medium preset) on the same frames, and writes ``report.html``, PNG figures
and ``demo.json`` (EPE pooled over all pixels of each pair, run times). It needs no data files
and no network; ``hashflow demo`` runs it.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from hashflow import viz
from hashflow.atomic import write_text_atomic
from hashflow.baselines import run_baseline, unavailable_reason
from hashflow.datasets.sources import SKIMAGE_PHOTOS, ImageSource
from hashflow.datasets.translated import make_translated_pair
from hashflow.estimator import FlowEstimator
from hashflow.metrics import flow_metrics

_SAMPLING_BORDER = 3
"""Extra canvas pixels beyond the largest displacement (bilinear sampling reads one more)."""


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs; the defaults take about a minute on 2 CPU cores."""

    size: int = 128
    """Side of the square frames, px."""
    radius: float = 12.0
    """The translated pair's motion is drawn from the disk of this radius, px."""
    warp_amplitude: float = 6.0
    """Largest displacement of the non-rigid warp, px."""
    translated_photo: str = "astronaut"
    """scikit-image photograph of the translated pair."""
    warp_photo: str = "chelsea"
    """scikit-image photograph of the non-rigid pair."""
    preset: str = "default"
    """hashflow solver preset (see ``hashflow.PRESETS``)."""
    solver_options: dict = field(default_factory=dict)
    """SolverConfig fields overriding the preset (e.g. {"encode_steps": 20})."""
    order: int = 2
    """Lagrange order of the hash grid."""
    encoder: str = "auto"
    """hashflow encoder: "auto", "direct" or "pretrained"."""
    baseline: str = "dis-medium"
    """OpenCV baseline shown beside hashflow (hashflow.baselines); "" for none."""
    seed: int = 0
    """Seed of the pairs and of the solver."""
    device: str | None = None
    """Torch device; None: CUDA when available, else CPU."""
    encoding_figure: bool = True
    """Also draw img1's hash encoding (original / decoded / per-level features)."""

    def __post_init__(self) -> None:
        for name in ("translated_photo", "warp_photo"):
            if getattr(self, name) not in SKIMAGE_PHOTOS:
                raise ValueError(f"{name} must be one of {SKIMAGE_PHOTOS}, "
                                 f"got {getattr(self, name)!r}")
        if not isinstance(self.size, int) or self.size < 32:
            raise ValueError(f"size must be an integer >= 32, got {self.size!r}")
        if not (0 <= self.radius < self.size / 2 and 0 <= self.warp_amplitude < self.size / 2):
            raise ValueError("radius and warp_amplitude must lie in [0, size / 2)")


@dataclass
class DemoPair:
    """A frame pair with dense ground truth."""

    name: str
    """Short identifier, used in file names."""
    title: str
    """Human-readable description for the report."""
    img1: np.ndarray
    """(H, W, 3) uint8 RGB."""
    img2: np.ndarray
    """(H, W, 3) uint8 RGB."""
    flow: np.ndarray
    """(H, W, 2) float32 ground truth: img1(x) ≈ img2(x + flow(x))."""


def load_photo(name: str) -> np.ndarray:
    """A scikit-image photograph as (H, W, 3) uint8 RGB."""
    return ImageSource(f"skimage:{name}").load()


def fit_canvas(photo: np.ndarray, side: int) -> np.ndarray:
    """The photo scaled (area filter) so that its short side is ``side`` px; float32."""
    scale = side / min(photo.shape[:2])
    new_size = (max(side, round(photo.shape[1] * scale)), max(side, round(photo.shape[0] * scale)))
    return cv2.resize(photo.astype(np.float32), new_size, interpolation=cv2.INTER_AREA)


def translated_pair(config: DemoConfig) -> DemoPair:
    """The paper's protocol at demo size: the whole frame moved by one random vector."""
    reach = math.ceil(config.radius) + _SAMPLING_BORDER
    canvas = fit_canvas(load_photo(config.translated_photo), config.size + 2 * reach)
    pair = make_translated_pair(np.round(canvas).astype(np.uint8), size=config.size,
                                radius=config.radius, n_points=0, margin=0, rng=config.seed)
    u, v = pair.flow
    return DemoPair("translated", f"translation ({u:+.2f}, {v:+.2f}) px of "
                    f"{config.translated_photo}", pair.img1, pair.img2, pair.dense_flow())


def smooth_warp_field(size: int, amplitude: float, seed: int) -> np.ndarray:
    """A smooth non-rigid flow (size, size, 2): zoom + sinusoidal shear, max |flow| = amplitude."""
    rng = np.random.default_rng(seed)
    phase_u, phase_v = rng.uniform(0, 2 * np.pi, 2)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / size - 0.5
    u = np.sin(3 * y + phase_u) + 0.8 * x
    v = np.cos(3 * x + phase_v) + 0.8 * y
    flow = np.dstack([u, v])
    largest = np.hypot(u, v).max()
    return (flow * (amplitude / largest if largest > 0 else 0.0)).astype(np.float32)


def warped_pair(config: DemoConfig) -> DemoPair:
    """img2 a crop of the photo; img1(x) = img2(x + flow(x)) sampled from the uncropped photo."""
    reach = math.ceil(config.warp_amplitude) + _SAMPLING_BORDER
    canvas = fit_canvas(load_photo(config.warp_photo), config.size + 2 * reach)
    top = (canvas.shape[0] - config.size) // 2
    left = (canvas.shape[1] - config.size) // 2
    flow = smooth_warp_field(config.size, config.warp_amplitude, config.seed)
    y, x = np.mgrid[0:config.size, 0:config.size].astype(np.float32)
    img1 = cv2.remap(canvas, x + left + flow[..., 0], y + top + flow[..., 1], cv2.INTER_LINEAR)
    img2 = canvas[top:top + config.size, left:left + config.size]
    return DemoPair("warped", f"smooth non-rigid warp (up to {config.warp_amplitude:g} px) of "
                    f"{config.warp_photo}", _to_uint8(img1), _to_uint8(img2), flow)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def estimate_methods(pair: DemoPair, estimator: FlowEstimator,
                     baseline: str) -> dict[str, tuple[np.ndarray, float]]:
    """Flow of every method on the pair: {method: (flow (H, W, 2), seconds)}."""
    results = {}
    for mode in ("patch", "image"):
        start = time.perf_counter()
        flow = estimator.estimate(pair.img1, pair.img2, mode=mode)
        results[f"hashflow-{mode}"] = (flow, time.perf_counter() - start)
    if baseline:
        start = time.perf_counter()
        flow = run_baseline(baseline, pair.img1, pair.img2)
        results[baseline] = (flow, time.perf_counter() - start)
    return results


def shared_error_scale(flows: dict[str, np.ndarray], gt: np.ndarray) -> float:
    """One EPE colour-bar top (px) for all methods: the largest 99th percentile, at least 1."""
    percentiles = [np.percentile(np.linalg.norm(flow - gt, axis=-1), 99) for flow in flows.values()]
    return max(1.0, float(max(percentiles)))


def write_pair_figures(out: Path, pair: DemoPair, flows: dict[str, np.ndarray]) -> dict:
    """Inputs, colour wheels (one scale), error maps (one scale), quiver and warp check.

    Returns: {figure label: file name relative to ``out``}.
    """
    files = {"inputs": f"{pair.name}_inputs.png", "ground truth": f"{pair.name}_gt.png"}
    viz.image_figure({"img1": pair.img1, "img2": pair.img2}, out / files["inputs"])
    radius = max(viz.largest_magnitude(pair.flow), 1.0)
    viz.flow_figure(pair.flow, out / files["ground truth"], max_radius=radius,
                    title=f"ground truth (rim {radius:.3g} px)")
    top = shared_error_scale(flows, pair.flow)
    for method, flow in flows.items():
        files[f"{method} flow"] = f"{pair.name}_{method}_flow.png"
        files[f"{method} error"] = f"{pair.name}_{method}_error.png"
        viz.flow_figure(flow, out / files[f"{method} flow"], max_radius=radius, title=method)
        viz.error_figure(flow, pair.flow, out / files[f"{method} error"], vmax=top,
                         title=f"{method} EPE")
    best = flows["hashflow-patch"]
    files["quiver (patch)"] = f"{pair.name}_quiver.png"
    files["warp check (patch)"] = f"{pair.name}_warp.png"
    viz.quiver_figure(pair.img1, best, out / files["quiver (patch)"], title="hashflow-patch")
    viz.warp_figure(pair.img1, pair.img2, best, out / files["warp check (patch)"])
    return files


def evaluate_pair(out: Path, pair: DemoPair, estimator: FlowEstimator,
                  config: DemoConfig) -> dict:
    """Run every method on the pair, write its figures; the pair's entry of demo.json."""
    runs = estimate_methods(pair, estimator, config.baseline)
    flows = {method: flow for method, (flow, _) in runs.items()}
    methods = {method: _scores(flow, pair.flow, seconds)
               for method, (flow, seconds) in runs.items()}
    return {"title": pair.title, "size": list(pair.img1.shape[:2]),
            "mean_gt_magnitude": float(np.hypot(*pair.flow.transpose(2, 0, 1)).mean()),
            "methods": methods, "figures": write_pair_figures(out, pair, flows)}


def _scores(flow: np.ndarray, gt: np.ndarray, seconds: float) -> dict:
    stats = flow_metrics(flow, gt)
    return {"epe": stats["epe_mean"], "acc_1px": stats["acc_1px"], "seconds": seconds}


def run_demo(out: str | os.PathLike = "hashflow-demo", config: DemoConfig = DemoConfig(),
             log=print) -> dict:
    """Run the demo and write ``report.html``, ``demo.json`` and PNGs into ``out``.

    Args:
        out: output folder (created). config: what to run. log: called with progress lines
            (None for silence).
    Returns:
        the contents of demo.json: per pair its EPE (px, pooled over all pixels) and run time
        (s, hashflow patch includes encoding both frames; image mode reuses the encodings)
        per method, plus the config and the report path.
    Raises:
        ValueError when the baseline is unavailable in this OpenCV build.
    """
    log = log or (lambda _: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if config.baseline and unavailable_reason(config.baseline):
        raise ValueError(f"baseline {config.baseline!r}: {unavailable_reason(config.baseline)}")
    estimator = FlowEstimator(order=config.order, encoder=config.encoder, device=config.device,
                              config=config.preset, seed=config.seed, **config.solver_options)
    pairs = {}
    for pair in (translated_pair(config), warped_pair(config)):
        log(f"demo: {pair.title} ...")
        pairs[pair.name] = evaluate_pair(out, pair, estimator, config)
        if config.encoding_figure and pair.name == "translated":
            _write_encoding_figure(out, pair, estimator, pairs[pair.name])
    results = {"config": dataclasses.asdict(config), "encoder": estimator.encoder, "pairs": pairs,
               "report": str(out / "report.html")}
    write_text_atomic(out / "demo.json", json.dumps(results, indent=2))
    write_text_atomic(out / "report.html", render_report(results))
    return results


def _write_encoding_figure(out: Path, pair: DemoPair, estimator: FlowEstimator,
                           entry: dict) -> None:
    name = f"{pair.name}_encoding.png"
    viz.encoding_figure(estimator.encode(pair.img1), pair.img1, out / name)
    entry["figures"]["hash encoding of img1"] = name


def render_report(results: dict) -> str:
    """A standalone HTML page: the EPE table, then every pair's figures."""
    parts = [_HTML_HEAD, "<h1>hashflow demo</h1>", _summary(results), _epe_table(results)]
    for entry in results["pairs"].values():
        parts.append(f"<h2>{html.escape(entry['title'])}</h2><div class='figs'>")
        parts += [f"<figure><img src='{html.escape(name)}'><figcaption>{html.escape(label)}"
                  "</figcaption></figure>" for label, name in entry["figures"].items()]
        parts.append("</div>")
    return "\n".join(parts + ["</body></html>"])


def _summary(results: dict) -> str:
    config = results["config"]
    return (f"<p>hashflow preset <code>{html.escape(config['preset'])}</code>, order "
            f"{config['order']}, encoder <code>{html.escape(results['encoder'])}</code>; "
            f"frames {config['size']}x{config['size']} px. EPE is pooled over all pixels. "
            "Flow maps img1 to img2: img1(x) &asymp; img2(x + flow(x)). Times: hashflow-patch "
            "includes encoding both frames, hashflow-image reuses the encodings.</p>")


def _epe_table(results: dict) -> str:
    methods = list(next(iter(results["pairs"].values()))["methods"])
    head = "".join(f"<th>{html.escape(m)}</th>" for m in methods)
    rows = []
    for entry in results["pairs"].values():
        cells = "".join(f"<td>{entry['methods'][m]['epe']:.3f} px<br><small>"
                        f"{_duration(entry['methods'][m]['seconds'])}</small></td>"
                        for m in methods)
        rows.append(f"<tr><td>{html.escape(entry['title'])}<br><small>mean |gt| "
                    f"{entry['mean_gt_magnitude']:.2f} px</small></td>{cells}</tr>")
    return f"<table><tr><th>pair</th>{head}</tr>{''.join(rows)}</table>"


def _duration(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.0f} ms"


_HTML_HEAD = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>hashflow demo</title>
<style>
body { font-family: sans-serif; max-width: 1200px; margin: 1em auto; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 4px 8px; }
.figs { display: flex; flex-wrap: wrap; gap: 8px; }
figure { margin: 0; } figure img { max-height: 300px; } figcaption { font-size: small; }
</style></head><body>"""
