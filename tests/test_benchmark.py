"""The benchmark command: report from real runs, resume after interruption, skip finished runs,
one environment's failure does not lose the others, sections regenerate in place."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import tomllib
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from softac.learning_curves import get_suite, run_suite
from softac.checkpoint import checkpoint_step
from softac.cli import main
from softac.config import SACConfig, preset, validate
from softac.envs import check_env_id
from softac.evaluate import read_run_config
from softac.logger import read_metrics
from tests.test_cli import assert_clean_error


def test_smoke_suite_writes_table_plots_and_raw_metrics(tmp_path):
    docs = tmp_path / "docs" / "benchmarks.md"
    report = run_suite(get_suite("smoke"), out_root=tmp_path / "runs", docs=docs)
    text = docs.read_text()
    assert "## Suite `smoke`" in text and "| Pendulum-v1 | 600 |" in text and "-1,500 to -1,000" in text
    assert "Steps / wall time to a mean evaluation return of -1500" in text
    assert (tmp_path / "docs" / "benchmarks" / "smoke" / "Pendulum-v1.png").stat().st_size > 0
    for seed in (0, 1):
        raw = tmp_path / "docs" / "benchmarks" / "smoke" / "Pendulum-v1" / f"seed{seed}.csv"
        assert raw.read_text().startswith("env_step,")
    measured = report["figures"]["Pendulum-v1"]["at"][600]
    assert measured[2] == 2 and measured[0] < 0  # two seeds evaluated at step 600
    # The IQM of two seeds is their mean (rliable's trimmed mean keeps half of each); the interval holds both.
    finals = [r["eval_return_mean"] for k in (0, 1) for r in read_metrics(tmp_path / "runs" / "smoke" / f"Pendulum-v1__seed{k}")
              if r["env_step"] == 600 and r["eval_return_mean"] is not None]
    iqm, low, high = measured[3]
    assert iqm == pytest.approx(np.mean(finals)) and low == pytest.approx(min(finals)) and high == pytest.approx(max(finals))
    assert "| IQM [95% bootstrap CI] |" in text


def test_interrupted_benchmark_continues_and_finished_runs_are_skipped(tmp_path, capsys):
    runs, docs = tmp_path / "runs", tmp_path / "benchmarks.md"
    run_suite(get_suite("smoke", total_steps=400), out_root=runs, docs=docs)  # "interrupted" at 400
    run_dir = runs / "smoke" / "Pendulum-v1__seed0"
    evals_before = [r for r in read_metrics(run_dir) if r["eval_return_mean"] is not None]
    assert checkpoint_step(run_dir) == 400
    run_suite(get_suite("smoke"), out_root=runs, docs=docs)
    assert "continuing from env step 400" in capsys.readouterr().out
    evals_after = [r for r in read_metrics(run_dir) if r["eval_return_mean"] is not None]
    assert evals_after[:2] == evals_before and [r["env_step"] for r in evals_after] == [200, 400, 600]
    checkpoint_before = (run_dir / "checkpoint" / "manifest.json").stat().st_mtime_ns
    run_suite(get_suite("smoke"), out_root=runs, docs=docs)
    assert "finished earlier" in capsys.readouterr().out
    assert (run_dir / "checkpoint" / "manifest.json").stat().st_mtime_ns == checkpoint_before


def test_a_failing_environment_does_not_lose_the_others(tmp_path, capsys):
    docs = tmp_path / "benchmarks.md"
    code = main(["benchmark", "--suite", "smoke", "--envs", "softac-test/NaNAfter-v0,Pendulum-v1",
                 "--total-steps", "400", "--out-root", str(tmp_path / "runs"), "--docs", str(docs)])
    assert code == 2
    text = docs.read_text()
    assert "The last run FAILED: SoftacError: The environment of seed 0 returned a non-finite" in text
    assert "| Pendulum-v1 | 400 |" in text
    assert "FAILED" in capsys.readouterr().out


def test_environments_run_separately_keep_each_others_blocks(tmp_path):
    # e.g. one MuJoCo environment per session: each run regenerates its own block and keeps the others.
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- suite:other:start -->\nkeep me\n<!-- suite:other:end -->\n")
    runs = tmp_path / "runs"
    run_suite(get_suite("smoke", total_steps=200), out_root=runs, docs=docs)
    run_suite(get_suite("smoke", envs=("MountainCarContinuous-v0",), total_steps=200), out_root=runs, docs=docs)
    run_suite(get_suite("smoke", total_steps=200), out_root=runs, docs=docs)  # regenerate the first again
    text = docs.read_text()
    assert "keep me" in text and text.count("## Suite `smoke`") == 1
    assert text.count("### Pendulum-v1") == 1 and text.count("### MountainCarContinuous-v0") == 1
    assert text.index("## Suite `smoke`") < text.index("### Pendulum-v1") < text.index("### MountainCarContinuous-v0")


USER_SUITE = """
description = "A suite of the user's own."
envs = ["Pendulum-v1"]
total_steps = 400
seeds = [3]
eval_every = 200
eval_episodes = 2
preset = "paper"

