"""The EPE benchmark: hashflow modes and OpenCV baselines on the same translated pairs.

Protocol (paper section 4.3): images translated by a random vector within ``radius`` px,
``n_points`` random points at least ``margin`` px from the border, EPE at the points. Every
(pair, method) result is appended to ``records.jsonl`` in the output folder as soon as it is
known; a rerun skips the finished ones (``--fresh`` starts over). Pairs are identified by a
hash of their content, so a changed protocol never reuses stale results.

``main(argv)`` is what ``hashflow bench`` and ``benchmarks/epe.py`` call.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from hashflow.atomic import write_text_atomic
from hashflow.bench import methods as bench_methods
from hashflow.bench import report
from hashflow.bench.common import comma_ints, comma_list, progress
from hashflow.metrics import flow_metrics

RECORDS_FILE = "records.jsonl"


@dataclass(frozen=True)
class BenchConfig:
    """Everything one benchmark run depends on."""

    out: str = "results/bench"
    """Output folder: records.jsonl, results.json, results.md, PNG plots."""
    n_pairs: int = 100
    """Number of translated pairs (the paper uses 100)."""
    size: int = 256
    """Side of the square crops in pixels."""
    radius: float = 50.0
    """Largest translation length in pixels."""
    n_points: int = 256
    """Evaluation points per pair."""
    margin: float = 50.0
    """Smallest distance of a point from the border in pixels."""
    methods: tuple[str, ...] | None = None
    """Method names to run; None runs every known method."""
    modes: tuple[str, ...] | None = None
    """hashflow modes to keep (pixel / patch / image); None keeps all."""
    orders: tuple[int, ...] | None = None
    """hashflow Lagrange orders to keep; None keeps all."""
    device: str | None = None
    """torch device for hashflow methods; None: CUDA when available, else CPU."""
    hashflow_preset: str = "default"
    """hashflow solver preset (default, fast, accurate)."""
    encoder: str = "auto"
    """hashflow encoder: auto (pretrained weights when shipped), pretrained or direct."""
    real: bool = False
    """Also score dense EPE on the real-flow sets found in the data folder."""
    coco_dir: str | None = None
    """Folder of source images; None: COCO val2017 from the data folder, else scikit-image."""
    seed: int = 0
    """Seed of the pair generator."""
    fresh: bool = False
    """Discard earlier records instead of resuming."""
    progress: bool = True
    """Show a tqdm progress bar."""
    example_pair: int = 0
    """Index of the pair drawn in example.png; -1 draws no example figure."""


BENCH_PRESETS: dict[str, BenchConfig] = {
    "paper": BenchConfig(),
    "quick": BenchConfig(n_pairs=8, hashflow_preset="fast"),
}
"""Named benchmark presets; ``--quick`` selects ``quick`` (8 pairs, hashflow's fast solver
preset), otherwise ``paper``; every option given on the command line overrides the preset."""


# ---------------------------------------------------------------------------------------------
# Pairs


def load_translated_pairs(config: BenchConfig) -> tuple[list, str]:
    """The translated pairs of ``config`` (cached as HDF5 in the output folder) and a label
    of their source images."""
    from hashflow.datasets import pairstore, sources
    images = sources.list_sources(config.coco_dir)
    store = pairstore.get_or_make_pairs(
        Path(config.out) / _pairs_file_name(config), n_pairs=config.n_pairs, seed=config.seed,
        sources=images, size=config.size, radius=config.radius, n_points=config.n_points,
        margin=config.margin)
    return [store.pair(i) for i in range(len(store))], _source_label(images)


def _pairs_file_name(config: BenchConfig) -> str:
    tag = f"{config.n_pairs}x{config.size}-r{config.radius:g}-p{config.n_points}" \
          f"-m{config.margin:g}-s{config.seed}"
    return f"pairs-{tag}.h5"


def _source_label(images) -> str:
    first = images[0]
    if first.path is None:
        return f"scikit-image photographs ({len(images)})"
    return f"{first.path.parent} ({len(images)} images)"


def pair_key(pair) -> str:
    """Short content hash of a translated pair (images, translation, points)."""
    digest = hashlib.sha1()
    for array in (pair.img1, pair.img2, pair.flow, pair.points):
        data = np.ascontiguousarray(array)
        digest.update(str(data.shape).encode() + data.tobytes())
    return digest.hexdigest()[:16]


def load_real_samples() -> Iterator[tuple[str, object]]:
    """(``real/<set name>``, FlowSample) for every real-flow set in the data folder."""
    from hashflow.datasets import realflow
    for name, flow_set in realflow.find_real_sets().items():
        for sample in flow_set.samples():
            yield f"real/{name}", sample


# ---------------------------------------------------------------------------------------------
# Records (JSONL, one line per (pair, method); a torn last line from a crash is ignored)


class RecordStore:
    """Append-only JSONL log of per-(pair, method) results."""

    def __init__(self, path: Path, fresh: bool = False):
        self.path = Path(path)
        if fresh or not self.path.exists():
            write_text_atomic(self.path, "")
        self.records: dict[tuple[str, str], dict] = {}
        for record in self._read():
            self.records[(record["pair_key"], record["method"])] = record

    def _read(self) -> Iterator[dict]:
        for line in self.path.read_text().splitlines():
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue

    def done(self, key: str, method: str) -> bool:
        """True when (pair, method) has a successful record (errors are retried)."""
        record = self.records.get((key, method))
        return record is not None and record["status"] == "ok"

    def add(self, record: dict) -> None:
        """Append ``record`` and flush it to disk."""
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
        self.records[(record["pair_key"], record["method"])] = record

    def select(self, keys: set[str], methods: list[str]) -> list[dict]:
        """Records of the given pairs and methods, in insertion order."""
        wanted = set(methods)
        return [r for (key, method), r in self.records.items()
                if key in keys and method in wanted]


# ---------------------------------------------------------------------------------------------
# Running one (pair, method)


def _base_record(set_name, index, key, source, spec, config) -> dict:
    return {"set": set_name, "pair": index, "pair_key": key, "source": source,
            "method": spec.name, "device": "cpu" if spec.family == "baseline"
            else bench_methods.default_device_label(config.device)}


def _measured(spec, predict, img1, img2, pair_id: str, session, config: BenchConfig):
    """(flow, timing/memory fields) of ``predict()``.

    hashflow methods first encode both frames through the session (once per pair and order,
    outside the timed solve); that encode cost is added to the method's seconds and memory.
    """
    encoded = (session.encode_cost(spec, img1, img2, pair_id)
               if spec.family == "hashflow" else None)
    flow, seconds, peak_mb, kind = bench_methods.timed_call(spec, predict, config.device)
    fields = {"seconds": seconds, "peak_mb": peak_mb, "memory_kind": kind}
    if encoded is not None:
        fields.update(seconds=encoded[0] + seconds, seconds_encode=encoded[0],
                      seconds_solve=seconds, peak_mb=max(peak_mb, encoded[1]))
    return flow, fields


def run_point_pair(spec, pair, index: int, key: str, config: BenchConfig,
                   session=None) -> dict:
    """Score ``spec`` on one translated pair at its points; errors become a record too."""
    record = _base_record("translated", index, key, str(pair.source), spec, config)
    gt = np.asarray(pair.flow, np.float64).reshape(2)
    points = np.asarray(pair.points, np.float32)
    try:
        pred, fields = _measured(spec, lambda: bench_methods.predict_at_points(
            spec, pair.img1, pair.img2, points, session), pair.img1, pair.img2, key, session,
            config)
        metrics = flow_metrics(pred, np.broadcast_to(gt, pred.shape))
    except Exception as error:  # noqa: BLE001 - one failing method must not stop the run
        return {**record, "status": "error", "error": f"{type(error).__name__}: {error}"}
    return {**record, "status": "ok", **fields, "metrics": metrics, "gt": gt.tolist(),
            "pred": np.round(pred.astype(np.float64), 4).tolist()}


def run_dense_sample(spec, set_name: str, sample, config: BenchConfig, session=None) -> dict:
    """Score a dense-capable ``spec`` on one real-flow sample over its valid pixels."""
    key = f"{set_name}/{sample.name}"
    record = _base_record(set_name, sample.name, key, set_name, spec, config)
    try:
        pred, fields = _measured(spec, lambda: bench_methods.predict_dense(
            spec, sample.img1, sample.img2, session), sample.img1, sample.img2, key, session,
            config)
        metrics = flow_metrics(pred, sample.flow, np.asarray(sample.valid, bool))
    except Exception as error:  # noqa: BLE001
        return {**record, "status": "error", "error": f"{type(error).__name__}: {error}"}
    return {**record, "status": "ok", **fields, "metrics": metrics}


# ---------------------------------------------------------------------------------------------
# The run


def split_available(specs) -> tuple[list, dict[str, str]]:
    """(runnable specs, {name: reason} of the skipped ones)."""
    runnable, skipped = [], {}
    for spec in specs:
        reason = bench_methods.unavailable_reason(spec)
        if reason is None:
            runnable.append(spec)
        else:
            skipped[spec.name] = reason
    return runnable, skipped


def _run_points(store, specs, pairs, keys, config, session) -> int:
    """Run every unfinished (pair, method); returns the number computed now."""
    todo = [(i, spec) for i in range(len(pairs)) for spec in specs
            if not store.done(keys[i], spec.name)]
    with progress(len(todo), config.progress, "translated pairs") as bar:
        for index, spec in todo:
            bar.set_postfix_str(spec.name)
            store.add(run_point_pair(spec, pairs[index], index, keys[index], config, session))
            bar.update()
    return len(todo)


def _run_real(store, specs, config, session) -> tuple[set[str], int]:
    """Dense runs on the real-flow sets; returns (their record keys, number computed now)."""
    dense = [spec for spec in specs if not spec.sparse]
    samples = list(load_real_samples())
    keys, computed = set(), 0
    with progress(len(samples) * len(dense), config.progress, "real-flow sets") as bar:
        for set_name, sample in samples:
            key = f"{set_name}/{sample.name}"
            keys.add(key)
            for spec in dense:
                if not store.done(key, spec.name):
                    store.add(run_dense_sample(spec, set_name, sample, config, session))
                    computed += 1
                bar.update()
    return keys, computed


def run_benchmark(config: BenchConfig) -> dict:
    """Run (or resume) the benchmark and write every output; returns the results dict."""
    out = Path(config.out)
    runnable, skipped = split_available(_selected_specs(config))
    pairs, source = load_translated_pairs(config)
    keys = [pair_key(pair) for pair in pairs]
    store = RecordStore(out / RECORDS_FILE, fresh=config.fresh)
    session = bench_methods.HashflowSession(bench_methods.HashflowOptions(
        config.device, config.hashflow_preset, config.encoder))
    for spec in runnable:
        if spec.family == "hashflow":
            session.estimator(spec.order)  # a bad preset or encoder fails here, not per pair
    computed = _run_points(store, runnable, pairs, keys, config, session)
    real_keys = set()
    if config.real:
        real_keys, computed_real = _run_real(store, runnable, config, session)
        computed += computed_real
    names = [spec.name for spec in runnable]
    records = store.select(set(keys) | real_keys, names)
    results = _results(config, records, names, skipped, source, len(pairs), computed)
    _write_outputs(out, results, config, pairs, runnable, store, keys, session)
    return results


def _results(config, records, names, skipped, source, n_pairs, computed) -> dict:
    results = report.summarise(records, names)
    kinds = sorted({r["memory_kind"] for r in records if r["status"] == "ok"})
    return {"config": dataclasses.asdict(config), "n_pairs": n_pairs, "source": source,
            "device": bench_methods.default_device_label(config.device),
            "pooling": report.POOLING_NOTE,
            "memory_notes": [f"{k}: {bench_methods.MEMORY_NOTES[k]}" for k in kinds],
            "computed_this_run": computed, "skipped": skipped, **results,
            "reference_paper_table2": report.PAPER_TABLE2}


def _write_outputs(out: Path, results, config, pairs, specs, store, keys, session) -> None:
    results["files"] = ["results.json", "results.md", "epe_bars.png", "epe_vs_time.png"]
    if 0 <= config.example_pair < len(pairs) and specs:
        results["files"].append("example.png")
        _write_example(out / "example.png", pairs[config.example_pair], specs, store,
                       keys[config.example_pair], session)
    report.plot_epe_bars(results, out / "epe_bars.png")
    report.plot_epe_vs_time(results, out / "epe_vs_time.png")
    report.write_json(out / "results.json", results)
    write_text_atomic(out / "results.md", report.render_markdown(results))


def _figure_flow(spec, pair, store, key, session):
    """Dense flow for dense baselines and image mode (one global shift); else the point flows."""
    dense = (spec.family == "baseline" and not spec.sparse) or spec.mode == "image"
    if dense:
        try:
            return bench_methods.predict_dense(spec, pair.img1, pair.img2, session)
        except Exception:  # noqa: BLE001 - fall back to the recorded point flows
            pass
    record = store.records.get((key, spec.name))
    if record is None or record["status"] != "ok":
        return None
    return np.asarray(record["pred"], np.float32)


def _write_example(path: Path, pair, specs, store, key, session) -> None:
    height, width = pair.img1.shape[:2]
    gt_flow = np.broadcast_to(np.asarray(pair.flow, np.float32), (height, width, 2))
    flows = {spec.name: _figure_flow(spec, pair, store, key, session) for spec in specs}
    flows = {name: flow for name, flow in flows.items() if flow is not None}
    max_radius = max(1.5 * float(np.linalg.norm(pair.flow)), 1.0)  # errors up to 1.5 |gt| show
    report.plot_example(path, pair.img1, pair.img2, gt_flow, flows,
                        np.asarray(pair.points), max_radius)


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    """The ``hashflow bench`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="hashflow bench", description="EPE benchmark on translated pairs: hashflow "
        "pixel/patch/image (Lagrange order 1, 2) beside OpenCV baselines.")
    add = parser.add_argument
    add("--out", help="output folder (default results/bench)")
    add("--quick", action="store_true", help="quick preset: 8 pairs, hashflow preset fast")
    add("--pairs", type=int, dest="n_pairs", help="number of pairs (default 100)")
    add("--size", type=int, help="crop side in px (default 256)")
    add("--radius", type=float, help="largest translation in px (default 50)")
    add("--points", type=int, dest="n_points", help="points per pair (default 256)")
    add("--margin", type=float, help="point distance from the border in px (default 50)")
    add("--methods", type=comma_list, help="comma list, e.g. hashflow-patch-o2,dis-medium,"
        "phasecorr (default: all); --list-methods shows them")
    add("--modes", type=comma_list, help="hashflow modes to keep: pixel,patch,image")
    add("--orders", type=comma_ints, help="hashflow Lagrange orders to keep: 1,2")
    add("--device", help="torch device for hashflow (default: cuda if available, else cpu)")
    add("--hashflow-preset", help="hashflow solver preset: default, fast, accurate")
    add("--encoder", choices=("auto", "pretrained", "direct"),
        help="hashflow encoder (default auto: pretrained weights when shipped, else direct)")
    add("--real", action="store_true", help="also dense EPE on the real-flow sets")
    add("--coco-dir", help="folder of source images (default: COCO val2017 in the data folder)")
    add("--seed", type=int, help="pair generator seed (default 0)")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument("--resume", dest="fresh", action="store_false", default=None,
                        help="skip (pair, method) entries already in records.jsonl (default)")
    resume.add_argument("--fresh", dest="fresh", action="store_true", default=None,
                        help="discard earlier records and start over")
    add("--no-progress", dest="progress", action="store_false", default=None,
        help="no progress bar")
    add("--example-pair", type=int, help="pair drawn in example.png (-1: none; default 0)")
    add("--list-methods", action="store_true", help="print the methods and exit")
    return parser


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """BenchConfig from parsed arguments: the preset, overridden by every option given."""
    preset = BENCH_PRESETS["quick" if args.quick else "paper"]
    fields = {f.name for f in dataclasses.fields(BenchConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    config = dataclasses.replace(preset, **given)
    _validate(config)
    return config


def _validate(config: BenchConfig) -> None:
    for name in ("n_pairs", "size", "n_points"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name}: expected a positive integer, got {getattr(config, name)}")
    if config.radius < 0 or config.margin < 0:
        raise ValueError("radius and margin: expected non-negative values")
    if not _selected_specs(config):
        raise ValueError("methods: expected at least one method after the --methods, --modes "
                         "and --orders filters")


def _selected_specs(config: BenchConfig) -> list:
    return bench_methods.select_methods(
        list(config.methods) if config.methods else None,
        list(config.modes) if config.modes else None,
        list(config.orders) if config.orders else None)


def _list_methods() -> str:
    lines = []
    for name in bench_methods.all_method_names():
        reason = bench_methods.unavailable_reason(bench_methods.parse_method(name))
        lines.append(f"{name:22s} {'ok' if reason is None else 'skipped: ' + reason}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``hashflow bench``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list_methods:
        print(_list_methods())
        return 0
    try:
        config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    results = run_benchmark(config)
    print(report.render_markdown(results))
    print(f"results written to {config.out}/")
    return 0
