"""`softac --help`, `softac train --help` and every argument error come back without importing JAX.

Each case runs `softac.cli.main` in a fresh interpreter and then looks at sys.modules: the command line
must answer these from the config and the registry alone (no jax, flax, optax, gymnasium, ...), so
it answers at once. The light modules themselves import nothing heavy at module level.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("jax", "flax", "optax", "gymnasium", "numpy", "matplotlib", "ray", "rich", "tensorboardX")

MAIN_THEN_MODULES = """
import io, json, sys, contextlib
from softac.cli import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
        status = main(sys.argv[1:])
    except SystemExit as exc:
        status = exc.code
print(json.dumps({"status": status, "stdout": out.getvalue(), "stderr": err.getvalue(),
                  "heavy": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


def run_main(*argv: str) -> dict:
    result = subprocess.run([sys.executable, "-c", MAIN_THEN_MODULES, *argv], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["train", "--algo", "crossq", "--help"],
                                  ["sweep", "--help"], ["eval", "--help"]])
def test_help_imports_nothing_heavy(argv):
    outcome = run_main(*argv)
    assert outcome["status"] == 0 and "usage: softac" in outcome["stdout"]
    assert outcome["heavy"] == []


@pytest.mark.parametrize("argv, sentence", [
    (["train", "--learning-rate", "0"], "softac: error: learning_rate must be positive, got 0.0."),
    (["train", "--total-steps", "x"], "softac: error: argument --total-steps: invalid int value: 'x'"),
    (["train", "--no-such-flag"], "softac: error: unrecognized arguments: --no-such-flag"),
    (["train", "--algo", "no-such-algo"], "softac: error: "),
    (["train", "--algo", "sac", "--policy-delay", "2"], "softac: error: "),
    (["train", "--resume", "runs/x", "--gamma", "0.9"], "softac: error: --resume continues a run with its saved "
                                                        "config; --gamma cannot be changed"),
    (["eval", "runs/x", "--episodes", "0"], "softac: error: --episodes must be positive, got 0."),
    (["bench", "--seeds", "0"], "softac: error: --seeds must be a positive number of seeds, got 0."),
    (["bench", "--algos", "nope"], "softac: error: --algos must name algorithms among"),
])
def test_argument_errors_are_one_sentence_without_jax(argv, sentence):
    outcome = run_main(*argv)
    assert outcome["status"] == 2, outcome
    lines = outcome["stderr"].strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(sentence), outcome["stderr"]
    assert "jax" not in outcome["heavy"], outcome["heavy"]
    assert outcome["heavy"] == []


def light_modules() -> list[str]:
    """The modules the command line needs before it runs a command: config, registry, fields, errors and
    every algorithm's params module."""
    algos = Path(__file__).resolve().parent.parent / "softac" / "algos"
    params = sorted(f"softac.algos.{p.parent.name}.params" for p in algos.glob("*/params.py"))
    return ["softac", "softac.cli", "softac.config", "softac.algos.registry", "softac.algos.spec",
            "softac.algos.params", "softac.fields", "softac.errors", *params]


@pytest.mark.parametrize("module", light_modules())
def test_light_modules_import_nothing_heavy(module):
    script = f"import sys, {module}; print([m for m in {HEAVY!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_public_names_load_on_first_use():
    script = ("import sys, softac; names = dir(softac); before = 'jax' in sys.modules; from softac import train; "
              "print(before, train.__module__, softac.SACConfig.__name__, set(softac.__all__) <= set(names))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "softac.train", "SACConfig", "True"]


def test_softac_train_stays_the_function_once_its_module_is_imported():
    # The import system sets a submodule as its package's attribute: softac.train must stay the function.
    script = ("import sys, softac.cli, softac.train; import softac; from softac import train; "
              "print(train is softac.train is sys.modules['softac.train'].train, callable(train))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_the_public_names_are_the_documented_ones():
    import softac

    assert softac.__all__ == ["Agent", "Callback", "EvaluationEvent", "PRESETS", "SACConfig", "SoftacError",
                              "TrainingInterrupted", "load_agent", "preset", "resume", "resume_sweep", "resume_tune", "sweep",
                              "train", "tune"]
    assert set(softac.__all__) <= set(dir(softac))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        softac.nope
