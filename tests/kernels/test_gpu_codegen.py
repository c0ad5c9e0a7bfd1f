"""Every kernel compiles for a GPU (sm_90 cubin) on this GPU-less machine.

The interpreter runs the kernels' Python; this checks the compiled path (constexpr branches,
int64→pointer casts, dtype arguments, 2-D tiles) through Triton's real code generator, in a
subprocess without ``TRITON_INTERPRET``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent(
    """
    import triton, triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from fastngd.kernels import gen, gram, quant, update

    C = "constexpr"
    base = {"NCOL": C, "CHUNK": C, "BLOCK": C}
    cases = [
        (gram._gram_partials_kernel,
         {"table": "*i64", "partials": "*fp32", "ref": "*bf16", "code_ptr": "*fp32", **base,
          "ACC": C, "QUANT": C},
         {"NCOL": 6, "CHUNK": 4096, "BLOCK": 1024, "ACC": tl.float32, "QUANT": True}),
        (gram._sum_rows_kernel,
         {"partials": "*fp64", "out": "*fp64", "n_rows": "i32", "BLOCK": C, "ACC": C},
         {"BLOCK": 256, "ACC": tl.float64}),
        (update._update_kernel,
         {"table": "*i64", "lr_ptr": "*fp32", "w_ptr": "*fp32", "ref": "*bf16",
          "code_ptr": "*fp32", **base, "ACC": C, "SAGO": C, "QUANT": C, "BF16": C},
         {"NCOL": 7, "CHUNK": 4096, "BLOCK": 1024, "ACC": tl.float32, "SAGO": True,
          "QUANT": True, "BF16": True}),
        (gen._direction_backup_kernel,
         {"table": "*i64", "w_ptr": "*fp32", "ref": "*fp16", "code_ptr": "*fp32", **base,
          "ACC": C, "SAGO": C, "QUANT": C, "BF16": C},
         {"NCOL": 8, "CHUNK": 4096, "BLOCK": 1024, "ACC": tl.float32, "SAGO": True,
          "QUANT": True, "BF16": False}),
        (gen._perturb_kernel,
         {"table": "*i64", "s_ptr": "*fp32", "ref": "*bf16", **base, "ACC": C, "BF16": C},
         {"NCOL": 6, "CHUNK": 4096, "BLOCK": 1024, "ACC": tl.float32, "BF16": True}),
        (quant._quantize_kernel,
         {"table": "*i64", "ref": "*fp32", "mids_ptr": "*fp32", **base},
         {"NCOL": 6, "CHUNK": 4096, "BLOCK": 1024}),
    ]
    for fn, sig, consts in cases:
        k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts),
                           target=GPUTarget("cuda", 90, 32))
        assert "cubin" in k.asm, fn
        print("compiled", fn.__name__)
    """
)


def test_kernels_compile_for_sm90() -> None:
    try:
        import triton.backends.nvidia  # noqa: F401
    except ImportError:
        pytest.skip("triton has no CUDA backend here")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("compiled") == 6
