"""Part 1 of ``bench/gpu_check.py``: the Triton path is correct on the device.

* **warm-up** (on a GPU): the kernels' specialisations compiled by a few processes in
  parallel (:mod:`bench._gpu_warmup`);
* **kernels**: every backend operation of :class:`~fastngd.backends.triton.TritonBackend`
  (Gram, int8 store, the fused step and ``advance_and_backup`` of every base with every
  combine mode and both storages, the perturbation; :mod:`bench._gpu_kernels`) against the
  float64 reference :mod:`fastngd.kernels.naive` and against
  :class:`~fastngd.backends.TorchBackend` on the same inputs;
* **launches**: Triton launches per optimizer step (and device kernels or ATen ops per fixed
  step) for two models with different numbers of tensors; they must be equal;
* **determinism**: two identical 7-step runs give bitwise identical parameters;
* **the optimizer matrix**: ``NGDiffOptimizer`` with ``backend="triton"`` against
  ``backend="torch"`` over 7 steps for every base (:data:`fastngd.BASES`) × every rule ×
  GeN on/off × exact/int8 storage × float32/bfloat16 (:func:`matrix`: a covering set first,
  so that a run cut short still has every base in every setting; smoke mode runs the first
  few). The part stops starting comparisons when its deadline comes near and says how many
  it did not run.
"""
from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Optional

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from bench._gpu_compare import bitwise, compare, count_launches, tolerance
from bench._gpu_harness import lost_context_check
from bench._gpu_kernels import kernels_item

__all__ = ["CorrectnessSizes", "combo_name", "matrix", "optimizer_kwargs", "run_correctness"]

_DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16"}


class CorrectnessSizes:
    """Sizes of the correctness part (``smoke``: tiny, for the interpreter)."""

    def __init__(self, smoke: bool) -> None:
        self.smoke = smoke
        #: tensor sizes of the kernel checks: several chunks, a partial chunk, one element.
        self.kernel_sizes: tuple[int, ...] = (5000, 1, 700) if smoke else (70001, 1, 4097, 300)
        #: (rows, cols) of the tensors checked through their non-contiguous transposes.
        self.kernel_2d = (9, 13) if smoke else (37, 53)
        self.d_in, self.hidden, self.classes = (16, 24, 3) if smoke else (64, 300, 10)
        self.steps = 3 if smoke else 7
        self.gen_every = 2
        #: numbers of tensors of the two launch-count models.
        self.launch_tensors = (2, 6) if smoke else (8, 256)
        #: (dtype, storage) of the determinism runs.
        self.determinism: tuple[tuple[torch.dtype, str], ...] = (
            ((torch.float32, "exact"),) if smoke else
            ((torch.float32, "exact"), (torch.bfloat16, "exact"), (torch.float32, "int8")))
        #: optimizer comparisons run in smoke mode: the first ones of :func:`matrix`.
        self.smoke_combos = 6


# ---------------------------------------------------------------------------- models
class TwoLayer(nn.Module):
    """``softmax(W₂ᵀ·tanh(W₁x + b₁) + b₂)`` computed in float32 whatever the parameter
    dtype; ``W₂`` is stored transposed (a non-contiguous parameter: the fallback path)."""

    def __init__(self, d_in: int, hidden: int, classes: int) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(hidden, d_in) / d_in ** 0.5)
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.w2 = nn.Parameter((torch.randn(classes, hidden) / hidden ** 0.5).t())
        self.b2 = nn.Parameter(torch.zeros(classes))

    def forward(self, x: Tensor) -> Tensor:
        h = torch.tanh(F.linear(x.float(), self.w1.float(), self.b1.float()))
        return h @ self.w2.float() + self.b2.float()


def make_task(device: torch.device, sizes: CorrectnessSizes, seed: int = 0) -> tuple[Tensor, ...]:
    """Fixed retain and forget batches ``(x_R, y_R, x_F, y_F)`` on ``device``."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    xr = torch.randn(64, sizes.d_in, generator=g)
    yr = torch.randint(0, sizes.classes, (64,), generator=g)
    xf = torch.randn(16, sizes.d_in, generator=g)
    yf = torch.randint(0, sizes.classes, (16,), generator=g)
    return tuple(t.to(device) for t in (xr, yr, xf, yf))


def make_model(device: torch.device, dtype: torch.dtype, sizes: CorrectnessSizes,
               seed: int = 0) -> TwoLayer:
    """A :class:`TwoLayer` with a fixed initialisation, in ``dtype`` on ``device``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = TwoLayer(sizes.d_in, sizes.hidden, sizes.classes)
    for p in model.parameters():  # cast in place: W₂ stays a transposed view
        p.data = p.data.to(device, dtype)
    return model


