"""Benchmark harness: a tiny run writes every file, resumes without recomputing, skips cleanly."""

import json
import shutil

import numpy as np
import pytest

from hashflow import baselines
from hashflow.bench import methods as bench_methods
from hashflow.bench import runner

TINY = ["--pairs", "2", "--size", "96", "--radius", "8", "--points", "12", "--margin", "20",
        "--no-progress"]
FILES = ("results.json", "results.md", "records.jsonl", "epe_bars.png", "epe_vs_time.png",
         "example.png")


def _hide_contrib(monkeypatch):
    """Pretend this cv2 build has no opencv-contrib, so tvl1 is unavailable."""
    monkeypatch.setattr(baselines, "_has_cv2_attr", lambda dotted: "optflow" not in dotted)


def _run(out, *extra):
    assert runner.main(TINY + ["--out", str(out), *extra]) == 0
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One tiny run: two fast baselines and tvl1 hidden as 'needs opencv-contrib'."""
    out = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _hide_contrib(monkeypatch)
        results = _run(out, "--methods", "dis-fast,phasecorr,tvl1")
    return out, results


def test_run_writes_all_files(first_run):
    out, _ = first_run
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    table = (out / "results.md").read_text()
    assert "| dis-fast |" in table and "paper Table 2: hashflow-image-o2 | 2.94" in table
    assert "pooled over all points" in table


def test_results_json_keys(first_run):
    _, results = first_run
    for key in ("config", "n_pairs", "source", "device", "pooling", "memory_notes", "methods",
                "skipped", "real", "reference_paper_table2", "files"):
        assert key in results, key
    assert results["n_pairs"] == 2 and results["computed_this_run"] == 4
    entry = results["methods"]["phasecorr"]
    for key in ("pooled", "mean_of_pair_means", "seconds_median", "peak_mb", "memory_kind",
                "pairs_ok", "pairs_failed"):
        assert key in entry, key
    assert set(entry["pooled"]) >= {"epe_mean", "epe_median", "acc_1px", "acc_3px", "acc_5px"}
    assert entry["pooled"]["count"] == 2 * 12
    # an 8 px translation of a photo: phase correlation is sub-pixel accurate
    assert entry["pooled"]["epe_mean"] < 1.0


def test_unavailable_method_is_skipped_with_reason(first_run):
    _, results = first_run
    assert "tvl1" not in results["methods"]
    assert "needs opencv-contrib" in results["skipped"]["tvl1"]


def test_missing_hashflow_estimate_is_skipped(tmp_path, monkeypatch):
    def missing():
        raise ImportError("cannot import name 'FlowEstimator' from 'hashflow'")
    monkeypatch.setattr(bench_methods, "_flow_estimator_class", missing)
    results = _run(tmp_path, "--methods", "hashflow-patch-o2,phasecorr", "--example-pair", "-1")
    assert "ImportError" in results["skipped"]["hashflow-patch-o2"]
    assert list(results["methods"]) == ["phasecorr"]


def test_resume_skips_finished_entries(first_run, tmp_path, monkeypatch):
    out = tmp_path / "bench"
    shutil.copytree(first_run[0], out)
    _hide_contrib(monkeypatch)
    calls = []
    real_predict = bench_methods.predict_at_points
    monkeypatch.setattr(bench_methods, "predict_at_points",
                        lambda spec, *a, **k: calls.append(spec.name) or real_predict(spec, *a,
                                                                                          **k))
    again = _run(out, "--methods", "dis-fast,phasecorr,tvl1")
    assert calls == [] and again["computed_this_run"] == 0
    assert again["methods"]["phasecorr"] == first_run[1]["methods"]["phasecorr"]
    more = _run(out, "--methods", "dis-fast,phasecorr", "--pairs", "3")
    assert sorted(calls) == ["dis-fast", "phasecorr"] and more["n_pairs"] == 3
    fresh = _run(out, "--methods", "phasecorr", "--fresh", "--example-pair", "-1")
    assert fresh["computed_this_run"] == 2


def test_failing_method_is_recorded_and_retried(tmp_path, monkeypatch):
    def broken(spec, *args, **kwargs):
        raise RuntimeError("solver diverged")
    monkeypatch.setattr(bench_methods, "predict_at_points", broken)
    results = _run(tmp_path, "--methods", "phasecorr", "--example-pair", "-1")
    entry = results["methods"]["phasecorr"]
    assert entry["pairs_ok"] == 0 and entry["pairs_failed"] == 2
    assert "RuntimeError: solver diverged" in entry["errors"][0]
    assert "failed on all 2 pairs" in (tmp_path / "results.md").read_text()
    monkeypatch.undo()
    assert _run(tmp_path, "--methods", "phasecorr", "--example-pair", "-1")[
        "methods"]["phasecorr"]["pairs_ok"] == 2


def test_sample_flow_is_bilinear():
    flow = np.zeros((3, 4, 2), np.float32)
    flow[..., 0] = np.arange(4)[None, :]          # u = x
    flow[..., 1] = 10 * np.arange(3)[:, None]     # v = 10 y
    points = np.array([[1.25, 0.5], [3.0, 2.0], [-5.0, 9.0]], np.float32)
    expected = [[1.25, 5.0], [3.0, 20.0], [0.0, 20.0]]  # last point clamped to (0, 2)
    assert np.allclose(bench_methods.sample_flow(flow, points), expected)


def test_cli_options_and_presets():
    args = runner.build_parser().parse_args(["--quick", "--orders", "1,2", "--modes", "image"])
    config = runner.config_from_args(args)
    assert config.n_pairs == 8 and config.orders == (1, 2) and config.modes == ("image",)
    config = runner.config_from_args(runner.build_parser().parse_args(["--quick", "--pairs",
                                                                       "3"]))
    assert config.n_pairs == 3 and config.out == "results/bench" and not config.fresh
    assert runner.config_from_args(runner.build_parser().parse_args(["--fresh"])).fresh
    assert not runner.config_from_args(runner.build_parser().parse_args(["--resume"])).fresh


@pytest.mark.parametrize("argv", [["--methods", "raft"], ["--modes", "global"],
                                  ["--orders", "3"], ["--pairs", "0"],
                                  ["--methods", "hashflow-image-o2", "--orders", "1"]])
def test_cli_rejects_bad_options(argv, capsys):
    with pytest.raises(SystemExit):
        runner.main(argv)
    assert "expected" in capsys.readouterr().err


def test_select_methods_filters_hashflow_only():
    names = [s.name for s in bench_methods.select_methods(None, ["image"], [2])]
    assert "hashflow-image-o2" in names and "hashflow-patch-o2" not in names
    assert "dis-medium" in names and "pyrlk" in names


def test_real_sets_are_scored_densely(tmp_path):
    from hashflow.datasets.realflow import find_real_sets
    if not find_real_sets():
        pytest.skip("no real-flow sets in the data folder (HASHFLOW_DATA)")
    results = _run(tmp_path, "--methods", "phasecorr,pyrlk", "--real", "--example-pair", "-1")
    assert results["real"], "expected at least one real set"
    for methods in results["real"].values():
        assert "pyrlk" not in methods  # point-only: no dense EPE
        pooled = methods["phasecorr"]["pooled"]
        assert pooled["count"] > 0 and 0 <= pooled["fl_all"] <= 1
    assert "dense EPE over valid pixels" in (tmp_path / "results.md").read_text()


class _FakeEstimator:
    """Stands in for hashflow.FlowEstimator: counts encodes, returns zero flow."""

    encodes = 0

    def __init__(self, order, encoder, device, config):
        self.order = order

    def encode(self, image):
        type(self).encodes += 1

    def estimate(self, img1, img2, mode, points=None):
        shape = img1.shape[:2] + (2,) if points is None else (len(points), 2)
        return np.zeros(shape, np.float32)


def test_hashflow_modes_share_one_encoding_per_order(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_methods, "_flow_estimator_class", lambda: _FakeEstimator)
    _FakeEstimator.encodes = 0
    results = _run(tmp_path, "--methods", "hashflow-image-o2,hashflow-patch-o2,hashflow-pixel-o1")
    assert _FakeEstimator.encodes == 2 * 2 * 2  # 2 pairs x 2 frames x 2 orders, not x 3 methods
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(r["status"] == "ok" for r in records)
    for record in records:
        assert record["seconds"] == pytest.approx(record["seconds_encode"]
                                                  + record["seconds_solve"])
    entry = results["methods"]["hashflow-patch-o2"]
    assert entry["pooled"]["epe_mean"] > 0  # zero flow against a non-zero translation
    assert (tmp_path / "example.png").exists()
