"""The hashflow command line: help, estimate (pair, frames, video), encode/decode, errors."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from hashflow import cli
from hashflow.encoding import HashEncoding
from hashflow.flow_io import read_flow

# Solver settings small enough for 32x32 frames in about a second.
TINY = ["--preset", "fast", "--encode-steps", "5", "--set", "starts=1",
        "--set", "tile_sizes=", "--set", "level_schedule=12", "--set", "search_radius=4"]
SUBCOMMANDS = ("estimate", "encode", "decode", "demo")


def write_rgb(path, rgb):
    cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    return str(path)


@pytest.fixture
def frames(tmp_path, natural_crop):
    """Three 32x32 frames of a photo moving by (-1, -1) px per frame, as PNG paths."""
    return [write_rgb(tmp_path / f"frame{i}.png", natural_crop[10 + i:42 + i, 10 + i:42 + i])
            for i in range(3)]


def run(capsys, *argv):
    """(exit status, stdout, stderr) of the CLI run in-process."""
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, fragment):
    assert status != 0
    assert err.startswith("hashflow: error:") and err.count("\n") == 1, err
    assert fragment in err and "Traceback" not in err


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_of_every_subcommand_explains_every_option(capsys, command):
    assert cli.main([command, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: hashflow {command}")
    subparsers = next(a for a in cli.build_parser()._actions if a.dest == "command")
    for action in subparsers.choices[command]._actions:
        assert action.help, f"{command}: {action.option_strings or action.dest} lacks help"


@pytest.mark.parametrize("command", ["bench", "train", "train-decoder"])
def test_bench_and_train_forward_their_arguments(capsys, command):
    assert cli.main([command, "--help"]) == 0
    assert "usage:" in capsys.readouterr().out
    assert cli.main([command, "--no-such-option"]) == cli.EXIT_USAGE


def test_top_level_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in (*SUBCOMMANDS, "bench", "train", "train-decoder"))


def test_estimate_pair_writes_flow_and_viz(capsys, tmp_path, frames):
    status, out, _ = run(capsys, "estimate", frames[0], frames[1], "-o", tmp_path / "f.flo",
                         "--viz", tmp_path / "f.png", *TINY)
    assert status == 0
    flow, valid = read_flow(tmp_path / "f.flo")
    assert flow.shape == (32, 32, 2) and valid.all()
    assert cv2.imread(str(tmp_path / "f.png")).shape == (32, 32, 3)
    assert "32x32" in out and "mean |flow|" in out and out.count("\n") == 1


def test_image_mode_recovers_the_shift(capsys, tmp_path, frames):
    status, _, _ = run(capsys, "estimate", frames[0], frames[1], "-o", tmp_path / "f.npy",
                       "--mode", "image", "--viz", *TINY)
    assert status == 0
    flow, _ = read_flow(tmp_path / "f.npy")
    assert np.abs(flow.mean(axis=(0, 1)) - [-1, -1]).max() < 0.5
    assert (tmp_path / "f_color.png").is_file()


def test_frames_folder_gives_one_flow_per_consecutive_pair(capsys, tmp_path, frames):
    status, out, _ = run(capsys, "estimate", "--frames", tmp_path, "-o", tmp_path / "out",
                         "--mode", "image", "--viz", "--no-progress", *TINY)
    assert status == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["color_0000.png", "color_0001.png", "flow_0000.flo", "flow_0001.flo"]
    assert out.startswith("2 flows from 3 frames")


def test_frames_video(capsys, tmp_path, frames):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (32, 32))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    for path in frames:
        writer.write(cv2.imread(path))
    writer.release()
    status, _, _ = run(capsys, "estimate", "--frames", video, "-o", tmp_path / "out",
                       "--format", ".npy", "--mode", "image", "--no-progress", *TINY)
    assert status == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["flow_0000.npy",
                                                                    "flow_0001.npy"]


def test_frames_of_different_sizes_fail(capsys, tmp_path, frames, natural_crop):
    write_rgb(tmp_path / "frame3.png", natural_crop[:40, :40])
    status, _, err = run(capsys, "estimate", "--frames", tmp_path, "-o", tmp_path / "out",
                         "--mode", "image", "--no-progress", *TINY)
    assert_one_line_error(status, err, "frame3.png is 40x40")


def test_missing_file_fails_with_one_line(capsys, tmp_path, frames):
    status, _, err = run(capsys, "estimate", frames[0], tmp_path / "nope.png",
                         "-o", tmp_path / "f.flo")
    assert_one_line_error(status, err, "no such file")
    assert not (tmp_path / "f.flo").exists()


def test_size_mismatch_fails_with_one_line(capsys, tmp_path, frames, natural_crop):
    other = write_rgb(tmp_path / "big.png", natural_crop[:40, :48])
    status, _, err = run(capsys, "estimate", frames[0], other, "-o", tmp_path / "f.flo")
    assert_one_line_error(status, err, "IMG2 is 48x40")


@pytest.mark.parametrize("argv, fragment", [
    (["--set", "bogus=1"], "NAME one of"),
    (["--set", "iterations=many"], "cannot read 'many' as int"),
    (["--mode", "diagonal"], "invalid choice"),
    (["--encode-steps", "-3"], "must be >= 0"),
])
def test_bad_options_fail_with_usage_status(capsys, tmp_path, frames, argv, fragment):
    status, _, err = run(capsys, "estimate", *frames[:2], "-o", tmp_path / "f.flo", *argv)
    assert status == cli.EXIT_USAGE
    assert_one_line_error(status, err, fragment)


def test_unreadable_image_and_bad_output_extension(capsys, tmp_path, frames):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    status, _, err = run(capsys, "estimate", frames[0], junk, "-o", tmp_path / "f.flo")
    assert_one_line_error(status, err, "cannot read")
    status, _, err = run(capsys, "estimate", *frames[:2], "-o", tmp_path / "f.txt")
    assert_one_line_error(status, err, "unknown flow extension")


def test_verbose_shows_the_exception(tmp_path, frames):
    with pytest.raises(cli.CLIError, match="no such file"):
        cli.main(["estimate", frames[0], str(tmp_path / "nope.png"), "-o",
                  str(tmp_path / "f.flo"), "--verbose"])


def test_console_process_prints_no_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "hashflow.cli", "decode",
                             str(tmp_path / "missing.h5"), "-o", str(tmp_path / "r.png")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"hashflow: error: ENC: no such file: {tmp_path / 'missing.h5'}"]


def test_encode_decode_round_trip(capsys, tmp_path, natural_crop):
    image = write_rgb(tmp_path / "img.png", natural_crop[:32, :32])
    status, out, _ = run(capsys, "encode", image, "-o", tmp_path / "e.h5", "--direct",
                         "--steps", "40", "--no-progress")
    assert status == 0 and "B (32x32x3 uint8)" in out and "PSNR" in out
    encoding = HashEncoding.load(tmp_path / "e.h5")
    assert encoding.image_size == (32, 32)
    status, out, _ = run(capsys, "decode", tmp_path / "e.h5", "-o", tmp_path / "r.png",
                         "--reference", image, "--figure", tmp_path / "levels.png")
    assert status == 0
    psnr_db = float(out.split("PSNR ")[1].split(" dB")[0])
    assert psnr_db > 20
    assert cv2.imread(str(tmp_path / "r.png")).shape == (32, 32, 3)
    assert (tmp_path / "levels.png").is_file()
    status, out, _ = run(capsys, "decode", tmp_path / "e.h5", "-o", tmp_path / "k.png",
                         "--levels", "2")
    assert status == 0 and "decoded 2/12 levels" in out


def test_decode_rejects_corrupt_encoding_and_bad_levels(capsys, tmp_path, natural_crop):
    corrupt = tmp_path / "bad.h5"
    corrupt.write_bytes(b"\x89HDF garbage")
    status, _, err = run(capsys, "decode", corrupt, "-o", tmp_path / "r.png")
    assert_one_line_error(status, err, "not a readable hashflow encoding")
    image = write_rgb(tmp_path / "img.png", natural_crop[:32, :32])
    assert run(capsys, "encode", image, "-o", tmp_path / "e.h5", "--direct", "--steps", "1",
               "--no-progress")[0] == 0
    status, _, err = run(capsys, "decode", tmp_path / "e.h5", "-o", tmp_path / "r.png",
                         "--levels", "13")
    assert_one_line_error(status, err, "--levels must lie in [1, 12]")


def test_demo_command(capsys, tmp_path):
    status, out, _ = run(capsys, "demo", "--out", tmp_path / "demo", "--size", "32",
                         "--radius", "2", "--warp-amplitude", "1", "--baseline", "none",
                         "--no-encoding-figure", *TINY)
    assert status == 0
    assert (tmp_path / "demo" / "report.html").is_file()
    assert out.strip().splitlines()[-1] == f"report: {(tmp_path / 'demo' / 'report.html').resolve()}"


def test_solver_option_types():
    assert cli.solver_option("tile_sizes=64,16") == ("tile_sizes", (64, 16))
    assert cli.solver_option("tile_sizes=") == ("tile_sizes", ())
    assert cli.solver_option("encode_lr=0.5") == ("encode_lr", 0.5)
    assert cli.solver_option("starts=3") == ("starts", 3)
