"""Train the hash autoencoder (MiT-B0 encoder + hash head + universal decoder) on image crops.

The shipped weights are trained in two stages: ``hashflow.decoder_pretrain`` learns the
universal decoder over a bank of free per-crop tables (stage 1), then this script trains the
encoder and head with that decoder loaded and frozen (``--decoder``, stage 2), starting from
earlier weights when given (``--init``). Without ``--decoder`` all three train jointly.

Single process::

    python -m hashflow.train --images /path/to/coco/train2017 --order 2 --size 256 \\
        --steps 1500 --batch-size 8 --lr 1e-3 --threads 1 --out runs/hash_ae_o2.pt --resume

(about 1.8-2.0 s a step on one busy CPU core, so about 50 minutes; ``--resume`` makes the same
command continue an interrupted run.)

Several processes (DistributedDataParallel) with ``torchrun``, which sets ``LOCAL_RANK``,
``RANK`` and ``WORLD_SIZE``; the process group uses NCCL on CUDA and gloo on CPU, each process
takes ``--batch-size`` crops per step (the global batch is ``batch_size * WORLD_SIZE``), and only
rank 0 shows progress and writes checkpoints::

    torchrun --nproc_per_node 4 -m hashflow.train --images DIR --out runs/hash_ae_o2.pt

Then ship the small file (fp16 weights, no optimiser)::

    python -m hashflow.train --export runs/hash_ae_o2.pt --out hashflow/weights/hash_ae_o2.pt

Each step: random square crops (upscaled first when an image is smaller) with random horizontal
flips; the loss is MSE (or L1 + MSE) between the crops and their decode through the predicted
tables (full-frame ``sample_grid`` + decoder). With probability ``level_dropout`` a step keeps only
the coarsest k levels, k uniform in [2, L], so coarse-only decodes stay meaningful for
coarse-to-fine flow. AdamW, linear warm-up then cosine decay. Checkpoints (model, optimiser,
step, RNG, configs) are written atomically every ``checkpoint_every`` steps and at the end.

The progress bar shows moving averages of the loss and of the PSNR of all-level steps.

Exact resumption: sample ``i`` of the run (global index over steps, ranks and batch slots) is
drawn from its own generator seeded by ``(seed, i)``, and each step's level dropout from one
seeded by ``(seed, step)``, so a resumed run sees the same data and dropout as an uninterrupted
one, independently of ``--workers``; the torch RNG (stochastic depth) is saved and restored too.
On CPU a resumed run matches an uninterrupted one to float precision (tested); CUDA's atomic
scatter-adds make GPU runs only statistically equal. ``--stop-after N`` ends an invocation after
N steps with a checkpoint, for time-sliced schedules. Never train on evaluation images: a folder
whose path contains ``val2017`` is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from hashflow.atomic import atomic_path
from hashflow.autoencoder import (AutoencoderConfig, HashAutoencoder, TRAINING_FORMAT,
                                  CHECKPOINT_VERSION, from_payload, read_checkpoint)
from hashflow.fit import default_device
from hashflow.images import load_image
from hashflow.models.mit import MiTConfig

__all__ = ["TrainConfig", "train", "export_weights", "main", "CropDataset", "lr_factor"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".webp", ".tif", ".tiff")
FORBIDDEN_DATA = "val2017"


@dataclass
class TrainConfig:
    """One training run of the hash autoencoder."""

    images: str
    """Folder of training images (e.g. COCO train2017); paths containing val2017 are refused."""
    out: str = "runs/hash_ae.pt"
    """Training checkpoint path (written atomically)."""
    order: int = 2
    """Lagrange order of the hash grid."""
    size: int = 256
    """Side of the square training crops (the grid's finest resolution)."""
    steps: int = 2000
    """Total optimiser steps."""
    batch_size: int = 8
    """Crops per step and process."""
    lr: float = 1e-3
    """Peak AdamW learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay (weights with ndim >= 2 only; no decay on norms and biases)."""
    warmup_steps: int = 100
    """Steps of linear learning-rate warm-up from 0."""
    min_lr_ratio: float = 0.01
    """Final learning rate of the cosine decay as a fraction of ``lr``."""
    loss: str = "l1+mse"
    """Reconstruction loss on decoded pixels: "mse" or "l1+mse"."""
    level_dropout: float = 0.5
    """Probability that a step decodes only the coarsest k levels, k uniform in [2, L]."""
    drop_path_rate: float = 0.0
    """Stochastic depth of the MiT encoder (SegFormer: 0.1); ignored when ``model`` is given."""
    model: AutoencoderConfig | None = None
    """Network to train (None: MiT-B0 + default head); its grid gets this run's order and size."""
    init: str | None = None
    """Model file (shipped weights or a checkpoint of the same config) to start from."""
    decoder: str | None = None
    """Stage-1 decoder checkpoint (``hashflow.decoder_pretrain``): loaded and kept frozen, so
    only the encoder and head train (stage 2)."""
    checkpoint_every: int = 200
    """Write a checkpoint every this many steps (and at the end)."""
    stop_after: int | None = None
    """Stop (with a checkpoint) after this many steps of this invocation; for time-sliced runs."""
    resume: bool = False
    """Continue from ``out`` when it exists (else start fresh)."""
    seed: int = 0
    """Seed for initialisation, data sampling and level dropout."""
    workers: int = 0
    """DataLoader worker processes (0: load in the training process)."""
    threads: int | None = None
    """torch CPU threads (None: torch's default); 1 is fastest on a busy shared CPU."""
    device: str | None = None
    """Device override; default CUDA when available, else CPU (LOCAL_RANK picks the GPU)."""
    progress: bool = True
    """Show a tqdm bar with loss and PSNR (rank 0)."""

    def __post_init__(self) -> None:
        if self.loss not in ("mse", "l1+mse"):
            raise ValueError(f"loss must be 'mse' or 'l1+mse', got {self.loss!r}")
        if self.size < 32 or self.steps < 0 or self.batch_size < 1:
            raise ValueError("need size >= 32, steps >= 0 and batch_size >= 1")
        if not 0.0 <= self.level_dropout <= 1.0:
            raise ValueError(f"level_dropout must be in [0, 1], got {self.level_dropout}")


def check_training_folder(images) -> Path:
    """The image folder as a Path; ValueError for evaluation data (val2017) or a missing folder."""
    folder = Path(images)
    if FORBIDDEN_DATA in str(folder) or FORBIDDEN_DATA in str(folder.resolve()):
        raise ValueError(f"refusing to train on {folder}: {FORBIDDEN_DATA} is evaluation data")
    if not folder.is_dir():
        raise ValueError(f"image folder {folder} does not exist")
    return folder


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted; ValueError when there are none."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def sample_generator(seed: int, index: int) -> torch.Generator:
    """A generator private to sample (or step) ``index`` of a run seeded with ``seed``."""
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


def random_crop(image: np.ndarray, size: int, generator: torch.Generator) -> np.ndarray:
    """A random ``size x size`` crop of uint8 (H, W, 3), upscaled first if a side is short,
    flipped left-right with probability 1/2."""
    height, width = image.shape[:2]
    scale = size / min(height, width)
    if scale > 1:
        width, height = math.ceil(width * scale), math.ceil(height * scale)
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    top = int(torch.randint(0, height - size + 1, (), generator=generator))
    left = int(torch.randint(0, width - size + 1, (), generator=generator))
    crop = image[top:top + size, left:left + size]
    if torch.rand((), generator=generator) < 0.5:
        crop = crop[:, ::-1]
    return np.ascontiguousarray(crop)


class CropDataset(Dataset):
    """Sample ``i`` = a seeded random crop of image ``perm_e[i % n]``, ``e = i // n`` the epoch.

    Indices are global sample numbers (unbounded); ``__len__`` is one epoch for reference only.
    Returns (3, size, size) float32 in [0, 1].
    """

    def __init__(self, files: list[Path], size: int, seed: int) -> None:
        self.files, self.size, self.seed = files, size, seed

    def __len__(self) -> int:
        return len(self.files)

    def file_for(self, index: int) -> Path:
        """The image sample ``index`` crops: each epoch visits every file once, seeded order."""
        epoch, slot = divmod(index, len(self.files))
        order = torch.randperm(len(self.files), generator=sample_generator(self.seed, -1 - epoch))
        return self.files[int(order[slot])]

    def __getitem__(self, index: int) -> torch.Tensor:
        crop = random_crop(load_image(self.file_for(index)), self.size,
                           sample_generator(self.seed, index))
        return torch.from_numpy(crop).permute(2, 0, 1).float() / 255.0


class RangeSampler(torch.utils.data.Sampler):
    """Global sample indices of this rank for steps ``start .. stop - 1``, in order."""

    def __init__(self, start: int, stop: int, batch_size: int, rank: int, world: int) -> None:
        self.start, self.stop, self.batch = start, stop, batch_size
        self.rank, self.world = rank, world

    def __iter__(self):
        for step in range(self.start, self.stop):
            first = (step * self.world + self.rank) * self.batch
            yield from range(first, first + self.batch)

    def __len__(self) -> int:
        return (self.stop - self.start) * self.batch


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up ``(step + 1) / warmup``, then cosine from 1 to
    ``min_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(total - warmup, 1))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def kept_levels(config: TrainConfig, step: int, num_levels: int) -> int | None:
    """Level dropout for ``step``: None (all levels) or k uniform in [2, L]."""
    generator = sample_generator(config.seed, 10**9 + step)
    if torch.rand((), generator=generator) >= config.level_dropout:
        return None
    return int(torch.randint(2, num_levels + 1, (), generator=generator))


