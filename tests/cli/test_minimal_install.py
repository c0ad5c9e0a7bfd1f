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


def test_imports_help_and_the_error_of_eval(tiny_model: str, tmp_path: Path) -> None:
    """Everything imports and every command's help works; ``fastngd eval`` loads the model
    and the data, and scoring, which needs rouge-score, stops with one line saying so and
    how to install it (one subprocess: each costs seconds of imports)."""
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
        status = main(["eval", "--model", {tiny_model!r}, "--max-examples", "2",
                       "--max-new-tokens", "2"])
        print("exit", status)
    """))
    assert probe.returncode == 0 and "Traceback" not in probe.stderr, probe.stderr[-3000:]
    lines = probe.stdout.strip().splitlines()
    assert lines[-2:] == ["[]", "exit 1"]
    assert "fastngd eval: error: this needs rouge-score" in probe.stderr
    assert "pip install 'fastngd[experiments]'" in probe.stderr