[config]
learning_starts = 200
hidden_sizes = [16, 16]
batch_size = 16
tensorboard = false

[references.Pendulum-v1]
400 = -1234
"""


def test_a_suite_is_a_toml_file_the_user_can_write(tmp_path, capsys):
    suite_file = tmp_path / "my-suite.toml"
    suite_file.write_text(USER_SUITE)
    docs, runs = tmp_path / "benchmarks.md", tmp_path / "runs"
    assert main(["benchmark", "--suite", str(suite_file), "--out-root", str(runs), "--docs", str(docs)]) == 0
    text = docs.read_text()
    assert f"`softac benchmark --suite {suite_file}`" in text and "A suite of the user's own." in text
    assert "| Pendulum-v1 | 400 |" in text and "| -1,234 |" in text and "seeds 3," in text
    config = read_run_config(runs / "my-suite" / "Pendulum-v1")  # one seed: no __seed suffix
    assert config.hidden_sizes == (16, 16) and config.batch_size == 16 and config.total_steps == 400


BUILT_IN_SUITE_FILES = sorted(Path(str(files("softac") / "suites")).glob("*.toml"))
# The fields a suite's run sets itself, whatever its preset and [config] say.
SET_BY_THE_SUITE = {"env", "total_steps", "seeds", "seed", "eval_every", "eval_episodes", "checkpoint_every",
                    "log_every", "run_root", "run_name", "progress", "print_evaluations"}


def test_every_built_in_suite_file_is_offered_by_name(tmp_path, capsys):
    assert BUILT_IN_SUITE_FILES, "no softac/suites/*.toml found"
    code = main(["benchmark", "--suite", "no-such-suite", "--out-root", str(tmp_path / "runs"),
                 "--docs", str(tmp_path / "b.md")])
    names = ", ".join(path.stem for path in BUILT_IN_SUITE_FILES)
    assert_clean_error(code, capsys.readouterr().err, f"choose one of {names} or give the path")


@pytest.mark.parametrize("suite_file", BUILT_IN_SUITE_FILES, ids=lambda path: path.stem)
def test_a_built_in_suite_loads_as_its_file_says_and_its_run_configs_validate(suite_file, tmp_path):
    data = tomllib.loads(suite_file.read_text())  # read here, independently of softac.benchmark's parser
    suite = get_suite(suite_file.stem)
    assert suite.envs == tuple(data["envs"]) and suite.total_steps == data["total_steps"]
    assert suite.seeds == tuple(data["seeds"]) and suite.eval_every == data["eval_every"]
    assert suite.eval_episodes == data.get("eval_episodes", 10)
    assert suite.target_return == data.get("target_return")
    assert suite.description == data.get("description", "")
    written = {(env, int(step), *(value if isinstance(value, list) else [value, value]))
               for env, table in data.get("references", {}).items() for step, value in table.items()}
    assert {(env, r.step, r.low, r.high) for env, refs in suite.references.items() for r in refs} == written

    base = preset(data.get("preset", "paper"))
    file_config = {name: tuple(value) if isinstance(value, list) else value
                   for name, value in data.get("config", {}).items()}
    for env_id in data["envs"]:
        if not env_id.startswith("dm_control/") or importlib.util.find_spec("dm_control"):  # the dmc extra
            check_env_id(env_id)
        cfg = suite.run_config(env_id, tmp_path)
        validate(cfg)
        assert cfg.env == env_id and cfg.total_steps == data["total_steps"]
        assert cfg.seed_list == tuple(data["seeds"]) and cfg.eval_every == data["eval_every"]
        assert cfg.eval_episodes == data.get("eval_episodes", 10) and cfg.checkpoint_every == data["eval_every"]
        for name, value in file_config.items():  # an algorithm's own fields reach its algo_params
            assert cfg.get(name) == value, f"[config] {name}"
        for f in dataclasses.fields(SACConfig):
            if f.name == "algo_params":
                continue
            if f.name in file_config:
                assert getattr(cfg, f.name) == file_config[f.name], f"[config] {f.name}"
            elif f.name not in SET_BY_THE_SUITE:
                assert getattr(cfg, f.name) == getattr(base, f.name), f"{f.name} from the preset"
        # What a run directory stores (config.json) reads back as the same, valid, config.
        assert SACConfig.from_dict(json.loads(cfg.to_json())) == cfg


@pytest.mark.parametrize("text, fragment", [
    ("steps = 3\n" + USER_SUITE, "unknown key(s) steps"),
    (USER_SUITE.replace('envs = ["Pendulum-v1"]', ""), "missing key(s) envs"),
    (USER_SUITE.replace("total_steps = 400", "total_steps = -5"), "total_steps must be a positive integer"),
    (USER_SUITE.replace("seeds = [3]", "seeds = [1, 1]"), "seeds must be a non-empty list of distinct"),
    (USER_SUITE.replace("batch_size = 16", "batch_size = 0"), "batch_size must be a positive integer"),
    (USER_SUITE.replace("batch_size = 16", "batchsize = 16"), "Unknown config field(s) batchsize"),
    (USER_SUITE.replace("batch_size = 16", "total_steps = 16"), "[config] cannot set total_steps"),
    (USER_SUITE.replace("400 = -1234", "400 = [1, 2, 3]"), "must be an env step = a return or [low, high]"),
    (USER_SUITE.replace('preset = "paper"', 'preset = "papr"'), "preset"),
    ("envs = [", "cannot be read"),
])
def test_a_bad_suite_file_is_one_sentence_and_status_2(text, fragment, tmp_path, capsys):
    suite_file = tmp_path / "bad.toml"
    suite_file.write_text(text)
    code = main(["benchmark", "--suite", str(suite_file), "--out-root", str(tmp_path / "runs"),
                 "--docs", str(tmp_path / "benchmarks.md")])
    assert_clean_error(code, capsys.readouterr().err, fragment)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "benchmarks.md").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["--suite", "mujoco-shrt"], "Unknown benchmark suite 'mujoco-shrt'; choose one of crossq-100k, crossq-dmc-short, dmc-short, mujoco-short, pendulum, simbav2-100k, smoke, tqc-100k"),
    (["--suite", "no/such/suite.toml"], "does not exist"),
    (["--suite", "smoke", "--total-steps", "0"], "total_steps must be a positive integer"),
])
def test_a_bad_suite_name_or_override_is_one_sentence_and_status_2(argv, fragment, tmp_path, capsys):
    code = main(["benchmark", *argv, "--out-root", str(tmp_path / "runs"), "--docs", str(tmp_path / "b.md")])
    assert_clean_error(code, capsys.readouterr().err, fragment)
    assert not (tmp_path / "runs").exists()
