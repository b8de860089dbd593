"""softac export: for every registered algorithm, the ONNX model (in onnxruntime) and the npz file (in
NumpyPolicy) act exactly as the loaded agent; NumpyPolicy runs without JAX from its file alone; bad
input is one sentence and exit status 2, and nothing of a run is ever overwritten."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from softac import load_agent, train
from softac.algos.registry import REGISTRY
from softac.cli import main
from softac.export import NumpyPolicy, numpy_policy_of
from tests.conftest import tiny_config

ALGOS = sorted(REGISTRY)
SOFTAC_DIR = Path(__file__).resolve().parents[1] / "softac"
ATOL = 1e-5


def env_of(algo: str) -> str:
    return "CartPole-v1" if REGISTRY[algo].discrete else "Pendulum-v1"


@pytest.fixture(scope="module")
def run_of(tmp_path_factory):
    """algo -> the run directory of a tiny run of it (trained once per module, on first use), with one gradient
    step per env step whatever the algorithm's default: what export must reproduce does not depend on how many."""
    root, runs = tmp_path_factory.mktemp("export"), {}

    def run(algo: str) -> Path:
        if algo not in runs:
            cfg = tiny_config(root, algo=algo, env=env_of(algo), run_name=algo, total_steps=300, learning_starts=100,
                              critic_hidden_sizes=(32, 32), gradient_steps=1, eval_every=0)
            runs[algo] = train(cfg)[0]
        return runs[algo]

    return run


def random_observations(obs_dim: int, n: int = 1000, seed: int = 1) -> np.ndarray:
    return np.clip(np.random.default_rng(seed).normal(0.0, 2.0, (n, obs_dim)), -10.0, 10.0).astype(np.float32)


