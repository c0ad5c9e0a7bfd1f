"""Figures of unlearning runs (matplotlib, written as PNG without a display).

* :func:`plot_curves`: ROUGE-L recall on the forget and retain questions and the two losses
  over the steps, one line per method (the NGDiff paper's learning-curve figures);
* :func:`plot_tradeoff`: forget vs retain score, one point per method, with an optional
  frontier (e.g. a GDiff c-sweep) drawn as a line (the NGDiff paper's trade-off figure);
* :func:`plot_autolr`: the GeN learning rate and the gradient norms ‖g_R‖, ‖g_F‖ over the
  steps of one run;
* :func:`plot_evals`: the metrics of the evaluations made during one run
  (``--eval-every``), with the evaluation kept by ``--keep-best`` marked.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["plot_autolr", "plot_curves", "plot_evals", "plot_tradeoff"]


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_curves(
    curves: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
    path: str | Path,
    *,
    title: str = "",
) -> Path:
    """Learning curves of several runs in one 2×2 figure; returns ``path``.

    The loss panels use a symmetric log scale (linear within ±0.01).

    ``curves[name]`` has ``"evals"`` (records with ``step``, ``forget_rouge_l_recall``,
    ``retain_rouge_l_recall``) and ``"history"`` (records with ``step``, ``loss_retain``,
    ``loss_forget``), and optionally ``"best"`` (``{"step": s}``: the evaluation kept by
    ``--keep-best``, marked with a star). Raises ValueError when ``curves`` is empty.
    """
    if not curves:
        raise ValueError("plot_curves: no run to plot")
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True)
    panels = [
        (axes[0, 0], "evals", "forget_rouge_l_recall", "forget ROUGE-L recall (↓)"),
        (axes[0, 1], "evals", "retain_rouge_l_recall", "retain ROUGE-L recall (↑)"),
        (axes[1, 0], "history", "loss_retain", "retain loss L_R"),
        (axes[1, 1], "history", "loss_forget", "forget objective L_F"),
    ]
    for ax, source, key, label in panels:
        for name, run in curves.items():
            rows = [r for r in run.get(source, []) if r.get(key) is not None]
            if rows:
                line = ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=name,
                               marker="o" if source == "evals" else None, markersize=3)
                if source == "evals":
                    best: Any = run.get("best")
                    _mark_best(ax, rows, key, best, line[0].get_color())
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if source == "history":
            ax.set_yscale("symlog", linthresh=1e-2)  # losses span decades, NPO's is negative
    for ax in axes[1]:
        ax.set_xlabel("step")
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def _mark_best(ax: Any, rows: Sequence[Mapping[str, Any]], key: str,
               best: Mapping[str, Any] | None, color: Any) -> None:
    """A star at the best evaluation's value of ``key`` (when it is among ``rows``)."""
    if not best:
        return
    hits = [r for r in rows if r.get("step") == best.get("step")]
    if hits:
        ax.scatter([hits[-1]["step"]], [hits[-1][key]], marker="*", s=140, color=color,
                   edgecolors="black", zorder=5)


def plot_evals(
    evals: Sequence[Mapping[str, Any]],
    path: str | Path,
    *,
    metrics: Sequence[str] | None = None,
    best: Mapping[str, Any] | None = None,
    title: str = "",
) -> Path:
    """The metrics of the evaluations of one run over the steps, one panel each (at most
    six; default: every numeric metric), with the ``best`` evaluation (``{"step": s,
    "selection": text}``) marked by a star and a dashed line; returns ``path``. Raises
    ValueError without evaluations or metrics."""
    if not evals:
        raise ValueError("plot_evals: no evaluation to plot")
    names = list(metrics) if metrics else [
        k for k in evals[0] if k != "step" and isinstance(evals[0][k], (int, float))
        and not isinstance(evals[0][k], bool)
    ]
    names = names[:6]
    if not names:
        raise ValueError("plot_evals: the evaluations hold no numeric metric")
    cols = min(3, len(names))
    rows_n = -(-len(names) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.2 * rows_n), squeeze=False)
    for ax, name in zip(axes.flat, names):
        points = [r for r in evals if isinstance(r.get(name), (int, float))]
        ax.plot([r["step"] for r in points], [r[name] for r in points], marker="o",
                markersize=3, color="tab:blue")
        _mark_best(ax, points, name, best, "gold")
        if best:
            ax.axvline(best["step"], color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    if best:
        fig.suptitle(f"{title}{'  ' if title else ''}best: step {best['step']} "
                     f"({best.get('selection', '')})", fontsize=10)
    elif title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_tradeoff(
    points: Mapping[str, tuple[float, float]],
    path: str | Path,
    *,
    frontier: Sequence[tuple[float, float, str]] | None = None,
    reference: tuple[float, float] | None = None,
    xlabel: str = "forget ROUGE-L recall (↓)",
    ylabel: str = "retain ROUGE-L recall (↑)",
    title: str = "",
) -> Path:
    """Scatter of ``points[name] = (forget score, retain score)``; returns ``path``.

    ``frontier`` is a list of ``(x, y, label)`` joined by a dashed line (sorted by x);
    ``reference`` marks the model before unlearning. Raises ValueError without points.
    """
    if not points:
        raise ValueError("plot_tradeoff: no point to plot")
    fig, ax = plt.subplots(figsize=(6.5, 5))
    if frontier:
        ordered = sorted(frontier)
        ax.plot([p[0] for p in ordered], [p[1] for p in ordered], "--", color="grey",
                marker="s", markersize=4, label="GDiff frontier")
        for x, y, label in ordered:
            ax.annotate(label, (x, y), fontsize=6, color="grey", xytext=(3, -8),
                        textcoords="offset points")
    for name, (x, y) in points.items():
        ax.scatter([x], [y], s=40, label=name, zorder=3)
    if reference is not None:
        ax.scatter([reference[0]], [reference[1]], marker="*", s=120, color="black",
                   label="no unlearning", zorder=4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    if title:
        ax.set_title(title)
    return _save(fig, path)


def plot_autolr(history: Sequence[Mapping[str, Any]], path: str | Path, *, title: str = "") -> Path:
    """The learning rate and the gradient norms over the steps of one run; returns ``path``.

    ``history`` records need ``step``, ``lr``, ``norm_retain`` and ``norm_forget`` (the
    per-step records of :func:`fastngd.unlearn.unlearn`). Raises ValueError when empty.
    """
    if not history:
        raise ValueError("plot_autolr: empty history")
    steps = [h["step"] for h in history]
    fig, (ax_lr, ax_norm) = plt.subplots(1, 2, figsize=(11, 4))
    ax_lr.plot(steps, [h["lr"] for h in history], color="tab:blue")
    updated = [h for h in history if h.get("lr_updated")]
    if updated:
        ax_lr.scatter([h["step"] for h in updated], [h["lr"] for h in updated], s=8,
                      color="tab:orange", label="GeN update accepted", zorder=3)
        ax_lr.legend(fontsize=8)
    ax_lr.set_xlabel("step")
    ax_lr.set_ylabel("learning rate η")
    ax_lr.set_yscale("log")
    ax_lr.grid(alpha=0.3)
    ax_norm.plot(steps, [h["norm_retain"] for h in history], label="‖g_R‖")
    ax_norm.plot(steps, [h["norm_forget"] for h in history], label="‖g_F‖")
    ax_norm.set_xlabel("step")
    ax_norm.set_ylabel("gradient norm")
    ax_norm.set_yscale("log")
    ax_norm.grid(alpha=0.3)
    ax_norm.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
