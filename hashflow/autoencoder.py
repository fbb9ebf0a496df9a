"""The hash autoencoder: MiT-B0 encoder + hash head predict tables, a universal decoder reads them.

``HashAutoencoder.encode`` turns an image into a :class:`~hashflow.encoding.HashEncoding` in one
forward pass (the paper's "encoder" column); ``finetune`` then optimises the tables alone for a
few steps with the decoder frozen ("fine-tuned" column). Checkpoints are torch files holding the
config and the state dict; :func:`load_pretrained` reads the shipped ``hashflow/weights`` file.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from hashflow.atomic import atomic_path
from hashflow.decoder import Decoder
from hashflow.encoding import HashEncoding
from hashflow.fit import default_device, fit_image
from hashflow.grid import HashGridConfig, sample_grid
from hashflow.images import to_image_tensor
from hashflow.models.hash_head import HashHead, HashHeadConfig
from hashflow.models.mit import MiTConfig, MixTransformer

__all__ = ["AutoencoderConfig", "HashAutoencoder", "load_pretrained", "pretrained_path"]

CHECKPOINT_FORMAT = "hashflow.HashAutoencoder"
TRAINING_FORMAT = "hashflow.train"
"""Format tag of training checkpoints (``hashflow.train``); they load as models too."""
CHECKPOINT_FORMATS = (CHECKPOINT_FORMAT, TRAINING_FORMAT)
CHECKPOINT_VERSION = 1
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MIN_SIDE = 32
"""Smallest image side the encoder takes (stage 1's spatial reduction needs an 8x8 map)."""
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AutoencoderConfig:
    """Everything needed to rebuild a HashAutoencoder."""

    grid: HashGridConfig = field(default_factory=HashGridConfig)
    """Hash grid for the training size; each image uses ``grid.for_image(H, W)``."""
    mit: MiTConfig = field(default_factory=MiTConfig)
    """Encoder backbone (MiT-B0 by default)."""
    head: HashHeadConfig = field(default_factory=HashHeadConfig)
    """Widths of the hash encoder head."""
    decoder_hidden: int = 64
    """Hidden width of the universal decoder."""

    def to_dict(self) -> dict:
        """Plain nested dict (lists for tuples), for checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AutoencoderConfig":
        """Inverse of :meth:`to_dict`; TypeError/KeyError on foreign content."""
        mit = {key: tuple(value) if isinstance(value, list) else value
               for key, value in data["mit"].items()}
        return cls(grid=HashGridConfig(**data["grid"]), mit=MiTConfig(**mit),
                   head=HashHeadConfig(**data["head"]), decoder_hidden=int(data["decoder_hidden"]))


def normalise(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> ImageNet-standardised input for the encoder."""
    mean = images.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = images.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (images - mean) / std


class HashAutoencoder(nn.Module):
    """Encoder (MiT) + hash head + universal decoder, sharing one grid config."""

    def __init__(self, config: AutoencoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or AutoencoderConfig()
        self.encoder = MixTransformer(self.config.mit)
        self.head = HashHead(self.config.mit, self.config.grid, self.config.head)
        self.decoder = Decoder(self.config.grid.feature_dim, self.config.decoder_hidden)
        nn.init.constant_(self.decoder.layers[-1].bias, 0.5)  # start at mid-grey, not at ~0

    @property
    def order(self) -> int:
        """Lagrange order of the grid the decoder was trained with."""
        return self.config.grid.order

    def grid_for(self, height: int, width: int) -> HashGridConfig:
        """The grid config for an image of ``height x width``."""
        return self.config.grid.for_image(height, width)

    def predict_tables(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, H, W) float in [0, 1]. Returns tables (B, L, T, F)."""
        if images.ndim != 4 or images.shape[1] != 3 or min(images.shape[-2:]) < MIN_SIDE:
            raise ValueError(f"expected images (B, 3, H, W) with H, W >= {MIN_SIDE}, "
                             f"got {tuple(images.shape)}")
        inputs = normalise(images)
        return self.head(self.encoder(inputs), inputs, self.grid_for(*images.shape[-2:]))

    def forward(self, images: torch.Tensor, levels: int | None = None) -> torch.Tensor:
        """Reconstruct images (B, 3, H, W) in [0, 1] through the tables, keeping the coarsest
        ``levels`` levels (None: all). Returns (B, 3, H, W), unclamped."""
        tables = self.predict_tables(images)
        grid = self.grid_for(*images.shape[-2:])
        features = sample_grid(tables, grid, tuple(images.shape[-2:]), levels=levels)
        return self.decoder.forward_maps(features)

    def encode(self, image) -> HashEncoding:
        """One forward pass: image -> HashEncoding (tables (L, T, F) + a frozen decoder copy).

        image: uint8 (H, W, 3), float (H, W, 3) in [0, 1], grayscale (H, W) or torch (3, H, W),
        with H, W >= 32. The encoding lives on the model's device.
        """
        device = next(self.parameters()).device
        chw = to_image_tensor(image, min_side=MIN_SIDE).to(device)
        was_training = self.training
        self.eval()
        with torch.no_grad():
            tables = self.predict_tables(chw[None])[0]
        self.train(was_training)
        return HashEncoding(tables, self.grid_for(*chw.shape[-2:]), tuple(chw.shape[-2:]),
                            self.frozen_decoder())

    def frozen_decoder(self) -> Decoder:
        """A copy of the universal decoder without gradients (safe to hand to an encoding)."""
        return copy.deepcopy(self.decoder).requires_grad_(False)

    def finetune(self, encoding: HashEncoding, image, steps: int = 100, lr: float = 5e-2,
                 level_dropout: float = 0.5, seed: int = 0) -> HashEncoding:
        """Optimise ``encoding``'s tables (decoder frozen) to ``image`` for ``steps`` Adam steps.

        image: the encoded image, in any form :meth:`encode` accepts. level_dropout keeps
        coarse-only decodes meaningful (see ``hashflow.fit.sample_kept_levels``).
        Returns a new HashEncoding; ``encoding`` is unchanged.
        """
        chw = to_image_tensor(image, min_side=MIN_SIDE)
        if tuple(chw.shape[-2:]) != tuple(encoding.image_size):
            raise ValueError(f"image is {tuple(chw.shape[-2:])}, the encoding is for "
                             f"{tuple(encoding.image_size)}")
        return fit_image(chw, steps=steps, decoder=self.frozen_decoder(), device=encoding.device,
                         seed=seed, lr=lr, level_dropout=level_dropout, config=encoding.config,
                         tables=encoding.tables)

    def save(self, path, fp16: bool = False) -> None:
        """Write config + state dict to a torch file, atomically (fp16 halves the size)."""
        state = {name: value.detach().cpu() for name, value in self.state_dict().items()}
        if fp16:
            state = {name: v.half() if v.is_floating_point() else v for name, v in state.items()}
        payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                   "config": self.config.to_dict(), "state_dict": state}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path, device=None) -> "HashAutoencoder":
        """Read a file written by :meth:`save` (or a training checkpoint); returns the model in
        eval mode on ``device``. FileNotFoundError when missing, ValueError when not ours."""
        payload = read_checkpoint(path)
        try:
            return from_payload(payload).to(default_device(device)).eval()
        except (KeyError, TypeError, RuntimeError) as err:
            raise ValueError(f"{path} does not hold a usable HashAutoencoder ({err})") from err


def read_checkpoint(path, formats: tuple[str, ...] = CHECKPOINT_FORMATS,
                    version: int = CHECKPOINT_VERSION,
                    kind: str = "hashflow autoencoder checkpoint") -> dict:
    """torch.load a hashflow checkpoint (weights only) and check its format tag and version.

    FileNotFoundError when missing; ValueError when unreadable, foreign or of another version.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle, zip, EOF and runtime errors alike
        raise ValueError(f"{path} is not a readable torch checkpoint ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") not in formats:
        raise ValueError(f"{path} is not a {kind}")
    if payload.get("version") != version:
        raise ValueError(f"{path} has checkpoint version {payload.get('version')}; "
                         f"this hashflow reads version {version}")
    return payload


def from_payload(payload: dict) -> HashAutoencoder:
    """Build the model from a checkpoint dict (``config`` + ``state_dict``), float32 weights."""
    model = HashAutoencoder(AutoencoderConfig.from_dict(payload["config"]))
    state = {name: value.float() if value.is_floating_point() else value
             for name, value in payload["state_dict"].items()}
    model.load_state_dict(state)
    return model


def pretrained_path(order: int = 2) -> Path:
    """Where the shipped weights for Lagrange order ``order`` live."""
    return WEIGHTS_DIR / f"hash_ae_o{order}.pt"


def load_pretrained(order: int = 2, device=None) -> HashAutoencoder:
    """The shipped hash autoencoder for ``order`` (offline), in eval mode on ``device``.

    Raises FileNotFoundError, saying how to train and export one, when the file is missing.
    """
    path = pretrained_path(order)
    if not path.is_file():
        raise FileNotFoundError(
            f"no pretrained hash autoencoder for order {order} at {path}. Train one with "
            f"`python -m hashflow.train --images DIR --order {order} --out ckpt.pt` (COCO "
            f"train2017 images, never val2017), then export it with "
            f"`python -m hashflow.train --export ckpt.pt --out {path}` "
            f"(or hashflow.train.export_weights).")
    model = HashAutoencoder.load(path, device)
    if model.order != order:
        raise ValueError(f"{path} holds an order-{model.order} model, expected order {order}")
    return model