def export(run_dir: Path, fmt: str, out: Path, capsys) -> None:
    code = main(["export", str(run_dir), "--format", fmt, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{out}: ") and " policy of " in lines[0], captured.out


def assert_same_actions(got: np.ndarray, want: np.ndarray, discrete: bool) -> float:
    """The largest difference (0 for Discrete actions, which must be equal)."""
    assert got.shape == want.shape
    if discrete:
        np.testing.assert_array_equal(got, want)
        return 0.0
    np.testing.assert_allclose(got, want, rtol=0, atol=ATOL)
    return float(np.max(np.abs(got - want)))


@pytest.mark.parametrize("algo", ALGOS)
def test_onnx_and_npz_exports_act_as_the_loaded_agent(run_of, algo, tmp_path, capsys):
    import onnxruntime

    run_dir = run_of(algo)
    agent = load_agent(run_dir)
    discrete = REGISTRY[algo].discrete
    obs = random_observations(agent.algorithm.obs_dim)
    want = agent.act(obs, deterministic=True)

    export(run_dir, "npz", tmp_path / "policy.npz", capsys)
    policy = NumpyPolicy.load(tmp_path / "policy.npz")
    assert_same_actions(policy(obs), want, discrete)
    single = policy(obs[0])
    assert (single == want[0]) if discrete else np.allclose(single, want[0], rtol=0, atol=ATOL)

    out = run_dir / "policy.onnx"  # beside the run's files: allowed, as is replacing an earlier export
    export(run_dir, "onnx", out, capsys)
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (obs_input,) = session.get_inputs()
    assert obs_input.name == "obs" and isinstance(obs_input.shape[0], str) and obs_input.shape[1] == obs.shape[1]
    assert_same_actions(session.run(None, {"obs": obs})[0], want, discrete)
    one_by_one = np.concatenate([session.run(None, {"obs": obs[i:i + 1]})[0] for i in range(20)])
    assert_same_actions(one_by_one, want[:20], discrete)


def test_crossq_export_uses_the_trained_running_statistics(run_of, tmp_path, capsys):
    run_dir = run_of("crossq")
    agent = load_agent(run_dir)
    stats = agent.policy["batch_stats"]["NormalisedMLP_0"]
    for layer in stats.values():  # training moved every layer's statistics away from the initial (0, 1)
        assert np.max(np.abs(np.asarray(layer["mean"]))) > 1e-2 or np.max(np.abs(np.asarray(layer["var"]) - 1)) > 1e-2

    export(run_dir, "npz", tmp_path / "policy.npz", capsys)
    policy = NumpyPolicy.load(tmp_path / "policy.npz")
    norms = [layer for layer in policy.layers if layer["kind"] == "batch_norm"]
    assert len(norms) == len(stats) == len(agent.config.hidden_sizes) + 1
    obs = random_observations(3)
    exported = policy(obs)
    for layer in norms:  # the same network with the initial statistics acts differently
        layer["mean"], layer["var"] = np.zeros_like(layer["mean"]), np.ones_like(layer["var"])
    assert np.max(np.abs(policy(obs) - exported)) > 1e-3


BLOCK_JAX = """
import importlib.abc, sys

class BlockJax(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("jax", "jaxlib", "flax", "optax"):
            raise ImportError(f"{name} is blocked in this test")

sys.meta_path.insert(0, BlockJax())
"""


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_JAX + textwrap.dedent(code)], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_numpy_policy_file_runs_alone_without_jax(run_of, tmp_path, capsys):
    (tmp_path / "numpy_policy.py").write_bytes((SOFTAC_DIR / "numpy_policy.py").read_bytes())  # the file alone
    expected = {}
    for algo in ("crossq", "sac-discrete"):
        export(run_of(algo), "npz", tmp_path / f"{algo}.npz", capsys)
        expected[algo] = load_agent(run_of(algo)).act(random_observations(4 if algo == "sac-discrete" else 3))
    result = run_python("""
        import numpy as np
        from numpy_policy import NumpyPolicy

        for algo, obs_dim in (("crossq", 3), ("sac-discrete", 4)):
            obs = np.clip(np.random.default_rng(1).normal(0.0, 2.0, (1000, obs_dim)), -10.0, 10.0).astype(np.float32)
            np.save(f"{algo}-actions.npy", NumpyPolicy.load(f"{algo}.npz")(obs))
        assert not any(m.split(".")[0] in ("jax", "flax", "softac") for m in sys.modules)
    """, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_same_actions(np.load(tmp_path / "crossq-actions.npy"), expected["crossq"], discrete=False)
    assert_same_actions(np.load(tmp_path / "sac-discrete-actions.npy"), expected["sac-discrete"], discrete=True)


def test_export_module_imports_no_jax_at_module_level(tmp_path):
    # softac/__init__.py imports JAX; with it bypassed, softac.export and its NumpyPolicy must import without JAX.
    result = run_python(f"""
        import types
        package = types.ModuleType("softac")
        package.__path__ = [{str(SOFTAC_DIR)!r}]
        sys.modules["softac"] = package
        import softac.export
        assert softac.export.NumpyPolicy.__name__ == "NumpyPolicy"
        assert "jax" not in sys.modules
    """, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------------ bad input
def assert_clean_error(code: int, stderr: str, fragment: str) -> None:
    assert code == 2
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("softac: error:") and fragment in lines[0], stderr


def test_a_directory_that_is_no_run_or_has_no_checkpoint_is_one_sentence(run_of, tmp_path, capsys):
    argv = ["--format", "npz", "--out", str(tmp_path / "policy.npz")]
    assert_clean_error(main(["export", str(tmp_path / "nowhere"), *argv]), capsys.readouterr().err, "does not exist")
    assert_clean_error(main(["export", str(tmp_path), *argv]), capsys.readouterr().err, "not a softac run directory")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_bytes((run_of("sac") / "config.json").read_bytes())  # a run without its checkpoint
    assert_clean_error(main(["export", str(run), *argv]), capsys.readouterr().err, "holds no checkpoint")
    assert not (tmp_path / "policy.npz").exists()


def test_an_unknown_format_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(tmp_path), "--format", "tflite", "--out", str(tmp_path / "p")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "invalid choice: 'tflite'" in err


def test_a_missing_optional_dependency_names_the_extra(run_of, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "jax2onnx", None)  # `import jax2onnx` now fails as if not installed
    code = main(["export", str(run_of("sac")), "--format", "onnx", "--out", str(tmp_path / "policy.onnx")])
    assert_clean_error(code, capsys.readouterr().err, 'pip install "softac[export]"')
    assert not (tmp_path / "policy.onnx").exists()


@pytest.mark.parametrize("where, fragment", [
    ("a directory", "is a directory"),
    ("under a file", "is not a directory"),
    ("in the checkpoint", "inside the checkpoint directory"),
    ("over config.json", "Refusing to overwrite"),
])
def test_an_output_path_that_is_refused_is_one_sentence_and_leaves_the_run_alone(run_of, tmp_path, capsys, where,
                                                                                   fragment):
    run_dir = run_of("sac")
    (tmp_path / "file").write_text("x")
    out = {"a directory": tmp_path, "under a file": tmp_path / "file" / "policy.npz",
           "in the checkpoint": run_dir / "checkpoint" / "policy.npz", "over config.json": run_dir / "config.json"}[where]
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    code = main(["export", str(run_dir), "--format", "npz", "--out", str(out)])
    assert_clean_error(code, capsys.readouterr().err, fragment)
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_a_failed_write_keeps_the_earlier_export_and_leaves_no_temporary_file(run_of, tmp_path, capsys, monkeypatch):
    import softac.export

    run_dir, out = run_of("sac"), tmp_path / "policy.npz"
    export(run_dir, "npz", out, capsys)
    export(run_dir, "npz", out, capsys)  # an earlier export is replaced
    earlier = out.read_bytes()

    def disk_full(path, data):
        Path(path).write_bytes(data[:10])
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(softac.export, "write_bytes_durably", disk_full)
    code = main(["export", str(run_dir), "--format", "npz", "--out", str(out)])
    assert_clean_error(code, capsys.readouterr().err, "No space left on device")
    assert out.read_bytes() == earlier and sorted(p.name for p in tmp_path.iterdir()) == ["policy.npz"]


def test_numpy_policy_of_a_loaded_agent_needs_no_file(run_of):
    agent = load_agent(run_of("sac"))
    obs = random_observations(3, n=50)
    assert_same_actions(numpy_policy_of(agent)(obs), agent.act(obs), discrete=False)