def reconstruction_loss(decoded: torch.Tensor, target: torch.Tensor,
                        kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """decoded, target: (B, 3, H, W). Returns (loss, mse); loss is MSE or L1 + MSE."""
    mse = F.mse_loss(decoded, target)
    loss = mse if kind == "mse" else mse + F.l1_loss(decoded, target)
    return loss, mse


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices/kernels only (not on norms and biases)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr)


def build_model(config: TrainConfig) -> HashAutoencoder:
    """The autoencoder for the run's order and crop size: seeded fresh weights, or ``init``'s;
    with ``decoder``, the stage-1 decoder, frozen."""
    base = config.model or AutoencoderConfig(mit=MiTConfig(drop_path_rate=config.drop_path_rate))
    grid = base.grid.with_order(config.order).for_image(config.size, config.size)
    ae_config = dataclasses.replace(base, grid=grid)
    torch.manual_seed(config.seed)
    model = HashAutoencoder(ae_config)
    if config.init:
        load_init(model, config.init)
    if config.decoder:
        from hashflow.decoder_pretrain import load_decoder
        model.decoder.load_state_dict(load_decoder(config.decoder, grid).state_dict())
        model.decoder.requires_grad_(False)
    return model


def load_init(model: HashAutoencoder, path) -> None:
    """Copy the weights of model file ``path`` into ``model``; ValueError on another config."""
    payload = read_checkpoint(path)
    if payload["config"] != model.config.to_dict():
        raise ValueError(f"{path} holds another model config (order, size or widths differ)")
    model.load_state_dict(from_payload(payload).state_dict())