# ---------------------------------------------------------------------------- bases
def optimizer_kwargs(base: str) -> dict[str, Any]:
    """Keyword arguments selecting ``base``, with a non-trivial momentum or weight decay where
    the base has one."""
    extra: dict[str, Any] = {"momentum": {"momentum": 0.9}, "adam": {"weight_decay": 0.01},
                             "adamw": {"weight_decay": 0.01}}.get(base, {})
    return {"base": base, **extra}


# ---------------------------------------------------------------------------- optimizer
def run_optimizer(model: nn.Module, task: Sequence[Tensor], backend: str, rule: str,
                  autolr: bool, storage: str, base: str, sizes: CorrectnessSizes,
                  lr: float = 0.05) -> tuple[list[Tensor], list[Any]]:
    """``sizes.steps`` optimizer steps on ``model``; returns the parameters and the stats."""
    from fastngd import NGDiffOptimizer

    xr, yr, xf, yf = task

    def retain() -> Tensor:
        return F.cross_entropy(model(xr), yr)

    def forget() -> Tensor:
        return F.cross_entropy(model(xf), yf)

    opt = NGDiffOptimizer(model.parameters(), lr=lr, rule=rule, backend=backend,
                          autolr=autolr, autolr_every=sizes.gen_every, retain_storage=storage,
                          **optimizer_kwargs(base))
    stats = [opt.step(retain, forget) for _ in range(sizes.steps)]
    return [p.detach() for p in model.parameters()], stats


def _stats_tensors(stats: Sequence[Any]) -> list[Tensor]:
    return [torch.stack([s.lr_scale.double(), s.weight_retain.double(),
                         s.weight_forget.double()]) for s in stats]


def compare_backends(device: torch.device, dtype: torch.dtype, rule: str, autolr: bool,
                     storage: str, base: str, sizes: CorrectnessSizes) -> dict[str, Any]:
    """Triton against torch from one initialisation: parameters and per-step statistics
    (learning-rate scale and weights) after ``sizes.steps`` steps; skips must agree."""
    task = make_task(device, sizes)
    start = make_model(device, dtype, sizes)
    m_tr, m_to = copy.deepcopy(start), copy.deepcopy(start)
    (p_tr, s_tr), launches = count_launches(
        lambda: run_optimizer(m_tr, task, "triton", rule, autolr, storage, base, sizes))
    p_to, s_to = run_optimizer(m_to, task, "torch", rule, autolr, storage, base, sizes)
    tol = tolerance(dtype, optimizer=True)
    params = compare(p_tr, p_to, *tol)
    stats = compare(_stats_tensors(s_tr), _stats_tensors(s_to), *tol)
    skips_agree = [bool(a.skipped) for a in s_tr] == [bool(b.skipped) for b in s_to]
    moved = not bitwise(p_tr, [p.detach() for p in start.parameters()])
    return {"ok": params["ok"] and stats["ok"] and skips_agree and moved and launches > 0,
            "params": params, "stats": stats, "skips_agree": skips_agree, "moved": moved,
            "triton_launches": launches}


def determinism_item(device: torch.device, dtype: torch.dtype, storage: str,
                     sizes: CorrectnessSizes) -> dict[str, Any]:
    """Two identical Triton runs (NGDiff, GeN) must give the same bits. The forward and
    backward passes run with deterministic algorithms (cuBLAS needs
    ``CUBLAS_WORKSPACE_CONFIG``, set for this part by ``gpu_check.py``), so that only the
    optimizer could differ."""
    task = make_task(device, sizes)
    runs = []
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        for _ in range(2):
            model = make_model(device, dtype, sizes)
            params, stats = run_optimizer(model, task, "triton", "ngdiff", True, storage,
                                          "sgd", sizes)
            runs.append((params, _stats_tensors(stats)))
    finally:
        torch.use_deterministic_algorithms(was)
    same = bitwise(runs[0][0], runs[1][0]) and bitwise(runs[0][1], runs[1][1])
    return {"ok": same, "bitwise_identical": same}


