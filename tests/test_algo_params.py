"""Each algorithm owns its hyperparameters (softac.algos.<name>.params): the CLI shows and accepts them,
config.json records them under algo_params, presets and sweep grids reach them by plain name, a field of
another algorithm is refused with one sentence, and round-2 run directories (those fields at the top level
of config.json) still load, evaluate, export and resume."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from softac import SACConfig, SoftacError, load_agent, resume, train
from softac.algos.registry import REGISTRY
from softac.cli import build_parser
from softac.export import numpy_policy_of
from softac.study import check_grid, parse_grid_flag
from tests.conftest import tiny_config


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "softac.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_every_algorithm_field_is_documented_and_its_default_valid():
    for name, spec in REGISTRY.items():
        if spec.params is None:
            continue
        import dataclasses
        for f in dataclasses.fields(spec.params):
            assert f.metadata.get("help"), f"{name}.{f.name} has no one-line documentation"
        spec.params().validate()  # the authors' defaults pass their own validation


def test_plain_names_reach_the_algorithm_params():
    cfg = SACConfig.build(algo="crossq", policy_delay=2)
    assert cfg.algo_params == {"policy_delay": 2} and cfg.algo_config.policy_delay == 2
    assert cfg.get("policy_delay") == 2 and cfg.get("gamma") == 0.99
    full = cfg.with_algorithm_defaults()
    assert full.algo_params == {"policy_delay": 2, "batch_norm_momentum": 0.99, "renorm_warmup_steps": 100_000}
    assert SACConfig.from_dict(json.loads(full.to_json())) == full


@pytest.mark.parametrize("build, message", [
    (lambda: SACConfig.build(algo="sac", policy_delay=2), "--policy-delay is a setting of crossq, droq and redq, not of sac."),
    (lambda: SACConfig.build(policy_delay=2), "--policy-delay is a setting of crossq, droq and redq; give --algo crossq to use it."),
    (lambda: SACConfig.build(algo="crossq", policy_delay=0), "policy_delay must be a positive integer, got 0."),
    (lambda: SACConfig(algo="crossq").replace(no_such_field=1), "Unknown config field(s) no_such_field."),
])
def test_a_field_of_another_algorithm_or_a_bad_value_is_one_sentence(build, message):
    with pytest.raises(SoftacError) as info:
        build()
    assert str(info.value) == message


def test_cli_refuses_a_field_of_another_algorithm(tmp_path):
    result = run_cli("train", "--algo", "sac", "--policy-delay", "2", "--total-steps", "10", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "softac: error: --policy-delay is a setting of crossq, droq and redq, not of sac."
    assert not (tmp_path / "runs").exists()


def _help(*argv) -> str:
    parser = build_parser(algo=argv[argv.index("--algo") + 1] if "--algo" in argv else None)
    return " ".join(parser._subparsers._group_actions[0].choices["train"].format_help().split())


def test_train_help_with_an_algo_lists_its_own_fields_only():
    crossq = _help("train", "--algo", "crossq")
    assert "crossq: its own hyperparameters (--algo crossq)" in crossq
    assert "--policy-delay INT Critic steps per actor and temperature step (the authors' 3). (default: 3)" in crossq
    assert "--value-learning-rate" not in crossq.split("options:")[1]
    everything = _help("train")
    for flag in ("--policy-delay", "--value-learning-rate", "--target-entropy-scale"):
        assert flag in everything


def test_sweep_grid_reaches_an_algorithm_field():
    name, values = parse_grid_flag("policy-delay=1,3")
    assert (name, values) == ("policy_delay", (1, 3))
    assert check_grid(SACConfig(algo="crossq"), [(name, values)]) == (("policy_delay", (1, 3)),)
    with pytest.raises(SoftacError, match="--policy-delay is a setting of crossq, droq and redq, not of sac"):
        check_grid(SACConfig(algo="sac"), [(name, values)])


def test_a_round_2_run_directory_loads_evaluates_exports_and_resumes(tmp_path):
    """A crossq run whose config.json has the round-2 layout: CrossQ's fields (and the other algorithms')
    at the top level, no algo_params."""
    cfg = tiny_config(tmp_path, algo="crossq", total_steps=200, checkpoint_every=100, eval_every=100,
                      critic_hidden_sizes=(32, 32), policy_delay=2)
    run_dir = train(cfg)[0]
    path = run_dir / "config.json"
    saved = json.loads(path.read_text())
    assert saved["algo_params"] == {"batch_norm_momentum": 0.99, "policy_delay": 2, "renorm_warmup_steps": 100000}
    legacy = {k: v for k, v in saved.items() if k != "algo_params"}
    legacy.update(saved["algo_params"], target_entropy_scale=0.5, value_learning_rate=None)
    path.write_text(json.dumps(legacy, indent=2))

    agent = load_agent(run_dir)
    assert agent.config.algo_config.policy_delay == 2
    obs = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    np.testing.assert_allclose(numpy_policy_of(agent)(obs), agent.act(obs), atol=1e-5)
    assert np.all(np.isfinite(agent.evaluate(episodes=1)))
    resumed = resume([run_dir], total_steps=300)[0]
    assert json.loads((resumed / "config.json").read_text())["total_steps"] == 300
