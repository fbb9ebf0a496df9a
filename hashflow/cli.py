"""The ``hashflow`` command line: estimate, encode, decode, demo, bench, train, train-decoder.

Each subcommand is a thin shell over the library: it parses and checks its arguments, calls
``hashflow`` functions with plain values (never the argparse namespace) and prints a one-line
summary. User mistakes (missing or unreadable files, size mismatches, bad options, corrupt
encodings) end with one line ``hashflow: error: ...`` on stderr and a non-zero exit status;
``--verbose`` shows the traceback instead. Exit status: 0 success, 1 error, 2 bad usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch
from tqdm.auto import tqdm

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
FLOW_SUFFIXES = (".flo", ".png", ".npy")
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".ppm", ".bmp", ".tif", ".tiff", ".webp")
DIRECT_STEPS = 500
"""Default ``encode --direct`` steps (about 39 dB on a 256 px photo, DESIGN.md section 6)."""
FINETUNE_STEPS = 100
"""Default ``encode --pretrained`` fine-tune steps (the paper's "fine-tuned" column)."""
FORWARDED = ("bench", "train", "train-decoder")


class CLIError(Exception):
    """A user mistake, reported as one line without a traceback."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one ``hashflow: error:`` line (exit status 2)."""

    def error(self, message: str):
        sys.stderr.write(f"hashflow: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_USAGE)


# ----------------------------------------------------------------------------- shared helpers

def checked_device(text: str | None) -> torch.device | None:
    """``--device`` as a torch.device (None: automatic); CLIError for unusable devices."""
    if text is None:
        return None
    try:
        device = torch.device(text)
    except RuntimeError as err:
        raise CLIError(f"invalid --device {text!r} ({err})") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {text}: CUDA is not available in this torch build or machine")
    return device


def solver_option(text: str) -> tuple[str, object]:
    """Parse ``NAME=VALUE`` for a SolverConfig field, typed like the field's default."""
    from hashflow.solver_config import SolverConfig

    name, sep, value = text.partition("=")
    defaults = {f.name: getattr(SolverConfig(), f.name) for f in dataclasses.fields(SolverConfig)}
    if not sep or name not in defaults:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with NAME one of {', '.join(defaults)}; got {text!r}")
    default = defaults[name]
    try:
        if isinstance(default, tuple):
            return name, tuple(int(item) for item in value.split(",") if item.strip())
        return name, type(default)(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{name}: cannot read {value!r} as "
                                         f"{type(default).__name__}") from err


def solver_overrides(args: argparse.Namespace) -> dict:
    """SolverConfig field overrides from ``--encode-steps`` and ``--set``."""
    options = dict(args.solver_options or [])
    if args.encode_steps is not None:
        options["encode_steps"] = args.encode_steps
    return options


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = float(text)
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def read_image(path: str, label: str) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; CLIError naming ``label`` when unusable."""
    from hashflow.images import load_image

    try:
        return load_image(path)
    except FileNotFoundError as err:
        raise CLIError(f"{label}: no such file: {path}") from err
    except ValueError as err:
        raise CLIError(f"{label}: cannot read {path} as an image") from err


def check_flow_suffix(path: Path) -> None:
    """Fail before any work when the flow output's extension has no writer."""
    if path.suffix.lower() not in FLOW_SUFFIXES:
        raise CLIError(f"output {path}: unknown flow extension {path.suffix!r}; use "
                       f"{', '.join(FLOW_SUFFIXES)}")


def check_image_writer(path: Path) -> None:
    """Fail before any work when OpenCV cannot write an image with this extension."""
    if not cv2.haveImageWriter(str(path)):
        raise CLIError(f"cannot write an image with extension {path.suffix!r} ({path}); "
                       "use .png")


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Write (H, W, 3) uint8 RGB atomically (format by extension)."""
    from hashflow.atomic import atomic_path

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise CLIError(f"could not write {path}")


def mean_magnitude(flow: np.ndarray) -> float:
    """Mean |flow| in px over an (H, W, 2) field."""
    return float(np.hypot(flow[..., 0], flow[..., 1]).mean())


# ----------------------------------------------------------------------------- estimate

def make_estimator(args: argparse.Namespace, cache_size: int = 8):
    """The FlowEstimator the estimate/demo options describe."""
    from hashflow.estimator import FlowEstimator

    return FlowEstimator(order=args.order, encoder=args.encoder,
                         device=checked_device(args.device), config=args.preset, seed=args.seed,
                         cache_size=cache_size, **solver_overrides(args))


def cmd_estimate(args: argparse.Namespace) -> int:
    """``hashflow estimate``: one pair, or every consecutive pair of ``--frames``."""
    if args.frames is not None:
        if args.images:
            raise CLIError("give either IMG1 IMG2 or --frames, not both")
        return estimate_frames(args)
    if len(args.images) != 2:
        raise CLIError(f"estimate needs two images IMG1 IMG2 (or --frames), got "
                       f"{len(args.images)}")
    return estimate_pair(args)


def estimate_pair(args: argparse.Namespace) -> int:
    """Flow for IMG1 -> IMG2, written to -o (and --viz); prints one summary line."""
    from hashflow.flow_io import write_flow

    out = Path(args.output)
    check_flow_suffix(out)
    viz_path = pair_viz_path(args.viz, out)
    img1, img2 = read_image(args.images[0], "IMG1"), read_image(args.images[1], "IMG2")
    if img1.shape != img2.shape:
        raise CLIError(f"IMG1 is {img1.shape[1]}x{img1.shape[0]} but IMG2 is "
                       f"{img2.shape[1]}x{img2.shape[0]} (W x H); the frames must match")
    estimator = make_estimator(args)
    start = time.perf_counter()
    flow = estimator.estimate(img1, img2, mode=args.mode)
    seconds = time.perf_counter() - start
    write_flow(out, flow)
    if viz_path is not None:
        write_color(viz_path, flow, args.max_radius)
    print(f"flow {img1.shape[1]}x{img1.shape[0]} ({args.mode}, order {args.order}, "
          f"{estimator.encoder}, {args.preset}): {seconds:.2f} s, mean |flow| "
          f"{mean_magnitude(flow):.2f} px -> {out}" + (f", {viz_path}" if viz_path else ""))
    return 0


def pair_viz_path(value, out: Path) -> Path | None:
    """``--viz``: None (off), True (beside the flow file) or a path."""
    if value is None:
        return None
    path = out.with_name(out.stem + "_color.png") if value is True else Path(value)
    check_image_writer(path)
    return path


def write_color(path: Path, flow: np.ndarray, max_radius: float | None) -> None:
    """The flow colour-coded on the Middlebury wheel, at the flow's resolution."""
    from hashflow.flow_viz import flow_to_color

    write_image(path, flow_to_color(flow, max_radius=max_radius))


def estimate_frames(args: argparse.Namespace) -> int:
    """Flow for every consecutive frame pair of a folder or video, one estimator throughout."""
    from hashflow.flow_io import write_flow

    if args.viz not in (None, True):
        raise CLIError("with --frames, --viz takes no path: colour images go to OUTDIR")
    out_dir = Path(args.output)
    if out_dir.suffix.lower() in FLOW_SUFFIXES:
        raise CLIError(f"with --frames, -o names an output folder, got {out_dir}")
    total, frames = open_frames(Path(args.frames), args.max_frames)
    estimator = make_estimator(args, cache_size=2)  # a frame is used by two pairs, no more
    out_dir.mkdir(parents=True, exist_ok=True)
    start, magnitudes, previous = time.perf_counter(), [], None
    pairs = None if total is None else max(total - 1, 0)
    with tqdm(total=pairs, desc="flow", unit="pair", disable=args.no_progress) as bar:
        for index, (name, frame) in enumerate(frames):
            if previous is not None:
                check_same_frame_size(previous, frame, name)
                flow = estimator.estimate(previous, frame, mode=args.mode)
                write_flow(out_dir / f"flow_{index - 1:04d}{args.format}", flow)
                if args.viz:
                    write_color(out_dir / f"color_{index - 1:04d}.png", flow, args.max_radius)
                magnitudes.append(mean_magnitude(flow))
                bar.update(1)
            previous = frame
    return report_frames(out_dir, magnitudes, previous, time.perf_counter() - start)


def check_same_frame_size(previous: np.ndarray, frame: np.ndarray, name: str) -> None:
    """CLIError when a frame's size differs from the one before it."""
    if frame.shape != previous.shape:
        raise CLIError(f"frame {name} is {frame.shape[1]}x{frame.shape[0]}, the frame before "
                       f"is {previous.shape[1]}x{previous.shape[0]}; all frames must match")


def report_frames(out_dir: Path, magnitudes: list, last, seconds: float) -> int:
    """Print the --frames summary; CLIError when there was no pair."""
    if not magnitudes:
        raise CLIError("need at least two frames to estimate flow")
    count = len(magnitudes)
    print(f"{count} flows from {count + 1} frames ({last.shape[1]}x{last.shape[0]}): "
          f"{seconds:.1f} s ({seconds / count:.2f} s/pair), mean |flow| "
          f"{np.mean(magnitudes):.2f} px -> {out_dir}/")
    return 0


def open_frames(source: Path, limit: int | None) -> tuple[int | None, Iterator]:
    """(frame count or None, iterator of (name, (H, W, 3) uint8 RGB)) of a folder or video."""
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        if len(files) < 2:
            raise CLIError(f"--frames {source}: need at least two image files "
                           f"({', '.join(FRAME_SUFFIXES)}), found {len(files)}")
        files = files[:limit] if limit else files
        return len(files), ((p.name, read_image(str(p), "frame")) for p in files)
    if not source.is_file():
        raise CLIError(f"--frames: no such folder or video: {source}")
    capture = cv2.VideoCapture(str(source))
    if not capture.isOpened():
        raise CLIError(f"--frames: cannot open {source} as a video")
    reported = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))  # 0 or -1 when unknown
    count = reported if reported > 0 else None
    count = min(count, limit) if count and limit else count or limit
    return count, video_frames(capture, limit)