@dataclass
class DistEnv:
    """Where this process sits in a (possibly single-process) run."""

    rank: int = 0
    """Global rank (0 writes checkpoints)."""
    world: int = 1
    """Number of processes."""
    device: torch.device = torch.device("cpu")
    """This process's device."""


def setup_distributed(device: str | None) -> DistEnv:
    """Read torchrun's LOCAL_RANK / RANK / WORLD_SIZE; init NCCL (CUDA) or gloo (CPU) if > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = default_device(device)
    if chosen.type == "cuda" and chosen.index is None:
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    return DistEnv(rank=rank, world=world, device=chosen)


def save_training_checkpoint(path, model: HashAutoencoder, optimizer, step: int,
                             config: TrainConfig) -> None:
    """Model + optimiser + step + RNG + configs, written atomically."""
    payload = {"format": TRAINING_FORMAT, "version": CHECKPOINT_VERSION,
               "config": model.config.to_dict(), "state_dict": model.state_dict(),
               "optimizer": optimizer.state_dict(), "step": step,
               "train_config": dataclasses.asdict(config), "rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        payload["cuda_rng"] = torch.cuda.get_rng_state_all()
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def restore(path, model: HashAutoencoder, optimizer) -> int:
    """Load a training checkpoint into model and optimiser; returns the step to continue at."""
    payload = read_checkpoint(path)
    if payload["format"] != TRAINING_FORMAT:
        raise ValueError(f"{path} is exported weights, not a training checkpoint")
    if payload["config"] != model.config.to_dict():
        raise ValueError(f"{path} was trained with another model config (order or size differ)")
    model.load_state_dict(payload["state_dict"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"])
    if "cuda_rng" in payload and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["cuda_rng"])
    return int(payload["step"])


def train(config: TrainConfig) -> Path:
    """Run (or resume) training as configured; returns the checkpoint path.

    Works single-process and under torchrun (see the module docstring).
    """
    files = list_images(check_training_folder(config.images))
    if config.threads:
        torch.set_num_threads(config.threads)
    env = setup_distributed(config.device)
    model = build_model(config).to(env.device)
    optimizer = make_optimizer(model, config)
    start = 0
    if config.resume and Path(config.out).is_file():
        start = restore(config.out, model, optimizer)
    wrapped = model
    if env.world > 1:
        device_ids = [env.device] if env.device.type == "cuda" else None
        wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    stop = config.steps if config.stop_after is None else min(config.steps,
                                                                  start + config.stop_after)
    loader = make_loader(config, files, (start, stop), env)
    run_steps(config, model, wrapped, optimizer, loader, (start, stop), env)
    if env.world > 1:
        dist.destroy_process_group()
    return Path(config.out)


def make_loader(config: TrainConfig, files: list[Path], span: tuple[int, int],
                env: DistEnv) -> DataLoader:
    """Batches (B, 3, S, S) of this rank for steps ``span = (start, stop)``."""
    sampler = RangeSampler(*span, config.batch_size, env.rank, env.world)
    return DataLoader(CropDataset(files, config.size, config.seed), batch_size=config.batch_size,
                      sampler=sampler, num_workers=config.workers, drop_last=True)


def run_steps(config: TrainConfig, model: HashAutoencoder, wrapped: torch.nn.Module, optimizer,
              loader: DataLoader, span: tuple[int, int], env: DistEnv) -> None:
    """The optimisation loop over steps ``span = (start, stop)``; rank 0 checkpoints."""
    start, stop = span
    model.train()
    bar = tqdm(total=config.steps, initial=start, desc="train",
               disable=not config.progress or env.rank != 0)
    smooth = RunningStats()
    for step, batch in enumerate(loader, start=start):
        loss, mse, levels = train_step(config, model, wrapped, optimizer, batch.to(env.device),
                                       step)
        bar.update(1)
        bar.set_postfix(smooth.update(loss, mse if levels is None else None))
        done = step + 1
        if env.rank == 0 and (done % config.checkpoint_every == 0 or done == stop):
            save_training_checkpoint(config.out, model, optimizer, done, config)
    bar.close()


class RunningStats:
    """Exponential moving averages for the progress bar: loss, and PSNR of all-level steps."""

    def __init__(self, decay: float = 0.9) -> None:
        self.decay, self.loss, self.mse = decay, None, None

    def _mix(self, old: float | None, new: float) -> float:
        return new if old is None else self.decay * old + (1 - self.decay) * new

    def update(self, loss: float, full_mse: float | None) -> dict[str, str]:
        """Add a step (full_mse: None on level-dropout steps); returns the bar's postfix."""
        self.loss = self._mix(self.loss, loss)
        if full_mse is not None:
            self.mse = self._mix(self.mse, full_mse)
        psnr = "-" if self.mse is None else f"{-10 * math.log10(max(self.mse, 1e-10)):.2f}"
        return {"loss": f"{self.loss:.4f}", "psnr": psnr}


