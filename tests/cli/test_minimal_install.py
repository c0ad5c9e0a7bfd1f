"""The package without the experiment-only packages (rouge-score, scipy, scikit-learn,
datasets, matplotlib; e.g. a GPU machine's image): the optimizer, the commands and
``fastngd.eval`` import, and a command that does need one of them says which, in one line
(``fastngd unlearn`` without them: ``tests/bench/test_gpu_check.py``)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

HIDDEN = ("rouge_score", "scipy", "sklearn", "datasets", "matplotlib")

_BLOCKER = textwrap.dedent(f"""
    import sys
    for _name in {list(HIDDEN)!r}:
        sys.modules[_name] = None  # 'import _name' now raises ModuleNotFoundError
""")


def _run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_BLOCKER)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))
    env = dict(os.environ, PYTHONPATH=path)
    return subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_imports_and_help_need_no_experiment_package(tmp_path: Path) -> None:
    probe = _run(tmp_path, "-c", textwrap.dedent(f"""
        import sys
        try:
            import scipy
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit("the blocker did not hide scipy")
        import fastngd, fastngd.cli, fastngd.eval, fastngd.data, fastngd.unlearn.job
        import fastngd.models.finetune, fastngd.reproduce.evaluation, fastngd.integrations
        from fastngd.cli import main
        for command in ("eval", "finetune", "unlearn"):
            try:
                main([command, "--help"])
            except SystemExit as exc:
                assert exc.code == 0, command
        print([m for m in {list(HIDDEN)!r} if sys.modules.get(m) is not None])
    """))
    assert probe.returncode == 0, probe.stderr[-3000:]
    assert probe.stdout.strip().splitlines()[-1] == "[]"


def test_eval_names_the_missing_package(tiny_model: str, tmp_path: Path) -> None:
    """Loading the model and the data works; scoring needs rouge-score, and the one-line
    error says so and how to install it."""
    proc = _run(tmp_path, "-m", "fastngd.cli", "eval", "--model", tiny_model,
                "--max-examples", "2", "--max-new-tokens", "2")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "fastngd eval: error: this needs rouge-score" in proc.stderr
    assert "pip install 'fastngd[experiments]'" in proc.stderr