# ---------------------------------------------------------------------------- launches
class ParamBag(nn.Module):
    """``count`` parameters of 999 elements: a model whose number of tensors is chosen."""

    def __init__(self, count: int, device: torch.device) -> None:
        super().__init__()
        g = torch.Generator(device="cpu").manual_seed(count)
        self.ps = nn.ParameterList(
            [nn.Parameter(torch.randn(999, generator=g).to(device)) for _ in range(count)])

    def loss(self, target: float) -> Tensor:
        total = sum(((p - target) ** 2).mean() for p in self.ps)
        return total / len(self.ps)  # type: ignore[return-value]


def count_device_work(fn: Callable[[], Any], device: torch.device) -> tuple[str, int]:
    """What ``fn`` puts on the device: CUDA kernels and copies recorded by ``torch.profiler``
    on a GPU, ATen compute operations dispatched on the CPU."""
    if device.type != "cuda":
        from bench._common import count_ops

        return "aten_ops", count_ops(fn)
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize(device)
    return "cuda_kernels", sum(1 for e in prof.events() if e.device_type == DeviceType.CUDA)


def _launches_for(count: int, device: torch.device) -> dict[str, Any]:
    from fastngd import NGDiffOptimizer

    bag = ParamBag(count, device)
    opt = NGDiffOptimizer(bag.parameters(), lr=1e-2, backend="triton", autolr=True,
                          autolr_every=2)

    def grads() -> tuple[Tensor, Tensor]:
        loss_r = bag.loss(0.5)
        loss_r.backward()
        opt.stash_retain_grad(loss_r)
        loss_f = bag.loss(-0.5)
        loss_f.backward()
        return loss_r, loss_f

    def step() -> None:
        loss_r, loss_f = grads()
        opt.step_from_grads(loss_r, loss_f, closure_retain=lambda: bag.loss(0.5))

    step()  # call 0: a GeN step (compiles); call 1 is a fixed step, call 2 a GeN step
    loss_r, loss_f = grads()
    try:
        kind, work = count_device_work(lambda: opt.step_from_grads(loss_r, loss_f), device)
    except Exception as exc:
        kind, work = "device_work", f"not counted: {type(exc).__name__}: {exc}"
        opt.discard_retain_grad()
        opt.zero_grad(set_to_none=True)
    _, gen_launches = count_launches(step)
    loss_r, loss_f = grads()
    _, fixed_launches = count_launches(lambda: opt.step_from_grads(loss_r, loss_f))
    return {"tensors": count, "fixed_step_launches": fixed_launches,
            "gen_step_launches": gen_launches, f"fixed_step_{kind}": work, "work_kind": kind}


def launches_item(device: torch.device, sizes: CorrectnessSizes) -> dict[str, Any]:
    """Triton launches (and device work) per step must not grow with the number of tensors."""
    small, large = (_launches_for(n, device) for n in sizes.launch_tensors)
    kind = small["work_kind"]
    same = {k: small[k] == large[k] for k in ("fixed_step_launches", "gen_step_launches",
                                              f"fixed_step_{kind}")}
    triton_constant = same["fixed_step_launches"] and same["gen_step_launches"]
    return {"ok": triton_constant, "constant": same, "small": small, "large": large,
            "summary": f"fixed step {small['fixed_step_launches']} launches, GeN step "
                       f"{small['gen_step_launches']} ({sizes.launch_tensors[0]} and "
                       f"{sizes.launch_tensors[1]} tensors)"}


# ---------------------------------------------------------------------------- the part
Combo = tuple[str, str, bool, str, torch.dtype]
_SETTINGS = [(gen, storage, dtype) for dtype in (torch.float32, torch.bfloat16)
             for storage in ("exact", "int8") for gen in (True, False)]


#: rules first in line for the covering set (the paper's rule, the elementwise and the
#: per-tensor ones); the others follow in name order.
_FIRST_RULES = ("ngdiff", "sago", "surgery_pcgrad", "surgery_sago", "pcgrad", "gdiff",
                "lossnorm", "surgery_sago_prefer_retain")


