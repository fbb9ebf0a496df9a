"""hashflow.demo: synthetic pairs with known flow, and a tiny end-to-end run."""

import json

import numpy as np
import pytest

from hashflow.demo import (DemoConfig, render_report, run_demo, smooth_warp_field,
                           translated_pair, warped_pair)
from hashflow.warp import warp

TINY_SOLVER = {"encode_steps": 5, "iterations": 1, "starts": 1, "tile_sizes": (),
               "level_schedule": (12,), "search_radius": 4.0}
TINY = DemoConfig(size=32, radius=2.0, warp_amplitude=1.5, solver_options=TINY_SOLVER)


def test_smooth_warp_field_reaches_the_amplitude():
    flow = smooth_warp_field(40, 5.0, seed=1)
    assert flow.shape == (40, 40, 2) and flow.dtype == np.float32
    assert np.hypot(flow[..., 0], flow[..., 1]).max() == pytest.approx(5.0, rel=1e-5)
    assert np.abs(np.diff(flow, axis=0)).max() < 1.0  # smooth: under 1 px change per row


def test_warped_pair_follows_the_flow_convention():
    pair = warped_pair(DemoConfig(size=48, warp_amplitude=4.0))
    assert pair.img1.shape == pair.img2.shape == (48, 48, 3)
    # img1(x) = img2(x + flow(x)): both sides sample the same canvas bilinearly
    inner = np.s_[6:-6, 6:-6]
    difference = np.abs(warp(pair.img2, pair.flow)[inner].astype(int) - pair.img1[inner])
    assert difference.max() <= 2


def test_translated_pair_is_one_vector_within_the_radius():
    pair = translated_pair(DemoConfig(size=48, radius=5.0))
    assert np.ptp(pair.flow.reshape(-1, 2), axis=0).max() == 0
    assert np.hypot(*pair.flow[0, 0]) <= 5.0


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="warp_photo"):
        DemoConfig(warp_photo="lena")
    with pytest.raises(ValueError, match="size"):
        DemoConfig(size=16)
    with pytest.raises(ValueError, match="radius"):
        DemoConfig(size=32, radius=20)


def test_tiny_demo_writes_report_json_and_figures(tmp_path):
    lines = []
    results = run_demo(tmp_path / "demo", TINY, log=lines.append)
    out = tmp_path / "demo"
    saved = json.loads((out / "demo.json").read_text())
    assert saved["pairs"].keys() == {"translated", "warped"}
    report = (out / "report.html").read_text()
    for entry in saved["pairs"].values():
        assert set(entry["methods"]) == {"hashflow-patch", "hashflow-image", "dis-medium"}
        assert all(np.isfinite(m["epe"]) for m in entry["methods"].values())
        for name in entry["figures"].values():
            assert (out / name).is_file() and f"src='{name}'" in report
    translated = saved["pairs"]["translated"]["methods"]
    assert translated["hashflow-image"]["epe"] < 1.0  # a 2 px translation, one vector
    assert results["report"] == str(out / "report.html") and len(lines) == 2


def test_report_renders_an_epe_table():
    results = {"config": {"preset": "fast", "order": 2, "size": 32}, "encoder": "direct",
               "pairs": {"p": {"title": "a <pair>", "mean_gt_magnitude": 1.0, "figures": {},
                               "methods": {"m": {"epe": 0.25, "seconds": 1.5}}}}}
    page = render_report(results)
    assert "0.250 px" in page and "1.50 s" in page and "a &lt;pair&gt;" in page
    assert page.endswith("</html>")
