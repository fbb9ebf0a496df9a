"""The methods the benchmark compares: hashflow modes x Lagrange orders, and OpenCV baselines.

Names: ``hashflow-{pixel|patch|image}-o{1|2}`` and the baseline names of
``hashflow.baselines.BASELINES`` (``dis-medium``, ``phasecorr``, ...). Every method is run as
``predict_at_points(spec, img1, img2, points)`` -> ``(N, 2)`` flow at the points, so all are
scored on exactly the same points; dense methods are sampled bilinearly at the points.
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from hashflow import baselines

HASHFLOW_MODES = ("pixel", "patch", "image")
HASHFLOW_ORDERS = (1, 2)
_HASHFLOW_PREFIX = "hashflow-"


@dataclass(frozen=True)
class MethodSpec:
    """One benchmark method, parsed from its name."""

    name: str
    """Registry name, e.g. ``hashflow-patch-o2`` or ``dis-medium``."""
    family: str
    """``"hashflow"`` or ``"baseline"``."""
    mode: str | None = None
    """hashflow solving mode (pixel / patch / image); None for baselines."""
    order: int | None = None
    """hashflow Lagrange multi-sampling order n; None for baselines."""

    @property
    def sparse(self) -> bool:
        """True when the method only yields flow at points (no dense map for figures/real sets)."""
        return self.family == "baseline" and baselines.BASELINES[self.name].sparse


def hashflow_method_name(mode: str, order: int) -> str:
    """``hashflow-{mode}-o{order}``."""
    return f"{_HASHFLOW_PREFIX}{mode}-o{order}"


def all_method_names() -> list[str]:
    """Every method the benchmark knows, hashflow first."""
    hashflow = [hashflow_method_name(m, n) for m in HASHFLOW_MODES for n in HASHFLOW_ORDERS]
    return hashflow + list(baselines.BASELINES)


def parse_method(name: str) -> MethodSpec:
    """MethodSpec for ``name``; ValueError listing the known names when it is unknown."""
    if name in baselines.BASELINES:
        return MethodSpec(name, "baseline")
    for mode in HASHFLOW_MODES:
        for order in HASHFLOW_ORDERS:
            if name == hashflow_method_name(mode, order):
                return MethodSpec(name, "hashflow", mode, order)
    raise ValueError(f"unknown method {name!r}; expected one of: {', '.join(all_method_names())}")


def select_methods(names: list[str] | None = None, modes: list[str] | None = None,
                   orders: list[int] | None = None) -> list[MethodSpec]:
    """The methods to run: ``names`` when given, else all; hashflow ones filtered by mode/order."""
    _check_choices("modes", modes, HASHFLOW_MODES)
    _check_choices("orders", orders, HASHFLOW_ORDERS)
    specs = [parse_method(name) for name in (names or all_method_names())]
    return [spec for spec in specs if spec.family == "baseline" or (
        (modes is None or spec.mode in modes) and (orders is None or spec.order in orders))]


def _check_choices(what: str, given, allowed) -> None:
    bad = [value for value in (given or []) if value not in allowed]
    if bad:
        raise ValueError(f"{what}: expected values from {list(allowed)}, got {bad}")


def _flow_estimator_class():
    """``hashflow.FlowEstimator``; raises ImportError/AttributeError while it does not exist."""
    import hashflow
    return getattr(hashflow, "FlowEstimator")


def unavailable_reason(spec: MethodSpec) -> str | None:
    """Why ``spec`` cannot run here (the import/attribute error or cv2 reason), or None."""
    if spec.family == "baseline":
        return baselines.unavailable_reason(spec.name)
    try:
        _flow_estimator_class()
    except (ImportError, AttributeError) as error:
        return f"hashflow.FlowEstimator unavailable: {type(error).__name__}: {error}"
    return None


@dataclass(frozen=True)
class HashflowOptions:
    """How the benchmark builds hashflow's FlowEstimator."""

    device: str | None = None
    """torch device; None: CUDA when available, else CPU."""
    preset: str = "default"
    """Solver preset name (hashflow.solver_config.PRESETS: default, fast, accurate)."""
    encoder: str = "auto"
    """Encoder: auto, pretrained or direct (per-image fit)."""


