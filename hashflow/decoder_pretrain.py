"""Stage 1 of training: the universal decoder, learnt as an auto-decoder over a bank of tables.

The decoder is what the 100-step fine-tune (tables only, decoder frozen) can never change, so
its quality caps the fine-tuned PSNR. Trained only through encoder predictions (smooth, blurry
tables), it never learns to render detail. Here it learns from tables that *are* detailed: one
free table per training crop, all optimised jointly with one shared decoder (the paper's
Figure 5 setting), with level dropout so coarse-only decodes stay meaningful. On 3 val2017
images, 800 such steps on 64 crops raised the 100-step tables-only fit from 29.0 to 30.5 dB.

Then ``hashflow.train --decoder runs/decoder_o2.pt`` (stage 2) trains the encoder and head to
predict tables for this decoder, which stays frozen::

    python -m hashflow.decoder_pretrain --images ../shared/data/coco/train2017 --order 2 \\
        --steps 2500 --threads 1 --out runs/decoder_o2.pt --resume

Each training crop is fixed (seeded random crop of one image, as ``hashflow.train`` draws them)
so that its table has one target. Each step picks ``batch_size`` crops; tables not in the batch
get no gradient, and Adam skips them. The decoder's learning rate warms up and decays (cosine);
the tables keep a constant one. Checkpoints (decoder, bank, optimiser, step) are written
atomically and ``--resume`` continues exactly. Never train on val2017 (refused).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from hashflow.atomic import atomic_path
from hashflow.autoencoder import read_checkpoint
from hashflow.decoder import Decoder
from hashflow.fit import default_device, reconstruction_loss
from hashflow.grid import HashGridConfig, init_tables
from hashflow.images import load_image
from hashflow.train import (RunningStats, check_training_folder, kept_levels, list_images,
                            lr_factor, random_crop, sample_generator)

__all__ = ["DecoderPretrainConfig", "pretrain_decoder", "load_decoder", "main"]

DECODER_FORMAT = "hashflow.decoder_pretrain"
DECODER_VERSION = 1


@dataclass
class DecoderPretrainConfig:
    """One auto-decoder run: a shared decoder and one table per training crop."""

    images: str
    """Folder of training images (e.g. COCO train2017); paths containing val2017 are refused."""
    out: str = "runs/decoder_o2.pt"
    """Checkpoint path (decoder, bank, optimiser), written atomically."""
    order: int = 2
    """Lagrange order of the hash grid."""
    size: int = 256
    """Side of the square crops (the grid's finest resolution)."""
    bank: int = 128
    """Number of crops (the first images in name order), one table each."""
    steps: int = 2500
    """Optimiser steps."""
    batch_size: int = 4
    """Crops per step."""
    lr: float = 3e-3
    """Peak Adam learning rate of the decoder (warm-up, then cosine decay)."""
    table_lr: float = 5e-2
    """Constant Adam learning rate of the tables."""
    warmup_steps: int = 100
    """Linear warm-up of the decoder's learning rate."""
    min_lr_ratio: float = 0.01
    """Final decoder learning rate as a fraction of ``lr``."""
    level_dropout: float = 0.5
    """Probability that a step decodes only the coarsest k levels, k uniform in [2, L]."""
    hidden: int = 64
    """Hidden width of the decoder."""
    checkpoint_every: int = 250
    """Write a checkpoint every this many steps (and at the end)."""
    resume: bool = False
    """Continue from ``out`` when it exists."""
    seed: int = 0
    """Seed of crops, initialisation, batches and level dropout."""
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""
    device: str | None = None
    """Device; default CUDA when available, else CPU."""
    progress: bool = True
    """Show a tqdm bar with moving averages of the MSE and of the PSNR of all-level steps."""

    def __post_init__(self) -> None:
        if self.size < 32 or self.steps < 0 or self.bank < 1 or self.batch_size < 1:
            raise ValueError("need size >= 32, steps >= 0, bank >= 1 and batch_size >= 1")
        if not 0.0 <= self.level_dropout <= 1.0:
            raise ValueError(f"level_dropout must be in [0, 1], got {self.level_dropout}")

    def grid(self) -> HashGridConfig:
        """The hash grid of this run (default grid, this order, this crop size)."""
        return HashGridConfig(order=self.order).for_image(self.size, self.size)


def load_crops(config: DecoderPretrainConfig) -> torch.Tensor:
    """The bank's fixed crops, (N, 3, S, S) float in [0, 1]: one seeded crop per image."""
    files = list_images(check_training_folder(config.images))[:config.bank]
    crops = [random_crop(load_image(path), config.size, sample_generator(config.seed, index))
             for index, path in enumerate(files)]
    return torch.stack([torch.from_numpy(c).permute(2, 0, 1).float() / 255.0 for c in crops])


class Bank(torch.nn.Module):
    """One shared decoder and one table (L, T, F) per crop."""

    def __init__(self, grid: HashGridConfig, count: int, hidden: int, seed: int) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.tables = torch.nn.ParameterList(
            torch.nn.Parameter(t) for t in init_tables(grid, count, generator=generator))
        torch.manual_seed(seed)
        self.decoder = Decoder(grid.feature_dim, hidden)
        torch.nn.init.constant_(self.decoder.layers[-1].bias, 0.5)

    def optimizer(self, config: DecoderPretrainConfig) -> torch.optim.Adam:
        """Adam with the decoder in group 0 (scheduled) and the tables in group 1 (constant)."""
        groups = [{"params": self.decoder.parameters(), "lr": config.lr},
                  {"params": self.tables.parameters(), "lr": config.table_lr}]
        return torch.optim.Adam(groups, betas=(0.9, 0.99), eps=1e-15)


def pretrain_decoder(config: DecoderPretrainConfig) -> Path:
    """Run (or resume) the auto-decoder training; returns the checkpoint path."""
    if config.threads:
        torch.set_num_threads(config.threads)
    device = default_device(config.device)
    crops = load_crops(config).to(device)
    grid = config.grid()
    bank = Bank(grid, len(crops), config.hidden, config.seed).to(device)
    optimizer = bank.optimizer(config)
    start = 0
    if config.resume and Path(config.out).is_file():
        start = restore(config.out, bank, optimizer, grid)
    bar = tqdm(total=config.steps, initial=start, desc="decoder", disable=not config.progress)
    smooth = RunningStats()
    for step in range(start, config.steps):
        loss, levels = bank_step(config, bank, optimizer, crops, grid, step)
        bar.update(1)
        bar.set_postfix(smooth.update(loss, loss if levels is None else None))
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps:
            save(config.out, bank, optimizer, step + 1, config)
    bar.close()
    return Path(config.out)


def bank_step(config: DecoderPretrainConfig, bank: Bank, optimizer, crops: torch.Tensor,
              grid: HashGridConfig, step: int) -> tuple[float, int | None]:
    """One Adam step on a seeded batch of crops; returns (MSE, kept levels or None)."""
    optimizer.param_groups[0]["lr"] = config.lr * lr_factor(
        step, config.warmup_steps, config.steps, config.min_lr_ratio)
    generator = sample_generator(config.seed, step)
    picks = torch.randperm(len(crops), generator=generator)[:config.batch_size].tolist()
    levels = kept_levels(config, step, grid.levels)
    tables = torch.stack([bank.tables[i] for i in picks])
    loss = reconstruction_loss(tables, bank.decoder, crops[picks], grid, levels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item(), levels


def save(path, bank: Bank, optimizer, step: int, config: DecoderPretrainConfig) -> None:
    """Decoder + bank + optimiser + step + configs, atomically."""
    payload = {"format": DECODER_FORMAT, "version": DECODER_VERSION, "step": step,
               "grid": dataclasses.asdict(config.grid()), "hparams": bank.decoder.hparams(),
               "decoder": bank.decoder.state_dict(), "bank": bank.state_dict(),
               "optimizer": optimizer.state_dict(), "config": dataclasses.asdict(config)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read(path) -> dict:
    """torch.load a decoder checkpoint and check its format; FileNotFoundError / ValueError."""
    return read_checkpoint(path, (DECODER_FORMAT,), DECODER_VERSION,
                           "hashflow decoder checkpoint")


def restore(path, bank: Bank, optimizer, grid: HashGridConfig) -> int:
    """Load a checkpoint into bank and optimiser; returns the step to continue at."""
    payload = read(path)
    if payload["grid"] != dataclasses.asdict(grid):
        raise ValueError(f"{path} was trained with another grid (order or size differ)")
    bank.load_state_dict(payload["bank"])
    optimizer.load_state_dict(payload["optimizer"])
    return int(payload["step"])


def load_decoder(path, grid: HashGridConfig) -> Decoder:
    """The decoder of a checkpoint, checked against ``grid`` (order, levels, features, size)."""
    payload = read(path)
    if payload["grid"] != dataclasses.asdict(grid):
        raise ValueError(f"{path} was trained for grid {payload['grid']}, not "
                         f"{dataclasses.asdict(grid)}")
    decoder = Decoder(**payload["hparams"])
    decoder.load_state_dict(payload["decoder"])
    return decoder


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hashflow.decoder_pretrain",
                                     description="Pre-train the universal decoder (stage 1).")
    defaults = {f.name: f.default for f in dataclasses.fields(DecoderPretrainConfig)}
    parser.add_argument("--images", required=True, help="folder of training images (not val2017)")
    parser.add_argument("--out", default=defaults["out"], help="checkpoint path")
    for name in ("order", "size", "bank", "steps", "batch_size", "warmup_steps", "hidden",
                 "checkpoint_every", "seed", "threads"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=defaults[name])
    for name in ("lr", "table_lr", "min_lr_ratio", "level_dropout"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=defaults[name])
    parser.add_argument("--device", default=None)
    parser.add_argument("--resume", action="store_true", help="continue from --out if present")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns an exit status."""
    args = parse_args(argv)
    values = {k: v for k, v in vars(args).items() if k not in ("no_progress",)}
    print(pretrain_decoder(DecoderPretrainConfig(**values, progress=not args.no_progress)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
