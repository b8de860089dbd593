"""The command line: smoke runs of every command, and each bad input -> one sentence, exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from softac.cli import build_parser, config_from_args, main
from softac.config import SACConfig

TINY = ["--total-steps", "300", "--learning-starts", "100", "--hidden-sizes", "32,32", "--batch-size", "32",
        "--eval-every", "150", "--eval-episodes", "2", "--no-progress", "--no-tensorboard"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-m", "softac.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def assert_clean_error(result_code: int, stderr: str, fragment: str) -> None:
    assert result_code == 2
    assert "Traceback" not in stderr
    lines = [line for line in stderr.strip().splitlines() if line.startswith("softac: error:")]
    assert len(lines) == 1 and fragment in lines[0], stderr


def test_train_eval_plot_resume_end_to_end(tmp_path):
    result = run_cli("train", "--env", "Pendulum-v1", *TINY, "--run-root", "runs", "--run-name", "smoke", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "runs" / "smoke"
    assert {"config.json", "metrics.csv", "checkpoint", "learning_curve.png"} <= {p.name for p in run_dir.iterdir()}
    assert "evaluation return mean" in result.stdout

    result = run_cli("eval", str(run_dir), "--episodes", "3", "--seed", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    figures = dict(line.split() for line in result.stdout.strip().splitlines())
    assert figures["episodes"] == "3" and float(figures["mean"]) < 0 and float(figures["std"]) >= 0

    result = run_cli("train", "--resume", str(run_dir), "--total-steps", "400", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    result = run_cli("plot", str(run_dir), "--out", "curve.png", cwd=tmp_path)
    assert result.returncode == 0 and (tmp_path / "curve.png").stat().st_size > 0


def test_every_config_field_is_a_flag_and_presets_are_overridden():
    args = build_parser().parse_args(["train", "--preset", "pendulum", "--learning-rate", "0.002", "--seeds", "0,1,2",
                                      "--alpha", "0.2", "--target-entropy", "-3", "--gradient-steps", "2",
                                      "--train-every", "2", "--buffer-size", "5000", "--tau", "0.01",
                                      "--gamma", "0.98", "--batch-size", "64"])
    cfg = config_from_args(args)
    assert cfg.env == "Pendulum-v1" and cfg.learning_starts == 1000  # from the preset
    assert cfg.learning_rate == 0.002 and cfg.seeds == (0, 1, 2) and cfg.alpha == 0.2
    assert (cfg.target_entropy, cfg.gradient_steps, cfg.train_every, cfg.buffer_size) == (-3.0, 2, 2, 5000)
    assert (cfg.tau, cfg.gamma, cfg.batch_size) == (0.01, 0.98, 64)
    assert config_from_args(build_parser().parse_args(["train", "--hidden-sizes", "64,32"])).hidden_sizes == (64, 32)


def _train_help() -> str:
    """`softac train --help` with argparse's line wrapping undone (runs of whitespace -> one space)."""
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    return " ".join(help_text.split())


@pytest.mark.parametrize("documented", [
    "--learning-rate FLOAT Adam learning rate of every network and the temperature (unless overridden below); "
    "default the algorithm's. (default: 0.0003; crossq 0.001, simbav2 0.0001)",
    "--seeds N,N,... Several seeds trained at once in one process (a leading seed axis, one vmapped update). "
    "(default: None)",
    "--hidden-sizes N,N,... Hidden layer widths of the actor (and of the critics unless critic_hidden_sizes is set) "
    "(ReLU). (default: (256, 256))",
    "--tau FLOAT Polyak coefficient of the target critics: target <- tau*online + (1-tau)*target. (default: 0.005)",
    "--learn-alpha, --no-learn-alpha",
])
def test_train_help_documents_flags_with_their_help_and_defaults(documented):
    assert documented in _train_help()