def video_frames(capture, limit: int | None) -> Iterator[tuple[str, np.ndarray]]:
    """Frames of an opened cv2.VideoCapture as ("frame N", RGB), released at the end."""
    try:
        index = 0
        while limit is None or index < limit:
            ok, bgr = capture.read()
            if not ok:
                return
            yield f"frame {index}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()


# ----------------------------------------------------------------------------- encode / decode

def cmd_encode(args: argparse.Namespace) -> int:
    """``hashflow encode``: an image to an HDF5 HashEncoding; prints size and PSNR."""
    from hashflow.encoding import decode
    from hashflow.estimator import resolve_encoder

    image = read_image(args.image, "IMG")
    method = resolve_encoder(args.encoder, args.order)
    start = time.perf_counter()
    encoding = encode_image(image, method, args)
    seconds = time.perf_counter() - start
    encoding.save(args.output)
    print(f"encoded {args.image} ({method}, order {args.order}) in {seconds:.1f} s: "
          f"{size_line(encoding)}; PSNR {image_psnr(image, decode(encoding)):.2f} dB "
          f"-> {args.output}")
    write_encoding_figure(args.figure, encoding, image)
    return 0


def encode_image(image: np.ndarray, method: str, args: argparse.Namespace):
    """A HashEncoding by direct fit or by the pretrained encoder (+ fine-tune)."""
    from hashflow.fit import fit_image

    device = checked_device(args.device)
    if method == "direct":
        steps = DIRECT_STEPS if args.steps is None else args.steps
        return fit_image(image, steps=steps, order=args.order, device=device, seed=args.seed,
                         progress=not args.no_progress)
    from hashflow.autoencoder import load_pretrained

    try:
        model = load_pretrained(order=args.order, device=device)
    except FileNotFoundError as err:
        raise CLIError(f"no pretrained weights for order {args.order}; use --direct, or train "
                       "and export some (see 'hashflow train --help')") from err
    encoding = model.encode(image)
    steps = FINETUNE_STEPS if args.steps is None else args.steps
    return model.finetune(encoding, image, steps=steps, seed=args.seed) if steps else encoding