def train_step(config: TrainConfig, model: HashAutoencoder, wrapped: torch.nn.Module, optimizer,
               images: torch.Tensor, step: int) -> tuple[float, float, int | None]:
    """One AdamW step on a batch (B, 3, S, S); returns (loss, mse, kept levels or None)."""
    for group in optimizer.param_groups:
        group["lr"] = config.lr * lr_factor(step, config.warmup_steps, config.steps,
                                            config.min_lr_ratio)
    levels = kept_levels(config, step, model.config.grid.levels)
    loss, mse = reconstruction_loss(wrapped(images, levels), images, config.loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item(), mse.item(), levels


def export_weights(checkpoint, out, fp16: bool = True) -> Path:
    """Write the shipped weights file (config + model weights, fp16 by default) from a training
    checkpoint or another model file; returns ``out``."""
    model = from_payload(read_checkpoint(checkpoint))
    model.save(out, fp16=fp16)
    return Path(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hashflow.train",
                                     description="Train (or export) the hash autoencoder.")
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name != "images"}
    parser.add_argument("--images", help="folder of training images (never val2017)")
    parser.add_argument("--out", default=defaults["out"], help="checkpoint (or export) path")
    for name in ("order", "size", "steps", "batch_size", "warmup_steps", "checkpoint_every",
                 "stop_after", "seed", "workers", "threads"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=defaults[name])
    for name in ("lr", "weight_decay", "min_lr_ratio", "level_dropout", "drop_path_rate"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=defaults[name])
    parser.add_argument("--loss", choices=("mse", "l1+mse"), default=defaults["loss"])
    parser.add_argument("--init", help="model file to start from (e.g. shipped weights)")
    parser.add_argument("--decoder", help="stage-1 decoder checkpoint to load and freeze")
    parser.add_argument("--device", default=None)
    parser.add_argument("--resume", action="store_true", help="continue from --out if present")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--export", metavar="CKPT",
                        help="instead of training, export CKPT's weights (fp16) to --out")
    parser.add_argument("--fp32", action="store_true", help="export float32 weights")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns an exit status."""
    args = parse_args(argv)
    if args.export:
        print(export_weights(args.export, args.out, fp16=not args.fp32))
        return 0
    if not args.images:
        raise SystemExit("--images DIR is required for training")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {key: value for key, value in vars(args).items() if key in fields}
    print(train(TrainConfig(**values, progress=not args.no_progress)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