def test_train_help_shows_each_fields_docstring_from_the_config_metadata():
    import dataclasses

    from softac.config import SACConfig
    help_text = _train_help()
    from softac.algos.registry import REGISTRY
    documented = {f.name: " ".join(f.metadata["help"].split()) for f in dataclasses.fields(SACConfig)
                  if f.name != "algo_params"}  # algo_params is set through each algorithm's own flags:
    for spec in REGISTRY.values():
        for f in dataclasses.fields(spec.params) if spec.params else ():
            documented[f.name] = " ".join(f.metadata["help"].split())
    assert documented["gamma"] == "Discount factor."
    for name, text in documented.items():
        assert text, f"SACConfig.{name} has no help text"
        assert text in help_text, f"the help of --{name.replace('_', '-')} is not SACConfig.{name}'s documentation"


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--env", "Pendulm-v1"], "did you mean Pendulum-v1"),
    (["train", "--env", "softac-test/ImageObs-v0"], "flat (1-D) Box observation space"),
    (["train", "--env", "CartPole-v1", "--algo", "sac"], "use --algo sac-discrete"),
    (["train", "--env", "Pendulum-v1", "--algo", "sac-discrete"], "continuous (Box) action space, which --algo sac-discrete does not handle"),
    (["train", "--env", "CartPole-v1", "--target-entropy-scale", "1.5"], "target_entropy_scale must be in (0, 1)"),
    (["train", "--env", "softac-test/UnboundedAction-v0"], "finite action bounds"),
    (["train", "--learning-rate", "0"], "learning_rate must be positive"),
    (["train", "--learning-rate=-1e-3"], "learning_rate must be positive"),
    (["train", "--batch-size", "0"], "batch_size must be a positive integer"),
    (["train", "--batch-size", "512", "--buffer-size", "256"], "cannot be larger than buffer_size"),
    (["train", "--tau", "0"], "tau must be in (0, 1]"),
    (["train", "--tau", "1.5"], "tau must be in (0, 1]"),
    (["train", "--gamma", "1"], "gamma must be in [0, 1)"),
    (["train", "--gamma", "-0.1"], "gamma must be in [0, 1)"),
    (["eval", "no/such/run"], "does not exist"),
])
def test_bad_input_is_one_sentence_and_status_2(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(argv + (["--no-progress"] if argv[0] == "train" else []))
    assert_clean_error(code, capsys.readouterr().err, fragment)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_resume_of_a_directory_without_checkpoint_fails_cleanly(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert_clean_error(main(["train", "--resume", str(tmp_path / "empty")]), capsys.readouterr().err,
                       "not a softac run directory")
    run = tmp_path / "broken"
    run.mkdir()
    (run / "config.json").write_text('{"env": "Pendulum-v1"}')
    assert_clean_error(main(["train", "--resume", str(run), "--total-steps", "10"]), capsys.readouterr().err,
                       "holds no checkpoint")
    assert_clean_error(main(["train", "--resume", str(run), "--learning-rate", "0.1"]), capsys.readouterr().err,
                       "cannot be changed")


def test_non_finite_reward_or_observation_exits_2_and_keeps_the_checkpoint(tmp_path, capsys):
    argv = ["train", "--env", "softac-test/NaNAfter-v0", "--total-steps", "400", "--learning-starts", "50",
            "--hidden-sizes", "16", "--batch-size", "16", "--checkpoint-every", "100", "--eval-every", "0",
            "--run-root", str(tmp_path), "--run-name", "nan", "--no-progress", "--no-tensorboard"]
    assert_clean_error(main(argv), capsys.readouterr().err, "env step 150")
    assert (tmp_path / "nan" / "checkpoint" / "manifest.json").exists()


def test_bad_flag_value_is_an_argparse_error_with_status_2(tmp_path):
    result = run_cli("train", "--batch-size", "many", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "invalid" in result.stderr


def test_tabular_command_prints_the_soft_policy_iteration_table(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from softac import tabular

    alpha, gamma, seed = 0.5, 0.9, 3
    out = tmp_path / "spi.png"
    assert main(["tabular", "--mdp", "random", "--alpha", str(alpha), "--gamma", str(gamma), "--seed", str(seed),
                 "--plot", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    dashes = next(i for i, line in enumerate(lines) if set(line.replace(" ", "")) == {"-"})
    rows = [[float(x) for x in line.split()] for line in lines[dashes + 1:]]
    assert [int(r[0]) for r in rows] == list(range(len(rows)))

    # The same MDP, solved here without the report: `--mdp random --seed 3` is random_mdp(10, 4, 3).
    P, R = tabular.random_mdp(10, 4, seed)
    S, A = R.shape
    _, _, history = tabular.soft_policy_iteration(P, R, gamma, alpha)
    assert len(rows) == len(history) and f"{len(history)} iterations" in lines[0]
    assert f"S={S}, A={A}, gamma={gamma:g}, alpha={alpha:g}" in lines[0]
    # Iteration 0 is the uniform policy: V = (I - gamma P_u)^-1 (R_u + alpha log A), P_u and R_u averaged over actions.
    v_uniform = np.linalg.solve(np.eye(S) - gamma * P.mean(axis=1), R.mean(axis=1) + alpha * np.log(A))
    assert rows[0][1] == pytest.approx(v_uniform.mean(), rel=1e-9)
    # The last iteration is the soft optimum: V*(s) = alpha logsumexp(Q*(s, .) / alpha), Q* from soft value iteration.
    q_star = tabular.soft_value_iteration(P, R, gamma, alpha)
    v_star = alpha * np.log(np.exp(q_star / alpha).sum(axis=1))
    assert rows[-1][1] == pytest.approx(v_star.mean(), rel=1e-9)
    assert rows[-1][2] < 1e-10 and rows[-1][3] < 1e-9  # policy change and sup-norm error at convergence
    # Lemma 2: each improvement step never lowers the soft value (up to the 10 printed digits).
    assert all(later >= earlier - 1e-8 for earlier, later in zip([r[1] for r in rows], [r[1] for r in rows][1:]))

    assert out.stat().st_size > 0
    with Image.open(out) as image:
        assert image.format == "PNG"
        width, height = image.size
        image.load()  # decodes the whole file: a truncated PNG fails here
    assert width > height > 0


@pytest.mark.parametrize("text, fragment", [
    ("[config]\nlearning_rate = 1e-3\nnot_a_field = 1\n", "Unknown config field(s) not_a_field"),
    ("[config]\nlearning_rate = -1.0\n", "learning_rate must be positive"),
    ("learning_rate = 1e-3\n", "has no [config] table"),
    ("[config\n", "is not valid TOML"),
])
def test_bad_preset_file_is_one_sentence(tmp_path, capsys, text, fragment):
    path = tmp_path / "preset.toml"
    path.write_text(text)
    code = main(["train", "--preset-file", str(path), "--run-root", str(tmp_path / "runs")])
    assert_clean_error(code, capsys.readouterr().err, fragment)
    assert not (tmp_path / "runs").exists()


def test_preset_file_round_trips_a_config_and_flags_override_it(tmp_path):
    from softac.config import preset_file_text, preset_from_file

    cfg = SACConfig.build(algo="tqc", env="Hopper-v5", learning_rate=1e-4, hidden_sizes=(64, 64), n_quantiles=10,
                          tensorboard=False, seeds=(0, 1), run_root="elsewhere")
    path = tmp_path / "best.toml"
    path.write_text(preset_file_text(cfg, ("a comment",)))
    # The run's own fields (seeds, run_root) are left out; everything else comes back.
    assert preset_from_file(path) == cfg.replace(seeds=None, run_root=SACConfig().run_root)
    args = build_parser().parse_args(["train", "--preset-file", str(path), "--learning-rate", "3e-4"])
    assert config_from_args(args).learning_rate == 3e-4 and config_from_args(args).get("n_quantiles") == 10
