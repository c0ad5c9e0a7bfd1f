"""Every kernel compiles for a GPU (sm_90 cubin) on this GPU-less machine, and the whole
chunks of an aligned table compile to 16-byte vector accesses.

The interpreter runs the kernels' Python; this checks the compiled path (constexpr branches,
int64→pointer casts, alignment hints, dtype arguments, 2-D tiles, float64 math) through
Triton's real code generator, in a subprocess without ``TRITON_INTERPRET``. The fused kernel
is compiled for every (base, dtype) pair, and every base meets every combine mode, both
storages and both passes (step, advance). Works with the ``ASTSource`` of Triton 3.2
(``constants``) and of later versions (``constexprs``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent(
    """
    import inspect, json, re
    import torch, triton, triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from fastngd.kernels import gen, gram, quant, reduce, step
    from fastngd.kernels._common import Geometry

    NEW_API = "constexprs" in inspect.signature(ASTSource.__init__).parameters
    ELEMS = [tl.float32, tl.bfloat16, tl.float16, tl.float64]
    TYPE = {tl.float32: "fp32", tl.bfloat16: "bf16", tl.float16: "fp16", tl.float64: "fp64"}
    TORCH = {tl.float32: torch.float32, tl.bfloat16: torch.bfloat16, tl.float16: torch.float16,
             tl.float64: torch.float64}
    GEOMETRY = Geometry(16384, 1024, 8)  # the backend's defaults on a GPU

    def geo(elem, kind="sgd"):  # the tile the launchers use (the fused kernel's: its state's)
        return {"CHUNK": GEOMETRY.chunk, **GEOMETRY.tile(step.tile_dtype(TORCH[elem], kind))}

    def compile_(fn, sig, consts, num_warps=8):
        sig = {**sig, **{k: "constexpr" for k in consts}}
        if NEW_API:
            src = ASTSource(fn=fn, signature=sig, constexprs=consts)
        else:
            src = ASTSource(fn=fn, signature=sig, constants=consts)
        k = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})
        assert k.asm.get("cubin"), fn.__name__
        return k.asm["ptx"]

    def vec(ptx, op):
        return len(re.findall(op + r"\\.global(\\.\\w+)*\\.v[24]", ptx))

    report = {"fused": [], "vector": {}, "triton": triton.__version__}
    fused_sig = {"table": "*i64", "hyper_ptr": "*fp64", "w_ptr": "*fp64", "partials": "*fp64",
                 "code_ptr": "*fp32"}
    for k, kind in enumerate(step.KIND_IDS):
        for e, elem in enumerate(ELEMS):
            consts = {"ELEM": elem, "ACC": tl.float64 if elem == tl.float64 else tl.float32,
                      "KIND": step.KIND_IDS[kind], "MODE": (k + e) % 3, "QUANT": e % 2 == 1,
                      "ADVANCE": (e // 2) % 2 == 1, "ALIGN": 16 if (k + e) % 2 else 1,
                      **geo(elem, kind)}
            compile_(step._fused_kernel, fused_sig, consts)
            report["fused"].append([kind, TYPE[elem], consts["MODE"], consts["QUANT"],
                                    consts["ADVANCE"]])
    for elem in ELEMS:
        for q in (False, True):
            compile_(gram._gram_partials_kernel,
                     {"table": "*i64", "partials": "*fp64", "code_ptr": "*fp32"},
                     {"ELEM": elem, "QUANT": q, "ALIGN": 16, **geo(elem)})
        compile_(gen._perturb_kernel, {"table": "*i64", "s_ptr": "*fp64"},
                 {"ELEM": elem, "ACC": tl.float64 if elem == tl.float64 else tl.float32,
                  "ALIGN": 16, **geo(elem)})
        compile_(quant._quantize_kernel, {"table": "*i64", "mids_ptr": "*fp32"},
                 {"ELEM": elem, "CHUNK": 16384, "BLOCK": 1024}, num_warps=4)
    for width in (2, 3):
        compile_(reduce._sum_rows_kernel, {"partials": "*fp64", "out": "*fp64", "n_rows": "i64"},
                 {"WIDTH": width, "BLOCK": 256}, num_warps=4)
        compile_(reduce._segment_sums_kernel,
                 {"partials": "*fp64", "segments": "*i64", "out": "*fp64"},
                 {"WIDTH": width, "BLOCK": 256}, num_warps=4)
    # vector accesses: Adam step, fp32 and bf16, aligned against unaligned tables
    for elem in (tl.float32, tl.bfloat16):
        for align in (16, 1):
            ptx = compile_(step._fused_kernel, fused_sig,
                           {"ELEM": elem, "ACC": tl.float32, "KIND": 2, "MODE": 0, "QUANT": False,
                            "ADVANCE": False, "ALIGN": align, **geo(elem, "adam")})
            report["vector"][f"{TYPE[elem]}-{align}"] = [vec(ptx, "ld"), vec(ptx, "st")]
    print("REPORT" + json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def report() -> dict:
    try:
        import triton.backends.nvidia  # noqa: F401
    except ImportError:
        pytest.skip("triton has no CUDA backend here")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                         text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("REPORT"))
    return json.loads(line[len("REPORT"):])


def test_every_base_meets_every_dtype_mode_storage_and_pass(report: dict) -> None:
    fused = report["fused"]
    assert {(k, e) for k, e, *_ in fused} == {(k, e) for k in ("sgd", "momentum", "adam", "adamw")
                                              for e in ("fp32", "bf16", "fp16", "fp64")}
    for kind in ("sgd", "momentum", "adam", "adamw"):
        rows = [r for r in fused if r[0] == kind]
        assert {r[2] for r in rows} == {0, 1, 2}
        assert {(r[3], r[4]) for r in rows} == {(False, False), (True, False), (False, True),
                                                (True, True)}


def test_aligned_whole_chunks_use_vector_accesses(report: dict) -> None:
    """Adam step: 5 operands read and 3 written per element, 4 elements per thread (16
    bytes of the float32 moments): one vector access per operand (8 bytes for bfloat16 p,
    r, f). An unaligned table must not claim vectors (a misaligned vector access faults)."""
    vec = report["vector"]
    assert vec["fp32-16"] == [5, 3], report["triton"]
    assert vec["bf16-16"] == [5, 3], report["triton"]
    assert vec["fp32-1"] == [0, 0] and vec["bf16-1"] == [0, 0]
