"""The microbenchmark's smoke mode runs and writes sane numbers (structure, not speed)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastngd.backends.torch_backend import STREAM_BYTES

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "optimizer_step.py"

PER_PROVIDER = ("median_ms", "ratio_vs_naive", "ratio_vs_floor", "extra_memory_bytes",
                "extra_memory_vs_grad", "launches_per_step")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "provider" in proc.stdout  # the table was printed
    return json.loads(out.read_text())


def _finite_positive(x: object) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_machine_and_config(smoke: dict) -> None:
    m = smoke["machine"]
    for key in ("cpu", "cpu_count", "torch", "torch_threads", "device", "platform"):
        assert key in m
    assert smoke["config"]["smoke"] is True
    assert smoke["results"], "no workload ran"


def test_every_workload_has_every_provider(smoke: dict) -> None:
    expected = {"naive", "torch-exact", "torch-compact", "torch-exact+adamw",
                "torch-compact+adamw", "composite-foreach+adamw", "composite-fused+adamw"}
    has_cuda = smoke["machine"]["device"].startswith("cuda")
    if has_cuda and not smoke["skipped"]:
        expected |= {"triton-exact", "triton-compact", "triton-exact+adamw",
                     "triton-compact+adamw"}
    else:
        assert any("triton" in s for s in smoke["skipped"])
    dtypes = set()
    for wl in smoke["results"].values():
        dtypes.add(wl["dtype"])
        assert set(wl["providers"]) == expected
        assert wl["n_tensors"] > 0 and wl["numel"] > 0
        assert _finite_positive(wl["copy"]["gbps"])
    assert {"float32", "bfloat16"} <= dtypes


def test_per_provider_numbers_are_sane(smoke: dict) -> None:
    for wl in smoke["results"].values():
        for key, rec in wl["providers"].items():
            for field in PER_PROVIDER:
                assert field in rec, (key, field)
            for pre in ("", "gen_") if not key.startswith("composite") else ("",):
                assert _finite_positive(rec[pre + "median_ms"])
                assert rec[pre + "iqr_ms"] >= 0
                assert _finite_positive(rec[pre + "ratio_vs_naive"])
                assert _finite_positive(rec[pre + "ratio_vs_floor"])
                assert _finite_positive(rec[pre + "gbps"])
                assert isinstance(rec[pre + "extra_memory_bytes"], int)
                assert rec[pre + "extra_memory_bytes"] >= 0
                assert rec[pre + "extra_memory_vs_grad"] == pytest.approx(
                    rec[pre + "extra_memory_bytes"] / wl["grad_bytes"])
                assert isinstance(rec[pre + "launches_per_step"], int)
                assert rec[pre + "launches_per_step"] > 0
        assert wl["providers"]["naive"]["ratio_vs_naive"] == pytest.approx(1.0)
        composite = wl["providers"]["composite-foreach+adamw"]
        assert composite["gen_median_ms"] is None  # no GeN step for the composite
        summary = wl["summary"]
        assert _finite_positive(summary["composite_foreach_over_fused"])
        assert _finite_positive(summary["fused_adamw_ratio_vs_floor"])
        assert len(wl["loadavg_before"]) == 3


def test_memory_accounting_sees_the_stash(smoke: dict) -> None:
    """Exact mode keeps g_R (one gradient); naive also clones it and builds temporaries.

    Checked on the float32 GPT-2 layout: at smoke sizes, the fixed-size buffers of the other
    paths (float32 temporaries, concatenated groups of small tensors) are as large as the
    gradients themselves."""
    wl = smoke["results"]["gpt2-tiny/float32"]
    p = wl["providers"]
    # g_R plus at most one work item's scratch buffer (a constant: STREAM_BYTES / 4)
    bound = wl["grad_bytes"] + STREAM_BYTES // 4
    assert wl["grad_bytes"] <= p["torch-exact"]["extra_memory_bytes"] <= bound
    # AdamW's moments exist before the step: the fused step adds only g_R as well
    assert wl["grad_bytes"] <= p["torch-exact+adamw"]["extra_memory_bytes"] <= bound
    assert p["naive"]["extra_memory_bytes"] > 1.5 * wl["grad_bytes"]
    assert p["torch-compact"]["extra_memory_bytes"] > 0