def image_psnr(original: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR (dB) of a decoding (H, W, 3) float in [0, 1] against uint8 (H, W, 3)."""
    from hashflow.images import psnr

    return psnr(torch.from_numpy(original / 255.0), torch.from_numpy(decoded.astype(np.float64)))


def size_line(encoding) -> str:
    """'encoding N B (tables + decoder, float32) vs image M B (W x H x 3 uint8): R x'."""
    height, width = encoding.image_size
    image_bytes = height * width * 3
    table_bytes = encoding.tables.numel() * 4
    return (f"encoding {encoding.nbytes():,} B (tables {table_bytes:,} + decoder "
            f"{encoding.nbytes() - table_bytes:,}, float32) vs image {image_bytes:,} B "
            f"({width}x{height}x3 uint8), ratio {encoding.nbytes() / image_bytes:.2f}")


def write_encoding_figure(path, encoding, image) -> None:
    """--figure: original / decoded / per-level feature maps (hashflow.viz.encoding_figure)."""
    if path is None:
        return
    from hashflow.viz import encoding_figure

    encoding_figure(encoding, image, path)
    print(f"figure -> {path}")


def cmd_decode(args: argparse.Namespace) -> int:
    """``hashflow decode``: an HDF5 encoding to an image; size, and PSNR with --reference."""
    from hashflow.encoding import decode

    out = Path(args.output)
    check_image_writer(out)
    encoding = load_encoding(args.encoding, checked_device(args.device))
    levels = checked_levels(args.levels, encoding.config.levels)
    reference = read_image(args.reference, "--reference") if args.reference else None
    if reference is not None and reference.shape[:2] != tuple(encoding.image_size):
        raise CLIError(f"--reference is {reference.shape[1]}x{reference.shape[0]}, the encoding "
                       f"is {encoding.image_size[1]}x{encoding.image_size[0]}")
    decoded = decode(encoding, levels=levels)
    write_image(out, np.round(decoded * 255).astype(np.uint8))
    quality = ("" if reference is None
               else f"; PSNR {image_psnr(reference, decoded):.2f} dB vs {args.reference}")
    print(f"decoded {levels}/{encoding.config.levels} levels: {size_line(encoding)}{quality} "
          f"-> {out}")
    write_encoding_figure(args.figure, encoding, reference)
    return 0


def load_encoding(path: str, device):
    """HashEncoding.load with user-facing errors."""
    from hashflow.encoding import HashEncoding

    try:
        return HashEncoding.load(path, device=device)
    except FileNotFoundError as err:
        raise CLIError(f"ENC: no such file: {path}") from err
    except ValueError as err:
        raise CLIError(f"ENC: {path} is not a readable hashflow encoding") from err


def checked_levels(levels: int | None, available: int) -> int:
    """--levels K in [1, L] (None: all L)."""
    if levels is None:
        return available
    if not 1 <= levels <= available:
        raise CLIError(f"--levels must lie in [1, {available}], got {levels}")
    return levels


# ----------------------------------------------------------------------------- demo, forwarding

def cmd_demo(args: argparse.Namespace) -> int:
    """``hashflow demo``: hashflow.demo.run_demo with the options given."""
    from hashflow.demo import DemoConfig, run_demo

    config = DemoConfig(size=args.size, radius=args.radius, warp_amplitude=args.warp_amplitude,
                        preset=args.preset, solver_options=solver_overrides(args),
                        order=args.order, encoder=args.encoder,
                        baseline="" if args.baseline == "none" else args.baseline,
                        seed=args.seed, device=args.device,
                        encoding_figure=not args.no_encoding_figure)
    checked_device(args.device)
    results = run_demo(args.out, config, log=print)
    for entry in results["pairs"].values():
        scores = ", ".join(f"{method} {score['epe']:.3f}" for method, score
                           in entry["methods"].items())
        print(f"{entry['title']}: EPE px {scores}")
    print(f"report: {Path(results['report']).resolve()}")
    return 0


def forward(name: str, argv: list[str]) -> int:
    """Run ``hashflow.bench.runner.main``, ``hashflow.train.main`` or
    ``hashflow.decoder_pretrain.main`` with ``argv``."""
    if name == "bench":
        from hashflow.bench.runner import main as target
    elif name == "train-decoder":
        from hashflow.decoder_pretrain import main as target
    else:
        from hashflow.train import main as target
    return target(argv) or 0


# ----------------------------------------------------------------------------- parser

def add_common(parser: argparse.ArgumentParser) -> None:
    """--verbose and --device, shared by the subcommands."""
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback on errors")
    parser.add_argument("--device", default=None,
                        help="torch device, e.g. cpu, cuda, cuda:1 (default: CUDA when "
                             "available, else CPU)")


def add_solver_options(parser: argparse.ArgumentParser, preset: str) -> None:
    """Options that build a FlowEstimator (shared by estimate and demo)."""
    from hashflow.solver_config import PRESETS

    group = parser.add_argument_group("solver")
    group.add_argument("--preset", default=preset, choices=sorted(PRESETS),
                       help=f"solver preset (hashflow.PRESETS; default {preset}): fast < "
                            "default < accurate in time and quality")
    group.add_argument("--order", type=int, default=2, choices=(1, 2),
                       help="Lagrange order of the hash grid: 1 bilinear, 2 the paper's 16-tap "
                            "(default 2)")
    group.add_argument("--encoder", default="auto", choices=("auto", "direct", "pretrained"),
                       help="how frames are encoded: direct per-image fit, pretrained MiT-B0 "
                            "encoder + fine-tune, or auto (pretrained when weights for the "
                            "order are shipped, else direct; default)")
    group.add_argument("--encode-steps", type=non_negative_int, default=None, metavar="N",
                       help="per-frame fit steps of the direct encoder (overrides the preset)")
    group.add_argument("--set", dest="solver_options", action="append", type=solver_option,
                       metavar="NAME=VALUE",
                       help="override any SolverConfig field, e.g. --set iterations=2 "
                            "--set tile_sizes=64,16 (repeatable)")
    group.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def add_estimate_parser(subparsers) -> None:
    """The ``estimate`` subcommand."""
    parser = subparsers.add_parser(
        "estimate", help="optical flow for a frame pair, a folder of frames or a video",
        description="Estimate optical flow img1 -> img2 (img1(x) ~ img2(x + flow(x))). "
                    "Pair: hashflow estimate IMG1 IMG2 -o FLOW.flo [--viz COLOR.png]. "
                    "Sequence: hashflow estimate --frames DIR_OR_VIDEO -o OUTDIR writes "
                    "flow_0000.flo, flow_0001.flo, ... for each consecutive pair, encoding "
                    "each frame once.")
    parser.add_argument("images", nargs="*", metavar="IMG",
                        help="IMG1 IMG2: the two frames (any OpenCV-readable image, same size)")
    parser.add_argument("--frames", metavar="DIR_OR_VIDEO",
                        help="a folder of frames (image files, sorted by name) or a video "
                             "file; flow for every consecutive pair")
    parser.add_argument("-o", "--output", required=True, metavar="PATH",
                        help="pair: the flow file, format by extension (.flo Middlebury, .png "
                             "KITTI 16-bit, .npy); --frames: the output folder")
    parser.add_argument("--viz", nargs="?", const=True, default=None, metavar="COLOR.png",
                        help="also write the flow colour-coded on the Middlebury wheel; "
                             "pair: to COLOR.png (bare --viz: FLOW_color.png); --frames: "
                             "color_NNNN.png in OUTDIR (put a bare --viz after the images)")
    parser.add_argument("--max-radius", type=positive_float, default=None, metavar="PX",
                        help="flow magnitude shown at full colour saturation (default: each "
                             "field's largest; set it for a steady scale across frames)")
    parser.add_argument("--mode", default="patch", choices=("pixel", "patch", "image"),
                        help="pixel: a displacement per pixel; patch: each pixel's 3x3 "
                             "patch shares one (default); image: one displacement for all")
    parser.add_argument("--format", default=".flo", choices=FLOW_SUFFIXES,
                        help="--frames: flow file format (default .flo)")
    parser.add_argument("--max-frames", type=positive_int, default=None, metavar="N",
                        help="--frames: use only the first N frames")
    parser.add_argument("--no-progress", action="store_true",
                        help="--frames: no progress bar")
    add_solver_options(parser, "default")
    add_common(parser)
    parser.set_defaults(handler=cmd_estimate)


def add_encode_parser(subparsers) -> None:
    """The ``encode`` subcommand."""
    parser = subparsers.add_parser(
        "encode", help="encode an image into a hash encoding (HDF5)",
        description="Encode an image into multiresolution hash tables + decoder, saved as "
                    "HDF5; prints the encoding size against the raw image size and the PSNR "
                    "of its decoding.")
    parser.add_argument("image", metavar="IMG", help="the image to encode")
    parser.add_argument("-o", "--output", required=True, metavar="ENC.h5",
                        help="the encoding file (HDF5)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--pretrained", dest="encoder", action="store_const", const="pretrained",
                       help="MiT-B0 encoder forward pass, then --steps fine-tune steps of the "
                            f"tables (default {FINETUNE_STEPS}; 0: encoder only)")
    which.add_argument("--direct", dest="encoder", action="store_const", const="direct",
                       help="fit tables and a per-image decoder directly for --steps steps "
                            f"(default {DIRECT_STEPS})")
    parser.set_defaults(encoder="auto")
    parser.add_argument("--steps", type=non_negative_int, default=None, metavar="N",
                        help="optimisation steps (see --pretrained / --direct)")
    parser.add_argument("--order", type=int, default=2, choices=(1, 2),
                        help="Lagrange order: 1 bilinear, 2 the paper's 16-tap (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--figure", metavar="PNG",
                        help="also draw original / decoded / per-level feature maps")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_common(parser)
    parser.set_defaults(handler=cmd_encode)


def add_decode_parser(subparsers) -> None:
    """The ``decode`` subcommand."""
    parser = subparsers.add_parser(
        "decode", help="decode a hash encoding (HDF5) back into an image",
        description="Decode an encoding written by 'hashflow encode' (or HashEncoding.save) "
                    "into an image; prints the encoding size and, with --reference, the PSNR.")
    parser.add_argument("encoding", metavar="ENC.h5", help="the encoding file")
    parser.add_argument("-o", "--output", required=True, metavar="RECON.png",
                        help="the decoded image (format by extension, e.g. .png)")
    parser.add_argument("--levels", type=positive_int, default=None, metavar="K",
                        help="decode with only the K coarsest levels (a blurred view; "
                             "default: all)")
    parser.add_argument("--reference", metavar="IMG",
                        help="the original image, to print the PSNR of the decoding")
    parser.add_argument("--figure", metavar="PNG",
                        help="also draw (original /) decoded / per-level feature maps")
    add_common(parser)
    parser.set_defaults(handler=cmd_decode)


def add_demo_parser(subparsers) -> None:
    """The ``demo`` subcommand."""
    parser = subparsers.add_parser(
        "demo", help="self-contained demo on built-in photos with an HTML report",
        description="Make a translated pair and a smooth non-rigid warp from scikit-image "
                    "photos, estimate flow with hashflow (patch and image mode) and OpenCV "
                    "DIS, and write report.html, PNG figures and demo.json (EPE per method). "
                    "About a minute on 2 CPU cores with the defaults.")
    parser.add_argument("--out", default="hashflow-demo", metavar="DIR",
                        help="output folder (default ./hashflow-demo)")
    parser.add_argument("--size", type=int, default=128, help="frame side in px (default 128)")
    parser.add_argument("--radius", type=float, default=12.0,
                        help="largest translation of the translated pair, px (default 12)")
    parser.add_argument("--warp-amplitude", type=float, default=6.0,
                        help="largest displacement of the non-rigid warp, px (default 6)")
    parser.add_argument("--baseline", default="dis-medium",
                        help="OpenCV baseline shown beside hashflow (a hashflow.baselines "
                             "name, or none; default dis-medium)")
    parser.add_argument("--no-encoding-figure", action="store_true",
                        help="skip the hash-encoding figure (per-level feature maps)")
    add_solver_options(parser, "default")
    add_common(parser)
    parser.set_defaults(handler=cmd_demo)


def add_forwarded_parsers(subparsers) -> None:
    """``bench``, ``train`` and ``train-decoder`` appear in the help; main() hands their
    arguments on."""
    subparsers.add_parser("bench", add_help=False,
                          help="EPE benchmark (hashflow.bench.runner); 'hashflow bench --help'")
    subparsers.add_parser("train", add_help=False,
                          help="train the hash autoencoder (hashflow.train); "
                               "'hashflow train --help'")
    subparsers.add_parser("train-decoder", add_help=False,
                          help="stage 1: pre-train the universal decoder over a table bank "
                               "(hashflow.decoder_pretrain); 'hashflow train-decoder --help'")


def build_parser() -> Parser:
    """The top-level parser with every subcommand."""
    from hashflow import __version__

    parser = Parser(prog="hashflow", description="Optical flow by coordinate descent through "
                    "a multiresolution hash autoencoder. Run 'hashflow COMMAND --help' for a "
                    "command's options.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the full traceback on errors")
    parser.add_argument("--version", action="version", version=f"hashflow {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_estimate_parser(subparsers)
    add_encode_parser(subparsers)
    add_decode_parser(subparsers)
    add_demo_parser(subparsers)
    add_forwarded_parsers(subparsers)
    return parser


# ----------------------------------------------------------------------------- entry point

def split_forwarded(argv: list[str]) -> tuple[str, bool, list[str]] | None:
    """(command, verbose, rest) when the first non-option word is a forwarded command
    (bench, train, train-decoder), else None."""
    for index, word in enumerate(argv):
        if not word.startswith("-"):
            if word not in FORWARDED:
                return None
            return word, any(w in ("-v", "--verbose") for w in argv[:index]), argv[index + 1:]
    return None


def run_reporting_errors(action: Callable[[], int], verbose: bool) -> int:
    """Run ``action``; user errors become one stderr line (the traceback with ``verbose``)."""
    try:
        return action()
    except SystemExit as exit_:  # argparse and sys.exit inside bench / train
        return exit_status(exit_)
    except KeyboardInterrupt:
        sys.stderr.write("hashflow: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as err:  # every failure is reported the same way; --verbose re-raises
        if verbose:
            raise
        sys.stderr.write(f"hashflow: error: {describe(err)}\n")
        return EXIT_ERROR


def exit_status(exit_: SystemExit) -> int:
    """The status a SystemExit stands for; a message code is printed as an error line."""
    if exit_.code is None or isinstance(exit_.code, int):
        return exit_.code or 0
    sys.stderr.write(f"hashflow: error: {exit_.code}\n")
    return EXIT_ERROR


def describe(err: Exception) -> str:
    """One line for an exception: its message, with the type for unexpected ones."""
    message = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, (CLIError, ValueError, OSError)):
        return message
    return f"{type(err).__name__}: {message} (rerun with --verbose for the traceback)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hashflow`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    forwarded = split_forwarded(argv)
    if forwarded is not None:
        name, verbose, rest = forwarded
        return run_reporting_errors(lambda: forward(name, rest), verbose)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors (already printed)
        return exit_status(exit_)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return run_reporting_errors(lambda: args.handler(args), args.verbose)


if __name__ == "__main__":
    raise SystemExit(main())
