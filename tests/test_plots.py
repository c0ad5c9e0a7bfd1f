"""The figures are written as PNG files and refuse empty input."""
from __future__ import annotations

from pathlib import Path

import pytest

from fastngd.plots import plot_autolr, plot_curves, plot_tradeoff

_PNG = b"\x89PNG\r\n\x1a\n"


def _history(n: int = 6) -> list[dict]:
    return [{"step": i + 1, "loss_retain": 1.0 / (i + 1), "loss_forget": float(i),
             "lr": 0.01 * (1 + i), "lr_updated": i % 2 == 0, "norm_retain": 1.0 + i,
             "norm_forget": 2.0 + i} for i in range(n)]


def test_curves(tmp_path: Path) -> None:
    evals = [{"step": s, "forget_rouge_l_recall": 1 - s / 6, "retain_rouge_l_recall": 1.0}
             for s in (0, 3, 6)]
    path = plot_curves({"ngdiff": {"evals": evals, "history": _history()},
                        "gdiff-0.5": {"evals": evals[:2], "history": _history(3)}},
                       tmp_path / "sub" / "c.png", title="t")
    assert path.read_bytes().startswith(_PNG)


def test_tradeoff_and_autolr(tmp_path: Path) -> None:
    p = plot_tradeoff({"ngdiff": (0.04, 0.99), "npo": (0.06, 1.0)}, tmp_path / "t.png",
                      frontier=[(0.5, 0.9, "c=0.5"), (0.1, 0.2, "c=0.1")], reference=(1.0, 1.0))
    assert p.read_bytes().startswith(_PNG)
    q = plot_autolr(_history(), tmp_path / "a.png")
    assert q.read_bytes().startswith(_PNG)


def test_empty_inputs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        plot_curves({}, tmp_path / "x.png")
    with pytest.raises(ValueError):
        plot_tradeoff({}, tmp_path / "x.png")
    with pytest.raises(ValueError):
        plot_autolr([], tmp_path / "x.png")


def test_evals_with_the_best_marked(tmp_path: Path) -> None:
    from fastngd.plots import plot_evals

    evals = [{"step": s, "forget_rouge_l_recall": 1 - s / 10, "retain_rouge_l_recall": 1.0,
              "note": "x"} for s in (0, 2, 4)]
    best = {"step": 4, "selection": "forget_rouge_l_recall:min"}
    assert plot_evals(evals, tmp_path / "e.png", best=best).read_bytes().startswith(_PNG)
    curves = {"ngdiff": {"evals": evals, "history": _history(), "best": best}}
    assert plot_curves(curves, tmp_path / "c.png").read_bytes().startswith(_PNG)
    with pytest.raises(ValueError):
        plot_evals([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="numeric"):
        plot_evals([{"step": 0, "note": "x"}], tmp_path / "x.png")
