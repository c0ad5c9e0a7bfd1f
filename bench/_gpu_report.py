"""The report of ``bench/gpu_check.py``: parts merged, targets judged, a printed summary.

A part's status in the report:

* ``ok``: its process exited 0, recorded every item, and every item passed;
* ``failed``: some item failed (the others still ran);
* ``timeout``: killed at its deadline (the items it finished are kept);
* ``crashed``: its process died (non-zero exit, no complete record);
* ``not_run``: no time was left for it.

Targets (the speed and memory goals of the README's "GPU check") are measurements, judged as
``met`` true/false (``None`` when not measured); a missed target does not fail the check, it is reported as a miss. In a smoke
run they are computed the same way but mean nothing.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from bench._gpu_harness import read_json

__all__ = ["build_report", "part_status", "print_summary", "targets"]

#: workloads whose Triton step must reach 85 % of the copy bandwidth.
_BANDWIDTH_KEYS = ("gpt2-small/fp32", "gpt2-small/bf16", "list-1.5B/fp32", "list-1.5B/bf16")


def part_status(run: Mapping[str, Any], record: Optional[Mapping[str, Any]]) -> str:
    """The status of one part from its process outcome and its record (module docstring)."""
    if run.get("status") in ("timeout", "not_run"):
        return str(run["status"])
    if record is None or run.get("status") != "ok" or not record.get("complete"):
        return "crashed"
    items = record.get("items", {})
    return "ok" if all(v.get("ok", True) for v in items.values()) else "failed"


def _target(name: str, target: str, measured: Any, met: Optional[bool]) -> dict[str, Any]:
    return {"name": name, "target": target, "measured": measured, "met": met}


def _speed_targets(speed: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    results = {k: v["result"] for k, v in speed.items() if v.get("ok") and "result" in v}
    for key in _BANDWIDTH_KEYS:
        tri = results.get(key, {}).get("providers", {}).get("triton-exact")
        frac = tri["copy_fraction"] if tri else None
        out.append(_target(f"bandwidth {key}", "triton step >= 85% of measured copy bandwidth",
                           frac, None if frac is None else frac >= 0.85))
    for key, res in results.items():
        tri = res["providers"].get("triton-exact")
        ratio = tri.get("ratio_vs_torch") if tri else None
        out.append(_target(f"vs torch {key}", "triton step >= 3x faster than torch backend",
                           ratio, None if ratio is None else ratio >= 3.0))
    for key, res in results.items():
        tri = res["providers"].get("triton-exact")
        if tri:
            mem = max(tri["extra_memory_vs_grad"], tri["gen_extra_memory_vs_grad"])
            out.append(_target(f"memory {key}", "exact mode extra memory <= 1.05x one gradient "
                               "(step and GeN step)", mem, mem <= 1.05))
    for key, res in results.items():
        fused = res["providers"].get("triton-exact+adamw")
        for mode in ("foreach", "fused"):
            comp = res["providers"].get(f"composite-{mode}+adamw")
            if fused and comp:
                out.append(_target(f"adamw vs composite-{mode} {key}", "stated (composite ms / "
                                   "fused triton NGDiff+AdamW ms)",
                                   comp["median_ms"] / fused["median_ms"], None))
    counts = {key: (res["providers"]["triton-exact"]["launches_per_step"],
                    res["providers"]["triton-exact"]["gen_launches_per_step"])
              for key, res in results.items() if "triton-exact" in res["providers"]}
    out.append(_target("launches vs tensors (speed workloads)",
                       "triton launches per step constant in the number of tensors",
                       counts, len(set(counts.values())) == 1 if len(counts) > 1 else None))
    return out


def targets(parts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue, judged from the parts' records."""
    out = _speed_targets(parts.get("speed", {}).get("items", {}))
    launches = parts.get("correctness", {}).get("items", {}).get("launches")
    if launches and "constant" in launches:
        out.append(_target("launches vs tensors (optimizer step)",
                           "triton launches per optimizer step constant in the number of tensors",
                           launches["constant"], bool(launches.get("ok"))))
    llama = parts.get("end_to_end", {}).get("items", {}).get("llama")
    if llama and llama.get("ok"):
        out.append(_target("GeN every 10 steps", "<= 1.10x end to end (1.1B Llama, bf16)",
                           llama["gen_overhead"], llama["gen_overhead"] <= 1.10))
        out.append(_target("optimizer share", "stated", llama["optimizer_share"], None))
    else:
        out.append(_target("GeN every 10 steps", "<= 1.10x end to end (1.1B Llama, bf16)",
                           None, None))
    return out


def build_report(out: Path, runs: Mapping[str, Mapping[str, Any]], *, smoke: bool,
                 budget_s: float, started: str, wall_s: float) -> dict[str, Any]:
    """Merge ``out/parts/*.json`` with the process outcomes ``runs`` into the report."""
    parts: dict[str, Any] = {}
    for name, run in runs.items():
        record = read_json(out / "parts" / f"{name}.json")
        status = part_status(run, record)
        items = (record or {}).get("items", {})
        parts[name] = {"status": status, "process": dict(run), "items": items,
                       "failed_items": [k for k, v in items.items() if not v.get("ok", True)],
                       **{k: v for k, v in (record or {}).items()
                          if k not in ("items", "part", "complete")}}
    preflight = parts.get("preflight", {}).get("items", {})
    machine = preflight.get("versions", {}).get("machine")
    judged = targets(parts)
    all_ok = bool(parts) and all(p["status"] == "ok" for p in parts.values())
    return {
        "check": "bench/gpu_check.py", "mode": "smoke" if smoke else "gpu",
        "started_utc": started, "wall_s": round(wall_s, 1), "budget_s": budget_s,
        "machine": machine, "warm_cache": read_json(out / "parts" / "warm_cache.json"),
        "summary": {"all_ok": all_ok,
                    "parts": {k: v["status"] for k, v in parts.items()},
                    "targets_met": sum(1 for t in judged if t["met"] is True),
                    "targets_missed": [t["name"] for t in judged if t["met"] is False],
                    "targets_not_measured": [t["name"] for t in judged if t["met"] is None]},
        "targets": judged, "parts": parts,
    }


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def print_summary(report: Mapping[str, Any]) -> None:
    """Part statuses, failed items and the targets, as plain lines."""
    print(f"\ngpu_check ({report['mode']}) in {report['wall_s']:.0f} s of {report['budget_s']:.0f}")
    for name, part in report["parts"].items():
        failed = part["failed_items"]
        print(f"  {name:12s} {part['status']:8s} {len(part['items'])} items"
              + (f"; failed: {', '.join(failed[:8])}" + (" ..." if len(failed) > 8 else "")
                 if failed else ""))
    print("targets:")
    for t in report["targets"]:
        verdict = {True: "met", False: "MISSED", None: "-"}[t["met"]]
        print(f"  {verdict:6s} {t['name']}: {_fmt(t['measured'])} ({t['target']})")
