"""Reconstruction benchmark: the paper's Table 1, Figure 5 and Table 4 (Appendix B).

For each Lagrange order n and each evaluation image (square 256-px crops of COCO val2017):

- **Table 1**: PSNR / SSIM (/ LPIPS) of (a) the encoder prediction (``model.encode``),
  (b) the prediction fine-tuned for ``steps_finetune`` steps (``model.finetune``, decoder frozen),
  (c) a per-image fit of tables + decoder for ``steps_direct`` steps (``fit_image``, the upper
  bound), (d) a per-image fit of tables + decoder from scratch with the fine-tune budget, and
  (d') tables from scratch under the frozen universal decoder with the fine-tune budget and
  learning rate (exactly (b) without the encoder). Targets: (b) >= (d) + 1 dB, (b) >= (c) - 1 dB.
- **Figure 5**: tables of 1, 4, 16, 64 images optimised jointly with ONE shared decoder, the
  same number of steps per image for every count; mean PSNR against the number of images,
  beside the encoder's one-pass PSNR on the same images.
- **Table 4**: translation invariance. From a canvas of ``size + max(shifts)`` px, the base
  crop and crops shifted by (s, 0), (0, s), (s, s) are encoded and decoded; each shifted decode
  is shifted back and compared on the overlap with the base decode and with the original.

Every unit of work (image x order x method, image x order for shifts, order x count for
Figure 5) is appended to ``records.jsonl`` in the output folder when done; a rerun skips the
finished units (``--fresh`` starts over). Units are keyed by a hash of the image content,
the settings they depend on and the model weights, so changed settings never reuse stale
results. Metrics are means of per-image values. The orders can run as two parallel processes
on one output folder (``--orders 1`` and ``--orders 2``; a last run with ``--orders 1,2`` then
only assembles the report); never run two processes on the same order: each reads
records.jsonl once, at its start. ``main(argv)`` is what ``benchmarks/reconstruction.py`` calls.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from hashflow.atomic import write_text_atomic
from hashflow.bench import report
from hashflow.bench.common import comma_ints, progress
from hashflow.bench.runner import RecordStore
from hashflow.decoder import Decoder
from hashflow.fit import default_device, fit_image, reconstruction_loss
from hashflow.grid import HashGridConfig, init_tables
from hashflow.images import psnr

RECORDS_FILE = "records.jsonl"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
TABLE1_METHODS = ("encoder", "finetune", "direct", "scratch", "scratch-frozen")
# Paper Table 1 (LPIPS, lower is better) and Table 4 (MiT-B0 translation invariance LPIPS).
PAPER_TABLE1_LPIPS = {1: {"encoder": 0.3622, "finetune": 0.2249, "direct": 0.2040},
                      2: {"encoder": 0.4107, "finetune": 0.2223, "direct": 0.2125}}
PAPER_TABLE4_LPIPS = {1: 0.0337, 2: 0.0891}
TARGET_GAIN_OVER_SCRATCH_DB = 1.0
TARGET_GAP_TO_DIRECT_DB = 1.0
SSIM_WINDOW = 11
ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"


@dataclass(frozen=True)
class ReconConfig:
    """Everything one reconstruction benchmark run depends on."""

    out: str = "results/reconstruction"
    """Output folder: records.jsonl, results.json, results.md, fig5.png."""
    n_images: int = 32
    """Number of evaluation images (the first ones in name order)."""
    all_images: bool = False
    """Use every image in the folder instead of ``n_images``."""
    image_dir: str | None = None
    """Folder of images; None: COCO val2017 in the data folder, else scikit-image photos."""
    size: int = 256
    """Side of the square evaluation crops (centre crop, then resize)."""
    orders: tuple[int, ...] = (1, 2)
    """Lagrange orders to evaluate (one autoencoder each)."""
    weights_o1: str | None = None
    """Order-1 model file; None: shipped weights, else runs/hash_ae_o1.pt."""
    weights_o2: str | None = None
    """Order-2 model file; None: shipped weights, else runs/hash_ae_o2.pt."""
    steps_direct: int = 1000
    """Steps of the per-image fit of tables + decoder, column (c)."""
    steps_finetune: int = 100
    """Steps of the fine-tune (b) and of the from-scratch fits (d), (d')."""
    finetune_lr: float = 5e-2
    """Adam learning rate of the fine-tune (b) and of (d') (HashAutoencoder.finetune's)."""
    fit_lr: float = 2e-2
    """Adam learning rate of the per-image fits (c), (d) and Figure 5 (fit_image's)."""
    finetune_level_dropout: float = 0.0
    """Level dropout during the fine-tune (b) and (d'); (c), (d) always use 0."""
    fig5: bool = True
    """Run the Figure 5 experiment (one shared decoder for many images)."""
    fig5_counts: tuple[int, ...] = (1, 4, 16, 64)
    """Numbers of images whose tables share one decoder."""
    fig5_steps: int = 100
    """Optimisation steps per image (each image's table is updated this many times)."""
    fig5_batch: int = 4
    """Images per Figure 5 step."""
    fig5_size: int = 128
    """Crop side for Figure 5 (smaller than ``size`` to keep 64 images affordable)."""
    shift: bool = True
    """Run the translation-invariance experiment (paper Table 4)."""
    shifts: tuple[int, ...] = (10, 20, 30, 40, 50)
    """Shift lengths in px; each is applied as (s, 0), (0, s) and (s, s)."""
    seed: int = 0
    """Seed of every fit."""
    device: str | None = None
    """torch device; None: CUDA when available, else CPU."""
    threads: int | None = None
    """torch CPU threads; None leaves torch's default (OMP_NUM_THREADS)."""
    fresh: bool = False
    """Discard earlier records instead of resuming."""
    progress: bool = True
    """Show tqdm progress bars."""


RECON_PRESETS: dict[str, ReconConfig] = {
    "paper": ReconConfig(),
    "quick": ReconConfig(n_images=4, steps_direct=200, steps_finetune=30, fig5_counts=(1, 2, 4),
                         fig5_steps=30, shifts=(10, 30, 50)),
}
"""Named presets; ``--quick`` selects ``quick`` (a smoke run), otherwise ``paper``; every
option given on the command line overrides the preset."""


# ---------------------------------------------------------------------------------------------
# Images


@dataclass(frozen=True)
class EvalImage:
    """One prepared evaluation image."""

    name: str
    """Source file name or ``skimage:NAME``."""
    pixels: np.ndarray
    """(S, S, 3) uint8 RGB square crop."""

    @property
    def key(self) -> str:
        """Short content hash of the pixels."""
        return _digest(self.pixels)

    def tensor(self, device) -> torch.Tensor:
        """(3, S, S) float32 in [0, 1] on ``device``."""
        return torch.from_numpy(self.pixels).permute(2, 0, 1).float().div(255).to(device)


def _digest(array: np.ndarray) -> str:
    data = np.ascontiguousarray(array)
    return hashlib.sha1(str(data.shape).encode() + data.tobytes()).hexdigest()[:16]


def square_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop of an (H, W, 3) uint8 image resized to (size, size, 3) uint8."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = image[top:top + side, left:left + side]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=interpolation))


def list_image_sources(config: ReconConfig) -> tuple[list, str]:
    """(all available sources, a label saying where they come from)."""
    from hashflow.datasets import sources
    found = sources.list_sources(config.image_dir)
    if found[0].path is None:
        return found, (f"scikit-image photographs ({len(found)}; no COCO val2017 found under "
                       "the data folder: set HASHFLOW_DATA or pass --images DIR)")
    return found, f"{found[0].path.parent} ({len(found)} images available)"


def prepare(sources_list, count: int, size: int) -> list[EvalImage]:
    """The first ``count`` sources as square crops of side ``size``."""
    return [EvalImage(s.name, square_crop(s.load(), size)) for s in sources_list[:count]]


# ---------------------------------------------------------------------------------------------
# Models and metrics


def resolve_model(order: int, path: str | None, device) -> tuple[object, str]:
    """(HashAutoencoder in eval mode, the weights file it came from) for ``order``.

    An explicit path wins; else the shipped weights (``load_pretrained``); else the training
    checkpoint ``runs/hash_ae_o{order}.pt``. FileNotFoundError when there is none;
    ValueError when the file holds a model of another order.
    """
    from hashflow.autoencoder import HashAutoencoder, load_pretrained, pretrained_path
    if path is None and pretrained_path(order).is_file():
        return load_pretrained(order, device), str(pretrained_path(order))
    if path is None:
        path = PROJECT_ROOT / "runs" / f"hash_ae_o{order}.pt"
        if not Path(path).is_file():
            load_pretrained(order, device)  # raises the FileNotFoundError with instructions
    model = HashAutoencoder.load(path, device)
    if model.order != order:
        raise ValueError(f"{path} holds an order-{model.order} model, expected order {order}")
    return model, str(path)


def model_fingerprint(model: torch.nn.Module) -> str:
    """Short hash of the model's state dict (names and values)."""
    digest = hashlib.sha1()
    for name, value in sorted(model.state_dict().items()):
        digest.update(name.encode() + value.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()[:16]


def load_lpips(device) -> tuple[Callable | None, str | None]:
    """(LPIPS-AlexNet callable on (3, H, W) images in [0, 1], None) when the ``lpips`` package
    and its backbone weights are available offline; else (None, why not). Never downloads."""
    try:
        import lpips
        import torchvision  # noqa: F401 - lpips builds its backbone with torchvision
    except ImportError as error:
        return None, f"LPIPS not computed: {error.name or error} is not installed"
    backbone = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS
    if not backbone.is_file():
        return None, f"LPIPS not computed: AlexNet weights not at {backbone} (no download)"
    try:
        net = lpips.LPIPS(net="alex", verbose=False).to(device).eval()
    except Exception as error:  # noqa: BLE001 - any failure here only removes one column
        return None, f"LPIPS not computed: {type(error).__name__}: {error}"
    return lambda a, b: float(net(a[None], b[None], normalize=True).mean()), None


class Scorer:
    """PSNR, SSIM (kornia, 11x11 Gaussian window) and, when available, LPIPS."""

    def __init__(self, device, lpips_loader: Callable = None):
        self.lpips, self.lpips_reason = (lpips_loader or load_lpips)(device)

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> dict:
        """pred, target: (3, H, W) in [0, 1]. Returns {"psnr", "ssim", "lpips" (or None)}."""
        import kornia
        with torch.no_grad():
            pred = pred.clamp(0, 1)
            ssim = kornia.metrics.ssim(pred[None], target[None], SSIM_WINDOW).mean().item()
            score = self.lpips(pred, target) if self.lpips else None
        return {"psnr": psnr(pred, target), "ssim": float(ssim), "lpips": score}


def decoded(encoding) -> torch.Tensor:
    """Full-frame decode of a HashEncoding: (3, H, W) in [0, 1], no grad."""
    with torch.no_grad():
        return encoding.decode_grid().clamp(0, 1)


# ---------------------------------------------------------------------------------------------
# Records


def record_key(**parts) -> str:
    """Short hash of everything a unit of work depends on."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


class Units:
    """Runs units of work through a RecordStore: done ones are read back, others computed."""

    def __init__(self, store: RecordStore):
        self.store, self.computed, self.selected = store, 0, []

    def get(self, key: str, label: str, base: dict, compute: Callable[[], dict]) -> dict:
        """The record of (key, label); computed now (errors recorded) when not yet done."""
        self.selected.append((key, label))
        if self.store.done(key, label):
            return self.store.records[(key, label)]
        record = {**base, "pair_key": key, "method": label}
        try:
            record.update(status="ok", **compute())
        except Exception as error:  # noqa: BLE001 - one failing unit must not stop the run
            record.update(status="error", error=f"{type(error).__name__}: {error}")
        self.store.add(record)
        self.computed += 1
        return record

    def done(self, key: str, label: str) -> bool:
        """True when (key, label) has a successful record."""
        return self.store.done(key, label)

    def records(self) -> list[dict]:
        """Records of every unit asked for in this run, in order."""
        return [self.store.records[item] for item in dict.fromkeys(self.selected)]


def _timed(fn: Callable):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# Table 1


@dataclass
class OrderModel:
    """One order's autoencoder and what identifies it."""

    order: int
    model: object
    weights: str
    fingerprint: str


def table1_keys(image: EvalImage, om: OrderModel, config: ReconConfig) -> dict[str, str]:
    """Record key of each Table 1 method for one image and order."""
    grid = dataclasses.asdict(om.model.config.grid)
    common = {"image": image.key, "order": om.order, "seed": config.seed}
    with_model = {**common, "model": om.fingerprint}
    tune = {"steps": config.steps_finetune, "lr": config.finetune_lr,
            "dropout": config.finetune_level_dropout}
    return {
        "encoder": record_key(method="encoder", **with_model),
        "finetune": record_key(method="finetune", **with_model, **tune),
        "direct": record_key(method="direct", grid=grid, steps=config.steps_direct,
                             lr=config.fit_lr, decoder_hidden=om.model.config.decoder_hidden,
                             **common),
        "scratch": record_key(method="scratch", grid=grid, steps=config.steps_finetune,
                              lr=config.fit_lr, decoder_hidden=om.model.config.decoder_hidden,
                              **common),
        "scratch-frozen": record_key(method="scratch-frozen", **with_model, **tune),
    }


def table1_computations(image: EvalImage, om: OrderModel, config: ReconConfig, scorer: Scorer,
                        device) -> dict[str, Callable[[], dict]]:
    """method -> a function computing its record fields (metrics and seconds)."""
    model, target = om.model, image.tensor(device)
    grid = model.config.grid
    cache = {}

    def encoded():
        if "encoding" not in cache:
            cache["encoding"] = _timed(lambda: model.encode(target))
        return cache["encoding"]

    def scored(encoding, seconds, **extra):
        return {**scorer(decoded(encoding), target), "seconds": seconds, **extra}

    def finetune():
        encoding, encode_s = encoded()
        tuned, tune_s = _timed(lambda: model.finetune(
            encoding, target, steps=config.steps_finetune, lr=config.finetune_lr,
            level_dropout=config.finetune_level_dropout, seed=config.seed))
        return scored(tuned, encode_s + tune_s, seconds_encode=encode_s, seconds_finetune=tune_s)

    def fit(steps, decoder, lr, dropout=0.0):
        return lambda: scored(*_timed(lambda: fit_image(
            target, steps=steps, decoder=decoder, device=device, seed=config.seed, lr=lr,
            level_dropout=dropout, config=grid)))

    return {"encoder": lambda: scored(*encoded()), "finetune": finetune,
            "direct": fit(config.steps_direct, None, config.fit_lr),
            "scratch": fit(config.steps_finetune, None, config.fit_lr),
            "scratch-frozen": fit(config.steps_finetune, model.frozen_decoder(),
                                  config.finetune_lr, config.finetune_level_dropout)}


def run_table1(units: Units, images: list[EvalImage], models: list[OrderModel],
               config: ReconConfig, scorer: Scorer, device) -> None:
    """Every (image, order, method) of Table 1, skipping finished ones."""
    jobs = [(image, om) for om in models for image in images]
    todo = sum(not units.done(k, f"table1/{m}") for image, om in jobs
               for m, k in table1_keys(image, om, config).items())
    with progress(todo, config.progress, "table 1", unit="unit") as bar:
        for image, om in jobs:
            keys = table1_keys(image, om, config)
            compute = table1_computations(image, om, config, scorer, device)
            for method in TABLE1_METHODS:
                label = f"table1/{method}"
                fresh = not units.done(keys[method], label)
                bar.set_postfix_str(f"o{om.order} {method}")
                units.get(keys[method], label, {"kind": "table1", "table1_method": method,
                                                "order": om.order, "image": image.name},
                          compute[method])
                bar.update(int(fresh))


# ---------------------------------------------------------------------------------------------
# Table 4: translation invariance


def shift_offsets(shifts: tuple[int, ...]) -> list[tuple[int, int]]:
    """(dx, dy) pairs: (s, 0), (0, s), (s, s) for every shift length s."""
    return [offset for s in shifts for offset in ((s, 0), (0, s), (s, s))]


def shift_scores(model, canvas: np.ndarray, size: int, offsets, scorer: Scorer,
                 device) -> list[dict]:
    """Translation invariance of ``model`` on one canvas.

    canvas: (S + m, S + m, 3) uint8 with m >= every shift; the base image is its top-left
    S x S crop, the shifted image the crop at (dx, dy), so shifted(y, x) = base(y + dy, x + dx).
    Its decode shifted back covers base rows dy.. and columns dx..: that overlap is compared
    with the base decode ("vs_decoded"), the original pixels ("vs_original"), and the base
    decode with the original there ("base_vs_original", the reference).
    """
    original = torch.from_numpy(canvas).permute(2, 0, 1).float().div(255).to(device)
    base = original[:, :size, :size]
    base_decoded = decoded(model.encode(base))
    rows = []
    for dx, dy in offsets:
        shifted_decoded = decoded(model.encode(original[:, dy:dy + size, dx:dx + size]))
        back = shifted_decoded[:, :size - dy, :size - dx]
        overlap_decoded, overlap_original = base_decoded[:, dy:, dx:], base[:, dy:, dx:]
        rows.append({"dx": dx, "dy": dy, "vs_decoded": scorer(back, overlap_decoded),
                     "vs_original": scorer(back, overlap_original),
                     "base_vs_original": scorer(overlap_decoded, overlap_original)})
    return rows


def run_shift(units: Units, canvases: list[EvalImage], models: list[OrderModel],
              config: ReconConfig, scorer: Scorer, device) -> None:
    """Every (image, order) of the translation-invariance experiment."""
    offsets = shift_offsets(config.shifts)
    jobs = [(canvas, om) for om in models for canvas in canvases]
    with progress(len(jobs), config.progress, "translation invariance", unit="unit") as bar:
        for canvas, om in jobs:
            key = record_key(kind="shift", image=canvas.key, order=om.order, size=config.size,
                             offsets=offsets, model=om.fingerprint)
            bar.set_postfix_str(f"o{om.order}")
            units.get(key, "shift", {"kind": "shift", "order": om.order, "image": canvas.name},
                      lambda: dict(zip(("shifts", "seconds"), _timed(lambda: shift_scores(
                          om.model, canvas.pixels, config.size, offsets, scorer, device)))))
            bar.update()


# ---------------------------------------------------------------------------------------------
# Figure 5: one shared decoder for many images


def fit_shared_decoder(targets: torch.Tensor, grid: HashGridConfig, steps_per_image: int,
                       batch: int = 4, lr: float = 2e-2, seed: int = 0,
                       decoder_hidden: int = 64) -> list[float]:
    """Optimise one table per image and ONE decoder jointly; every image's table is updated
    ``steps_per_image`` times (batches of ``batch`` images, cycling through a permutation).

    targets: (N, 3, H, W) float in [0, 1]. Returns the PSNR of each image's decode.
    """
    count, device = targets.shape[0], targets.device
    config = grid.for_image(*targets.shape[-2:])
    generator = torch.Generator().manual_seed(seed)
    tables = [torch.nn.Parameter(init_tables(config, 1, generator=generator).to(device))
              for _ in range(count)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        decoder = Decoder(config.feature_dim, decoder_hidden).to(device)
    optimiser = torch.optim.Adam([*tables, *decoder.parameters()], lr=lr, betas=(0.9, 0.99),
                                 eps=1e-15)
    for index in _batches(count, min(batch, count), steps_per_image, generator):
        loss = reconstruction_loss(torch.cat([tables[i] for i in index]), decoder,
                                   targets[index], config, None)
        optimiser.zero_grad(set_to_none=True)  # tables outside the batch get no Adam step
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        return [psnr(reconstruct(table, decoder, config, targets.shape[-2:]), target)
                for table, target in zip(tables, targets)]


def _batches(count: int, batch: int, steps_per_image: int, generator: torch.Generator):
    """Index lists covering every image ``steps_per_image`` times, one permutation per epoch."""
    order = torch.cat([torch.randperm(count, generator=generator)
                       for _ in range(steps_per_image)])
    for start in range(0, len(order) - batch + 1, batch):
        yield order[start:start + batch].tolist()
    if len(order) % batch:
        yield order[-(len(order) % batch):].tolist()


def reconstruct(table: torch.Tensor, decoder: Decoder, config: HashGridConfig,
                size) -> torch.Tensor:
    """table: (1, L, T, F) -> (3, H, W) decode in [0, 1]."""
    from hashflow.grid import sample_grid
    features = sample_grid(table, config, tuple(size))
    return decoder.forward_maps(features)[0].clamp(0, 1)


def fig5_counts(config: ReconConfig, available: int) -> tuple[list[int], list[int]]:
    """(counts that fit the available images, counts skipped for lack of images)."""
    counts = sorted(set(config.fig5_counts))
    return [c for c in counts if c <= available], [c for c in counts if c > available]


def run_fig5(units: Units, images: list[EvalImage], orders: tuple[int, ...],
             models: dict[int, OrderModel], config: ReconConfig, device) -> None:
    """Shared-decoder fits for every (order, count) and the encoder's PSNR on those images."""
    counts, _ = fig5_counts(config, len(images))
    if not counts:
        return
    targets = torch.stack([image.tensor(device) for image in images[:max(counts, default=0)]])
    jobs = [(order, count) for order in orders for count in counts]
    with progress(len(jobs), config.progress, "figure 5", unit="unit") as bar:
        for order in orders:
            om = models.get(order)
            grid = om.model.config.grid if om else HashGridConfig(order=order)
            hidden = om.model.config.decoder_hidden if om else 64
            if om is not None:
                _fig5_encoder(units, images[:len(targets)], om, config, device)
            for count in counts:
                bar.set_postfix_str(f"o{order} x{count}")
                _fig5_unit(units, images[:count], targets[:count], order, grid, hidden, config)
                bar.update()


def _fig5_unit(units, images, targets, order, grid, hidden, config) -> dict:
    key = record_key(kind="fig5", order=order, images=[i.key for i in images],
                     grid=dataclasses.asdict(grid), hidden=hidden, steps=config.fig5_steps,
                     batch=config.fig5_batch, lr=config.fit_lr, seed=config.seed)
    return units.get(key, "fig5", {"kind": "fig5", "order": order, "count": len(images)},
                     lambda: dict(zip(("psnr", "seconds"), _timed(lambda: fit_shared_decoder(
                         targets, grid, config.fig5_steps, config.fig5_batch, config.fit_lr,
                         config.seed, hidden)))))


def _fig5_encoder(units, images, om: OrderModel, config, device) -> dict:
    key = record_key(kind="fig5-encoder", order=om.order, images=[i.key for i in images],
                     model=om.fingerprint)

    def compute():
        values, seconds = _timed(lambda: [psnr(decoded(om.model.encode(image.tensor(device))),
                                              image.tensor(device)) for image in images])
        return {"psnr": values, "seconds": seconds}
    return units.get(key, "fig5-encoder", {"kind": "fig5-encoder", "order": om.order}, compute)


# ---------------------------------------------------------------------------------------------
# Summaries


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _metric_means(rows: list[dict]) -> dict:
    return {name: _mean([row[name] for row in rows]) for name in ("psnr", "ssim", "lpips")}


def summarise_table1(records: list[dict], orders) -> dict:
    """order -> {method -> means and timing, "targets" -> the two target checks}."""
    summary = {}
    for order in orders:
        mine = [r for r in records if r["kind"] == "table1" and r["order"] == order]
        entry = {m: _method_entry([r for r in mine if r["table1_method"] == m])
                 for m in TABLE1_METHODS}
        entry["targets"] = _targets(entry)
        summary[str(order)] = entry
    return summary


def _method_entry(records: list[dict]) -> dict:
    ok = [r for r in records if r["status"] == "ok"]
    entry = {"images": len(ok), "failed": len(records) - len(ok),
             "errors": sorted({r["error"] for r in records if r["status"] != "ok"})[:3]}
    if ok:
        entry.update(_metric_means(ok), seconds_median=float(np.median(
            [r["seconds"] for r in ok])), seconds_total=float(sum(r["seconds"] for r in ok)))
    return entry


def _targets(entry: dict) -> dict:
    psnrs = {m: entry[m].get("psnr") for m in TABLE1_METHODS}
    if None in (psnrs["finetune"], psnrs["scratch"], psnrs["direct"]):
        return {}
    gain = psnrs["finetune"] - psnrs["scratch"]
    gap = psnrs["direct"] - psnrs["finetune"]
    return {"finetune_minus_scratch_db": gain,
            "finetune_gain_met": gain >= TARGET_GAIN_OVER_SCRATCH_DB,
            "direct_minus_finetune_db": gap, "direct_gap_met": gap <= TARGET_GAP_TO_DIRECT_DB}


def summarise_shift(records: list[dict], orders, shifts) -> dict:
    """order -> {"all" and each shift length -> mean metrics of the three comparisons}."""
    summary = {}
    for order in orders:
        rows = [row for r in records if r["kind"] == "shift" and r["order"] == order
                and r["status"] == "ok" for row in r["shifts"]]
        if not rows:
            continue
        groups = {"all": rows, **{str(s): [row for row in rows if max(row["dx"], row["dy"]) == s]
                                  for s in shifts}}
        summary[str(order)] = {name: _shift_entry(group) for name, group in groups.items()}
        summary[str(order)]["images"] = len({r["image"] for r in records if r["kind"] == "shift"
                                             and r["order"] == order and r["status"] == "ok"})
    return summary


def _shift_entry(rows: list[dict]) -> dict:
    return {part: _metric_means([row[part] for row in rows])
            for part in ("vs_decoded", "vs_original", "base_vs_original")} | {"count": len(rows)}


def summarise_fig5(records: list[dict]) -> dict:
    """order -> {"counts": [...], "psnr": [...], "seconds": [...], "encoder_psnr": [...]}."""
    summary = {}
    for record in records:
        if record["kind"] != "fig5" or record["status"] != "ok":
            continue
        entry = summary.setdefault(str(record["order"]), {"counts": [], "psnr": [],
                                                          "seconds": [], "encoder_psnr": []})
        entry["counts"].append(record["count"])
        entry["psnr"].append(float(np.mean(record["psnr"])))
        entry["seconds"].append(record["seconds"])
        encoder = [r for r in records if r["kind"] == "fig5-encoder" and r["status"] == "ok"
                   and r["order"] == record["order"]]
        entry["encoder_psnr"].append(float(np.mean(encoder[0]["psnr"][:record["count"]]))
                                     if encoder else None)
    return summary


def compute_seconds(records: list[dict]) -> dict:
    """Seconds recorded per experiment (sums over units, whichever run computed them)."""
    kinds = {"table1": ("table1",), "shift": ("shift",), "fig5": ("fig5", "fig5-encoder")}
    return {name: float(sum(r.get("seconds", 0.0) for r in records
                            if r["kind"] in members and r["status"] == "ok"))
            for name, members in kinds.items()}


def errors_of(records: list[dict]) -> list[str]:
    """Distinct error messages of failed units, labelled."""
    return sorted({f"{r['method']} (order {r.get('order')}): {r['error']}" for r in records
                   if r["status"] != "ok"})


# ---------------------------------------------------------------------------------------------
# results.md and fig5.png

METHOD_LABELS = {
    "encoder": "(a) encoder prediction",
    "finetune": "(b) encoder + fine-tune {finetune} steps",
    "direct": "(c) per-image fit, tables + decoder, {direct} steps",
    "scratch": "(d) per-image fit from scratch, tables + decoder, {finetune} steps",
    "scratch-frozen": "(d') tables from scratch, universal decoder, {finetune} steps",
}


def _fmt(value, digits: int = 2) -> str:
    return report._fmt(value, digits)


def _table1_lines(results: dict) -> list[str]:
    config = results["config"]
    lines = ["| order | method | PSNR dB | SSIM | LPIPS | paper LPIPS | s/image (median) "
             "| images |", "|---|---|---|---|---|---|---|---|"]
    for order, entry in results["table1"].items():
        for method in TABLE1_METHODS:
            e = entry[method]
            label = METHOD_LABELS[method].format(finetune=config["steps_finetune"],
                                                 direct=config["steps_direct"])
            paper = PAPER_TABLE1_LPIPS.get(int(order), {}).get(method)
            failed = f" ({e['failed']} failed)" if e["failed"] else ""
            lines.append(f"| n={order} | {label} | {_fmt(e.get('psnr'))} | "
                         f"{_fmt(e.get('ssim'), 4)} | {_fmt(e.get('lpips'), 4)} | "
                         f"{_fmt(paper, 4)} | {_fmt(e.get('seconds_median'))} | "
                         f"{e['images']}{failed} |")
    return lines


def _target_lines(results: dict) -> list[str]:
    lines = []
    for order, entry in results["table1"].items():
        t = entry["targets"]
        if t:
            gain = "met" if t["finetune_gain_met"] else "NOT met"
            gap = "met" if t["direct_gap_met"] else "NOT met"
            lines.append(f"- n={order}: (b) - (d) = {t['finetune_minus_scratch_db']:+.2f} dB "
                         f"(target >= +{TARGET_GAIN_OVER_SCRATCH_DB:g}: {gain}); (c) - (b) = "
                         f"{t['direct_minus_finetune_db']:+.2f} dB (target <= "
                         f"{TARGET_GAP_TO_DIRECT_DB:g}: {gap}).")
    return lines


def _shift_lines(results: dict) -> list[str]:
    lines = ["| order | shift px | PSNR vs base decode | SSIM vs base decode | LPIPS vs base "
             "decode | PSNR vs original | SSIM vs original | LPIPS vs original | base decode "
             "vs original PSNR | paper LPIPS (MiT-B0) |", "|---" * 10 + "|"]
    for order, entry in results["shift"].items():
        for name, e in entry.items():
            if name == "images":
                continue
            d, o, b = e["vs_decoded"], e["vs_original"], e["base_vs_original"]
            paper = _fmt(PAPER_TABLE4_LPIPS.get(int(order)), 4) if name == "all" else ""
            lines.append(f"| n={order} | {name} | {_fmt(d['psnr'])} | {_fmt(d['ssim'], 4)} | "
                         f"{_fmt(d['lpips'], 4)} | {_fmt(o['psnr'])} | {_fmt(o['ssim'], 4)} | "
                         f"{_fmt(o['lpips'], 4)} | {_fmt(b['psnr'])} | {paper} |")
    return lines


def _fig5_lines(results: dict) -> list[str]:
    lines = ["| order | images | PSNR, shared decoder (dB) | encoder one pass, same images "
             "(dB) | seconds |", "|---|---|---|---|---|"]
    for order, entry in results["fig5"].items():
        for count, value, encoder, seconds in zip(entry["counts"], entry["psnr"],
                                                  entry["encoder_psnr"], entry["seconds"]):
            lines.append(f"| n={order} | {count} | {_fmt(value)} | {_fmt(encoder)} | "
                         f"{_fmt(seconds, 1)} |")
    return lines


def render_markdown(results: dict) -> str:
    """The results.md text: protocol, the three tables with the paper's numbers, notes."""
    config = results["config"]
    lines = ["# hashflow reconstruction benchmark", "",
             f"{results['n_images']} images, {config['size']}x{config['size']} centre crops, "
             f"source: {results['source']}. Device: {results['device']}. Weights: "
             + "; ".join(f"n={o}: {w}" for o, w in results["weights"].items()) + ".",
             "Values are means of per-image values. " + results["lpips_note"],
             f"Run time: {results['wall_seconds']:.0f} s ({results['computed_this_run']} units "
             "computed this run, the rest resumed from records.jsonl). Compute seconds recorded "
             "per experiment: " + ", ".join(f"{name} {value:.0f} s" for name, value in
                                             results["compute_seconds"].items()) + ".", "",
             "## Table 1: reconstruction quality", ""]
    lines += _table1_lines(results) + [""] + _target_lines(results)
    if results["shift"]:
        lines += ["", "## Table 4: translation invariance", "",
                  f"Shifts (s, 0), (0, s), (s, s) for s in {list(config['shifts'])} px; the "
                  "decode of the shifted image is shifted back and compared on the overlap.", ""]
        lines += _shift_lines(results)
    if results["fig5"]:
        lines += ["", "## Figure 5: one shared decoder for many images", "",
                  f"{config['fig5_size']}x{config['fig5_size']} crops, {config['fig5_steps']} "
                  f"steps per image (batches of {config['fig5_batch']}); fig5.png.", ""]
        lines += _fig5_lines(results)
    notes = [f"- {name}: {reason}" for name, reason in results["skipped"].items()]
    notes += [f"- error: {message}" for message in results["errors"][:10]]
    if notes:
        lines += ["", "## Notes", ""] + notes
    return "\n".join(lines) + "\n"


def plot_fig5(results: dict, path: Path) -> None:
    """Mean PSNR against the number of images sharing one decoder, per order (log2 x axis),
    with the encoder's one-pass PSNR on the same images dashed."""
    plt = report._pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for order, entry in results["fig5"].items():
        line, = ax.plot(entry["counts"], entry["psnr"], "o-", label=f"shared decoder, n={order}")
        if any(v is not None for v in entry["encoder_psnr"]):
            ax.plot(entry["counts"], [np.nan if v is None else v for v in entry["encoder_psnr"]],
                    "s--", color=line.get_color(), label=f"encoder one pass, n={order}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("number of images sharing one decoder")
    ax.set_ylabel("mean PSNR (dB)")
    config = results["config"]
    ax.set_title(f"Tables optimised directly, {config['fig5_steps']} steps per image")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    report._save(fig, path)


# ---------------------------------------------------------------------------------------------
# The run


def load_models(config: ReconConfig, device) -> tuple[dict[int, tuple], dict[str, str]]:
    """({order: (model, weights file)}, {"table1/shift n=k": why skipped}) for config.orders."""
    models, skipped = {}, {}
    for order in config.orders:
        path = getattr(config, f"weights_o{order}", None)
        try:
            models[order] = resolve_model(order, path, device)
        except (FileNotFoundError, ValueError) as error:
            skipped[f"Table 1 / Table 4, n={order}"] = str(error)
    return models, skipped


def run_reconstruction(config: ReconConfig, models: dict[int, tuple] | None = None,
                       lpips_loader: Callable | None = None) -> dict:
    """Run (or resume) the benchmark and write every output; returns the results dict.

    models: optional {order: (HashAutoencoder, label)} instead of loading weights files.
    lpips_loader: optional replacement of :func:`load_lpips` (device -> (metric, reason)).
    """
    start = time.perf_counter()
    if config.threads:
        torch.set_num_threads(config.threads)
    device = default_device(config.device)
    skipped = {}
    if models is None:
        models, skipped = load_models(config, device)
    order_models = {o: OrderModel(o, m.to(device).eval(), label, model_fingerprint(m))
                    for o, (m, label) in models.items() if o in config.orders}
    sources_list, source = list_image_sources(config)
    count = len(sources_list) if config.all_images else min(config.n_images, len(sources_list))
    scorer = Scorer(device, lpips_loader)
    units = Units(RecordStore(Path(config.out) / RECORDS_FILE, fresh=config.fresh))
    ordered = [order_models[o] for o in config.orders if o in order_models]
    run_table1(units, prepare(sources_list, count, config.size), ordered, config, scorer, device)
    if config.shift:
        canvases = prepare(sources_list, count, config.size + max(config.shifts, default=0))
        run_shift(units, canvases, ordered, config, scorer, device)
    if config.fig5:
        fig5_images = prepare(sources_list, max(config.fig5_counts), config.fig5_size)
        missing = fig5_counts(config, len(fig5_images))[1]
        if missing:
            skipped[f"Figure 5 counts {missing}"] = f"only {len(fig5_images)} images available"
        run_fig5(units, fig5_images, config.orders, order_models, config, device)
    results = _results(config, units, order_models, skipped, source, count, scorer, device)
    results["wall_seconds"] = time.perf_counter() - start
    write_outputs(Path(config.out), results)
    return results


def _results(config, units, order_models, skipped, source, count, scorer, device) -> dict:
    records = units.records()
    return {"config": dataclasses.asdict(config), "n_images": count, "source": source,
            "device": str(device),
            "weights": {str(o): om.weights for o, om in order_models.items()},
            "lpips_note": scorer.lpips_reason or "LPIPS: AlexNet (lpips package).",
            "computed_this_run": units.computed,
            "table1": summarise_table1(records, list(order_models)),
            "shift": summarise_shift(records, list(order_models), config.shifts),
            "fig5": summarise_fig5(records), "compute_seconds": compute_seconds(records),
            "skipped": skipped, "errors": errors_of(records),
            "reference_paper": {"table1_lpips": PAPER_TABLE1_LPIPS,
                                "table4_lpips_mitb0": PAPER_TABLE4_LPIPS}}


def write_outputs(out: Path, results: dict) -> None:
    """results.json, results.md and (when Figure 5 ran) fig5.png, each atomically."""
    results["files"] = ["results.json", "results.md"] + (["fig5.png"] if results["fig5"]
                                                         else [])
    if results["fig5"]:
        plot_fig5(results, out / "fig5.png")
    report.write_json(out / "results.json", results)
    write_text_atomic(out / "results.md", render_markdown(results))


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``benchmarks/reconstruction.py``."""
    parser = argparse.ArgumentParser(
        prog="reconstruction", description="Reconstruction benchmark: encoder / fine-tuned / "
        "per-image tables (paper Table 1), one shared decoder (Figure 5), translation "
        "invariance (Table 4).")
    add = parser.add_argument
    add("--out", help="output folder (default results/reconstruction)")
    add("--quick", action="store_true", help="smoke run: 4 images, fewer steps, shifts 10/30/50")
    add("--images", help="number of images N (default 32), or a folder DIR of images")
    add("--image-dir", help="folder of images (default COCO val2017 in the data folder)")
    add("--all", dest="all_images", action="store_true", default=None,
        help="every image in the folder (128 for COCO val2017 here)")
    add("--size", type=int, help="crop side in px (default 256)")
    add("--orders", type=comma_ints, help="Lagrange orders, e.g. 1,2 (default)")
    add("--weights-o1", help="order-1 model file (default: shipped, else runs/hash_ae_o1.pt)")
    add("--weights-o2", help="order-2 model file (default: shipped, else runs/hash_ae_o2.pt)")
    add("--steps-direct", type=int, help="per-image fit steps, column (c) (default 1000)")
    add("--steps-finetune", type=int, help="fine-tune / from-scratch steps (default 100)")
    add("--finetune-lr", type=float, help="learning rate of (b) and (d') (default 5e-2)")
    add("--fit-lr", type=float, help="learning rate of (c), (d) and Figure 5 (default 2e-2)")
    add("--fig5-counts", type=comma_ints, help="image counts for Figure 5 (default 1,4,16,64)")
    add("--fig5-steps", type=int, help="Figure 5 steps per image (default 100)")
    add("--fig5-size", type=int, help="Figure 5 crop side in px (default 128)")
    add("--shifts", type=comma_ints, help="shift lengths in px (default 10,20,30,40,50)")
    add("--no-fig5", dest="fig5", action="store_false", default=None, help="skip Figure 5")
    add("--no-shift", dest="shift", action="store_false", default=None,
        help="skip the translation-invariance experiment")
    add("--seed", type=int, help="seed of every fit (default 0)")
    add("--device", help="torch device (default: cuda if available, else cpu)")
    add("--threads", type=int, help="torch CPU threads (default: torch's, OMP_NUM_THREADS)")
    add("--fresh", action="store_true", default=None, help="discard earlier records")
    add("--no-progress", dest="progress", action="store_false", default=None,
        help="no progress bars")
    return parser


def config_from_args(args: argparse.Namespace) -> ReconConfig:
    """ReconConfig from parsed arguments: the preset, overridden by every option given."""
    preset = RECON_PRESETS["quick" if args.quick else "paper"]
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("quick",
                                                                                 "images")}
    if args.images is not None and args.images.isdigit():
        given["n_images"] = int(args.images)
    elif args.images is not None:
        given["image_dir"] = args.images
    config = dataclasses.replace(preset, **given)
    _validate(config)
    return config


def _validate(config: ReconConfig) -> None:
    if config.finetune_lr <= 0 or config.fit_lr <= 0:
        raise ValueError("learning rates: expected positive values")
    for name in ("n_images", "size", "steps_direct", "steps_finetune", "fig5_steps",
                 "fig5_batch", "fig5_size"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name}: expected a positive integer, got {getattr(config, name)}")
    if not config.orders or set(config.orders) - {1, 2}:
        raise ValueError(f"orders: expected 1 and/or 2, got {config.orders}")
    if any(s < 1 for s in config.shifts) or not config.shifts:
        raise ValueError(f"shifts: expected positive pixel counts, got {config.shifts}")
    if any(c < 1 for c in config.fig5_counts) or not config.fig5_counts:
        raise ValueError(f"fig5_counts: expected positive counts, got {config.fig5_counts}")
    if max(config.shifts) >= config.size:
        raise ValueError(f"shifts: expected shifts below the crop size {config.size}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``benchmarks/reconstruction.py``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    results = run_reconstruction(config)
    print(render_markdown(results))
    print(f"results written to {config.out}/")
    return 0
