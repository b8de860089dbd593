"""`softac tune`: an Optuna study on a local Ray instance (2 CPUs). The database holds every trial with its
state, a pruner stops a trial, the best trial's preset file trains the same run again, `--resume` after a
killed driver keeps the ended trials and runs only the rest, the same sampler seed suggests the same
configurations, and every bad input is one sentence before Ray starts.

The Ray tests train tiny Pendulum agents, one trial at a time (--cpus-per-trial 2 on this 2-core machine,
so the order of the trials and what the sampler and pruner see are the same on every run): about 4 minutes.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from softac import SACConfig
from softac.algos.search_space import Dimension
from softac.cli import main
from softac.distributed import read_attempts
from tests.test_cli import assert_clean_error
from tests.test_sweep import TINY, TINY_FLAGS, final_evals, wait_for

# Most tests here start a Ray instance of 2 CPUs: under pytest-xdist they run one after another on one worker.
pytestmark = pytest.mark.xdist_group("ray")

optuna = pytest.importorskip("optuna")
ray = pytest.importorskip("ray")

SPACE_TOML = """
[learning_rate]
log = [1e-5, 3e-3]

[tau]
choice = [0.005, 0.05]
"""


def space_file(tmp_path: Path, text: str = SPACE_TOML) -> Path:
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


def trial_states(out: Path) -> dict[int, str]:
    """Trial number -> state, read from the database with the standard library (not through softac or Optuna)."""
    with sqlite3.connect(out / "study.db") as db:
        return dict(db.execute("SELECT number, state FROM trials ORDER BY number"))


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("text, fragment", [
    ("[learning_rat]\nlog = [1e-5, 1e-3]\n", "no config field 'learning_rat'"),
    ("[learning_rate]\nlog = [1e-3, 1e-5]\n", "empty or inverted"),
    ("[learning_rate]\nuniform = [1e-3, 1e-3]\n", "empty or inverted"),
    ("[learning_rate]\nlog = [0, 1e-3]\n", "log range needs low > 0"),
    ("[learning_rate]\nuniform = [-1.0, 1e-3]\n", "learning_rate must be positive"),
    ("[batch_size]\nchoice = []\n", "at least one value"),
    ("[batch_size]\nchoice = [64, 64]\n", "lists a value twice"),
    ("[batch_size]\nint = [16.5, 64]\n", "int takes two integers"),
    ("[batch_size]\nlog = [16, 64]\nchoice = [3]\n", "exactly one of"),
    ("[seed]\nchoice = [1, 2]\n", "cannot search seed"),
    ("[n_quantiles]\nchoice = [10, 25]\n", "tqc"),  # a field of another algorithm than --algo sac
    ("[tau\n", "not valid TOML"),
])
def test_bad_search_space_is_one_sentence_before_ray_starts(tmp_path, capsys, text, fragment):
    out = tmp_path / "study"
    code = main(["tune", *TINY_FLAGS, "--algo", "sac", "--total-steps", "400", "--trials", "2",
                 "--space", str(space_file(tmp_path, text)), "--out", str(out)])
    assert_clean_error(code, capsys.readouterr().err, fragment)
    assert not out.exists()


@pytest.mark.parametrize("argv, fragment", [
    (["--trials", "0"], "--trials must be a positive integer"),
    (["--seeds-per-trial", "0"], "--seeds-per-trial must be a positive integer"),
    (["--startup-trials", "-1"], "--startup-trials must be 0 or more"),
    (["--cpus-per-trial", "64"], "more than this machine's"),
    (["--seeds", "0,1", "--seeds-per-trial", "2"], "not both"),
    (["--preset", "pendulum", "--preset-file", "x.toml"], "not both"),
])
def test_bad_tune_options_are_one_sentence(tmp_path, capsys, argv, fragment):
    out = tmp_path / "study"
    code = main(["tune", *TINY_FLAGS, "--total-steps", "400", "--out", str(out), *argv])
    assert_clean_error(code, capsys.readouterr().err, fragment)
    assert not out.exists()


def test_resume_refuses_a_foreign_or_unreadable_database_and_changed_flags(tmp_path, capsys):
    from softac.optimize import TuneSpec

    assert_clean_error(main(["tune", "--resume", str(tmp_path)]), capsys.readouterr().err, "is not a study directory")
    spec = TuneSpec(base=SACConfig(**TINY, total_steps=400), space=(Dimension("tau", "choice", choices=(0.01,)),),
                    trials=2, objective="final", sampler="tpe", sampler_seed=0, startup_trials=10, pruner="none",
                    out=tmp_path, options=__import__("softac.distributed").distributed.RayOptions())
    (tmp_path / "tune.json").write_text(spec.to_json())
    assert_clean_error(main(["tune", "--resume", str(tmp_path)]), capsys.readouterr().err, "Cannot read the study database")
    (tmp_path / "study.db").write_text("not a database at all")
    assert_clean_error(main(["tune", "--resume", str(tmp_path)]), capsys.readouterr().err, "not an SQLite file")
    (tmp_path / "study.db").unlink()
    with sqlite3.connect(tmp_path / "study.db") as db:  # a user's own database: softac must not add tables to it
        db.execute("CREATE TABLE mine (x INTEGER)")
    assert_clean_error(main(["tune", "--resume", str(tmp_path)]), capsys.readouterr().err, "not a study database of Optuna")
    with sqlite3.connect(tmp_path / "study.db") as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["mine"]
    assert_clean_error(main(["tune", "--resume", str(tmp_path), "--trials", "3"]), capsys.readouterr().err,
                       "--trials cannot be given")


def test_space_file_extends_the_default_space_and_ties_fields(tmp_path):
    from softac.optimize import check_space, merge_space, read_space_file

    base = SACConfig(**TINY, total_steps=400, algo="tqc")
    dims = read_space_file(space_file(tmp_path, 'extends = "default"\n[learning_rate]\nlog = [1e-4, 1e-3]\n'
                                                '[n_steps]\nint = [1, 3]\n'))
    space = check_space(base, merge_space(base, dims))
    by_name = {d.name: d for d in space}
    assert by_name["learning_rate"] == Dimension("learning_rate", "log", 1e-4, 1e-3)  # replaced
    assert by_name["n_steps"] == Dimension("n_steps", "int", 1, 3)  # added
    assert "n_quantiles" in by_name and by_name["train_every"].also_sets == ("gradient_steps",)  # kept: TQC's default
    only = check_space(base, merge_space(base, read_space_file(space_file(tmp_path))))
    assert [d.name for d in only] == ["learning_rate", "tau"]  # without extends: the file is the whole space


def test_the_same_sampler_seed_suggests_the_same_configurations():
    from softac.algos.registry import REGISTRY
    from softac.optimize import make_sampler, optuna_distributions
    from softac.tune_search import StudySearch

    space = REGISTRY["sac"].search_space

    def suggestions(seed: int, sampler: str) -> list[dict]:
        searcher = StudySearch(space, 1000, space=optuna_distributions(space), metric="eval_return", mode="max",
                               sampler=make_sampler(sampler, seed, startup_trials=2))
        made = []
        for k in range(5):  # past the startup trials: TPE models the told values
            made.append(searcher.suggest(f"t{k}")["search"])
            searcher.on_trial_complete(f"t{k}", {"eval_return": float(-k * 10), "env_step": 1000})
        return made

    first = suggestions(3, "tpe")
    assert first == suggestions(3, "tpe")
    assert [s["params"] for s in first] != [s["params"] for s in suggestions(4, "tpe")]
    assert [s["number"] for s in first] == [0, 1, 2, 3, 4]
    for s in first:  # train_every sets gradient_steps too; hidden sizes decoded from Optuna's string
        assert s["changes"]["gradient_steps"] == s["changes"]["train_every"] == s["params"]["train_every"]
        assert isinstance(s["changes"]["hidden_sizes"], tuple)
    assert suggestions(3, "random") == suggestions(3, "random")


# ------------------------------------------------------------------------------- on Ray
def test_study_database_pruning_results_and_best_preset_trains(tmp_path, capsys):
    out = tmp_path / "study"
    code = main(["tune", *TINY_FLAGS, "--algo", "sac", "--total-steps", "600", "--trials", "4",
                 "--space", str(space_file(tmp_path)), "--pruner", "asha", "--asha-grace-steps", "200",
                 "--asha-reduction-factor", "2", "--cpus-per-trial", "2", "--sampler-seed", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    # Optuna's database holds the 4 trials, each ended; the pruner stopped at least one before 600 steps.
    states = trial_states(out)
    assert sorted(states) == [0, 1, 2, 3] and set(states.values()) <= {"COMPLETE", "PRUNED"}
    pruned = [n for n, s in states.items() if s == "PRUNED"]
    assert pruned, states
    study = optuna.load_study(study_name="softac", storage=f"sqlite:///{out / 'study.db'}")
    for t in study.trials:
        run_dir = out / "runs" / f"trial{t.number:04d}__seed0"
        step, value = final_evals(run_dir)
        if t.state.name == "PRUNED":
            assert step < 600 and t.value == pytest.approx(value, abs=0.01)  # its last evaluation, before it was stopped
        else:
            assert step == 600 and t.value == pytest.approx(value, abs=0.01)  # the objective (metrics.csv rounds to 0.01): the final evaluation
        cfg = json.loads((run_dir / "config.json").read_text())
        assert cfg["learning_rate"] == pytest.approx(t.params["learning_rate"]) and cfg["tau"] == t.params["tau"]
    # The results: every trial in trials.csv, the table, importances, the history as a PNG.
    with open(out / "trials.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["trial"]) for r in rows] == [0, 1, 2, 3]
    assert "| trial | state | objective |" in printed and "best trial:" in printed
    assert (out / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert isinstance(json.loads((out / "importances.json").read_text()), dict)
    # The best trial's preset file trains the same run again: its values, the same final evaluation.
    best = study.best_trial
    assert main(["train", "--preset-file", str(out / "best.toml"), "--run-root", str(tmp_path / "again"),
                 "--run-name", "best", "--no-progress"]) == 0
    again = tmp_path / "again" / "best"
    cfg = json.loads((again / "config.json").read_text())
    assert cfg["learning_rate"] == pytest.approx(best.params["learning_rate"]) and cfg["tau"] == best.params["tau"]
    assert final_evals(again) == final_evals(out / "runs" / f"trial{best.number:04d}__seed0")


def test_resume_after_a_killed_driver_keeps_ended_trials_and_runs_only_the_rest(tmp_path):
    out, log = tmp_path / "study", tmp_path / "tune.log"
    argv = [sys.executable, "-m", "softac.cli", "tune", *TINY_FLAGS, "--algo", "sac", "--total-steps", "400",
            "--trials", "3", "--space", str(space_file(tmp_path)), "--pruner", "none", "--cpus-per-trial", "2",
            "--out", str(out)]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    driver = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    try:
        wait_for(lambda: ": done" in log.read_text(), 300, "a finished trial")
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        driver.kill()
    ended_before = {n for n, s in trial_states(out).items() if s == "COMPLETE"}
    assert ended_before
    resumed = subprocess.run([sys.executable, "-m", "softac.cli", "tune", "--resume", str(out)], capture_output=True,
                             text=True, timeout=600, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    states = trial_states(out)
    complete = sorted(n for n, s in states.items() if s == "COMPLETE")
    assert len(complete) == 3, states  # the study has its 3 finished trials
    assert ended_before <= set(complete)
    attempts = read_attempts(out)
    for number in ended_before:  # an ended trial is not trained again (restarted, if Tune's state was older, it
        starts = [a["start_step"] for a in attempts if a["trial"] == f"trial{number:04d}"]  # starts at its end)
        assert starts[0] == 0 and all(step == 400 for step in starts[1:]), starts
    for number in complete:
        assert final_evals(out / "runs" / f"trial{number:04d}__seed0")[0] == 400
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert np.isfinite([float(r["value"]) for r in rows if r["state"] == "finished"]).all()
    # Any other trial was asked for by the killed driver before it saved Tune's state, and never started:
    # FAIL in the database, so the sampler does not wait for it.
    started = {a["trial"] for a in attempts}
    for r in rows:
        if r["state"] != "finished":
            assert r["state"] == "failed" and f"trial{int(r['trial']):04d}" not in started, rows