def matrix(bases: Sequence[str], rules: Sequence[str]) -> list[Combo]:
    """``(base, rule, GeN, storage, dtype)`` of every optimizer comparison, in the order they
    run: first a covering set, one comparison per base and setting (GeN × storage × dtype):
    round ``k`` gives base ``b`` the setting ``k XOR (7 if b is odd)``, so that neighbours
    in a round differ in every field, and the rules are dealt out (:data:`_FIRST_RULES`
    first) so that each appears with two bases; then every other combination."""
    order = [r for r in _FIRST_RULES if r in rules] + sorted(set(rules) - set(_FIRST_RULES))
    nb, ns = len(bases), len(_SETTINGS)
    first: list[Combo] = []
    for j in range(nb * ns):
        b = j % nb
        setting = _SETTINGS[(j // nb) ^ (ns - 1 if b % 2 else 0)]
        rule = order[(j + j // len(order)) % len(order)]
        first.append((bases[b], rule, *setting))
    done = set(first)
    rest = [(b, r, *s) for s in _SETTINGS for b in bases for r in order
            if (b, r, *s) not in done]
    return first + rest


def combo_name(combo: Combo) -> str:
    base, rule, gen, storage, dtype = combo
    return (f"optimizer/{base}/{rule}/{'gen' if gen else 'fixed'}/{storage}/"
            f"{_DTYPE_NAMES[dtype]}")


def run_matrix(device: torch.device, sizes: CorrectnessSizes, rec: Any, on_error: Any,
               deadline: Optional[float]) -> None:
    """The optimizer comparisons of :func:`matrix` (the first ``sizes.smoke_combos`` in
    smoke mode), stopping when the next one would likely run past ``deadline`` (a
    ``time.time()`` value): an item ``optimizer/coverage`` says how many ran."""
    from fastngd import BASES
    from fastngd.rules import RULES

    combos = matrix(BASES, sorted(RULES))
    if sizes.smoke:
        combos = combos[:sizes.smoke_combos]
    longest = 0.0
    done = 0
    for combo in combos:
        if deadline is not None and time.time() + 2 * longest + 5 > deadline:
            break
        t0 = time.time()
        base, rule, gen, storage, dtype = combo
        rec.run(combo_name(combo), lambda: compare_backends(device, dtype, rule, gen, storage,
                                                            base, sizes), on_error)
        longest = max(longest, time.time() - t0)
        done += 1
    rec.record("optimizer/coverage", {
        "ok": done == len(combos), "run": done, "planned": len(combos),
        "bases": sorted({c[0] for c in combos[:done]}),
        "rules": sorted({c[1] for c in combos[:done]}),
        "summary": f"{done}/{len(combos)} optimizer comparisons run"})


def run_correctness(device: torch.device, smoke: bool, rec: Any,
                    deadline: Optional[float] = None) -> None:
    """Run every item of part 1 into the :class:`~bench._gpu_harness.PartRecorder` ``rec``;
    ``deadline`` (a ``time.time()`` value) bounds the optimizer matrix."""
    from fastngd import BASES

    sizes = CorrectnessSizes(smoke)
    rec.put("bases", list(BASES))
    on_error = lost_context_check(device)
    if device.type == "cuda":  # compile the kernels' specialisations in parallel first
        from bench._gpu_warmup import start_warmers, wait_warmers

        procs = start_warmers(device, max(1, min(8, (os.cpu_count() or 2) // 2)))
        budget = 60.0 if deadline is None else min(60.0, (deadline - time.time()) / 3)
        rec.run("warmup", lambda: wait_warmers(procs, budget))
    for dtype in (torch.float32, torch.bfloat16):
        rec.run(f"kernels/{_DTYPE_NAMES[dtype]}",
                lambda d=dtype: kernels_item(device, d, sizes, smoke), on_error)
    rec.run("launches", lambda: launches_item(device, sizes), on_error)
    for dtype, storage in sizes.determinism:
        rec.run(f"determinism/{_DTYPE_NAMES[dtype]}/{storage}",
                lambda d=dtype, s=storage: determinism_item(device, d, s, sizes), on_error)
    run_matrix(device, sizes, rec, on_error, deadline)
    items = rec.data["items"]
    covered = sorted({k.split("/")[1] for k, v in items.items()
                      if k.startswith("optimizer/") and k != "optimizer/coverage"
                      and v.get("ok")})
    rec.put("bases_covered", covered)