class HashflowSession:
    """One FlowEstimator per Lagrange order, shared by the three modes.

    Each frame pair is encoded once per order; the measured encode cost (time, peak memory)
    is charged to every mode of that order, so s/pair is what one mode alone would cost.
    """

    def __init__(self, options: HashflowOptions = HashflowOptions()):
        self.options = options
        self._estimators: dict[int, Any] = {}
        self._encode_cost: dict[tuple[str, int], tuple[float, float, str]] = {}

    def estimator(self, order: int):
        """The (cached) FlowEstimator for ``order``."""
        if order not in self._estimators:
            self._estimators[order] = _flow_estimator_class()(
                order=order, encoder=self.options.encoder, device=self.options.device,
                config=self.options.preset)
        return self._estimators[order]

    def encode_cost(self, spec: MethodSpec, img1, img2, pair_id: str) -> tuple[float, float, str]:
        """Encode both frames for ``spec.order`` once; returns (seconds, peak MB, memory kind)."""
        key = (pair_id, spec.order)
        if key not in self._encode_cost:
            estimator = self.estimator(spec.order)
            _, seconds, peak, kind = timed_call(
                spec, lambda: (estimator.encode(img1), estimator.encode(img2)),
                self.options.device)
            self._encode_cost = {k: v for k, v in self._encode_cost.items() if k[0] == pair_id}
            self._encode_cost[key] = (seconds, peak, kind)
        return self._encode_cost[key]

    def solve(self, spec: MethodSpec, img1, img2, points=None) -> np.ndarray:
        """Flow (N, 2) at points, or dense (H, W, 2) when points is None, float32."""
        flow = self.estimator(spec.order).estimate(img1, img2, mode=spec.mode, points=points)
        return np.asarray(flow, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# Running a method


def sample_flow(flow: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear sample of a dense flow at points.

    Args:
        flow: (H, W, 2) float, pixel (row i, col j) centred at (x, y) = (j, i).
        points: (N, 2) float (x, y); clamped to the image.
    Returns:
        (N, 2) float32 flow at the points.
    """
    height, width = flow.shape[:2]
    x = np.clip(points[:, 0], 0, width - 1)
    y = np.clip(points[:, 1], 0, height - 1)
    x0 = np.minimum(np.floor(x).astype(int), width - 2 if width > 1 else 0)
    y0 = np.minimum(np.floor(y).astype(int), height - 2 if height > 1 else 0)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    tx, ty = (x - x0)[:, None], (y - y0)[:, None]
    top = flow[y0, x0] * (1 - tx) + flow[y0, x1] * tx
    bottom = flow[y1, x0] * (1 - tx) + flow[y1, x1] * tx
    return (top * (1 - ty) + bottom * ty).astype(np.float32)


def predict_dense(spec: MethodSpec, img1, img2,
                  session: HashflowSession | None = None) -> np.ndarray:
    """Dense flow (H, W, 2) float32 of a dense-capable method (ValueError for point-only ones)."""
    if spec.sparse:
        raise ValueError(f"{spec.name} is point-only: it has no dense flow")
    if spec.family == "baseline":
        return baselines.run_baseline(spec.name, img1, img2)
    return (session or HashflowSession()).solve(spec, img1, img2)


def predict_at_points(spec: MethodSpec, img1, img2, points: np.ndarray,
                      session: HashflowSession | None = None) -> np.ndarray:
    """Flow (N, 2) float32 at ``points`` (N, 2) (x, y) from img1 to img2."""
    if spec.family == "hashflow":
        flow = (session or HashflowSession()).solve(spec, img1, img2, points)
        return flow.reshape(len(points), 2)
    flow = baselines.run_baseline(spec.name, img1, img2, points)
    return flow if spec.sparse else sample_flow(flow, points)


# ---------------------------------------------------------------------------------------------
# Time and memory of one call

MEMORY_NOTES = {
    "cuda": "torch.cuda.max_memory_allocated during the call (GPU tensors only)",
    "rss": "peak resident-set growth of the process during the call (Linux VmHWM, reset before "
           "each call); counts numpy, OpenCV and torch CPU buffers, not memory already cached "
           "by allocators from earlier calls",
    "tracemalloc": "tracemalloc peak during the call (Python and numpy allocations only; "
                   "misses OpenCV-internal and torch buffers)",
}


def _uses_cuda(spec: MethodSpec, device: str | None) -> bool:
    if spec.family != "hashflow":
        return False
    import torch
    wanted = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return str(wanted).startswith("cuda") and torch.cuda.is_available()


def _read_status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} missing from /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset the process's peak RSS (Linux clear_refs 5); False when the platform can't."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def timed_call(spec: MethodSpec, call: Callable[[], Any],
               device: str | None = None) -> tuple[Any, float, float, str]:
    """Run ``call()``; returns (result, seconds, peak MB, memory kind in MEMORY_NOTES)."""
    if _uses_cuda(spec, device):
        return _timed_cuda(call)
    if _reset_peak_rss():
        return _timed_rss(call)
    return _timed_tracemalloc(call)


def _timed_cuda(call):
    import torch
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = call()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return result, seconds, (torch.cuda.max_memory_allocated() - base) / 2**20, "cuda"


def _timed_rss(call):
    base_kb = _read_status_kb("VmRSS")
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    return result, seconds, max(_read_status_kb("VmHWM") - base_kb, 0) / 1024, "rss"


def _timed_tracemalloc(call):
    tracemalloc.start()
    try:
        start = time.perf_counter()
        result = call()
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, seconds, peak / 2**20, "tracemalloc"


def default_device_label(device: str | None) -> str:
    """What ``device=None`` means here, for the report."""
    if device:
        return device
    try:
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


__all__ = ["MethodSpec", "HashflowOptions", "HashflowSession", "HASHFLOW_MODES",
           "HASHFLOW_ORDERS", "MEMORY_NOTES", "all_method_names", "parse_method", "select_methods", "unavailable_reason", "sample_flow",
           "predict_dense", "predict_at_points", "timed_call", "hashflow_method_name",
           "default_device_label"]
