"""`softac sweep` on a local Ray instance (2 CPUs): results equal `softac train`'s, a killed worker's trial
is restarted from its last checkpoint and ends as if never killed, an interrupted driver resumes without
rerunning finished trials, and every bad input is one sentence before Ray starts.

The Ray tests start a local instance each (about 5 s) and train tiny Pendulum agents: about 3 minutes in all.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from softac import SACConfig
from softac.cli import main
from softac.distributed import read_attempts
from softac.logger import read_metrics
from softac.study import SweepSpec, sweep_trials
from tests.test_cli import assert_clean_error

# Most tests here start a Ray instance of 2 CPUs: under pytest-xdist they run one after another on one worker.
pytestmark = pytest.mark.xdist_group("ray")

ray = pytest.importorskip("ray")

TINY = dict(env="Pendulum-v1", learning_starts=100, hidden_sizes=(32, 32), batch_size=32, buffer_size=10_000,
            eval_every=200, eval_episodes=2, log_every=100, tensorboard=False, progress=False)
TINY_FLAGS = ["--env", "Pendulum-v1", "--learning-starts", "100", "--hidden-sizes", "32,32", "--batch-size", "32",
              "--buffer-size", "10000", "--eval-every", "200", "--eval-episodes", "2", "--log-every", "100",
              "--no-tensorboard"]


def final_evals(run_dir: Path) -> tuple[int, float]:
    evals = [r for r in read_metrics(run_dir) if r["eval_return_mean"] is not None]
    return int(evals[-1]["env_step"]), evals[-1]["eval_return_mean"]


def train_on_cores(cores: int, run_root: Path, *flags: str) -> list[Path]:
    """`softac train` in a process kept to `cores` cores, as a trial with --cpus-per-trial `cores` is: XLA sizes
    its thread pool to the cores a process may use, and its reductions, hence the returns, depend on it. Returns
    the new run directories."""
    cpus = sorted(os.sched_getaffinity(0))[:cores]
    done = subprocess.run([sys.executable, "-m", "softac.cli", "train", *flags, "--run-root", str(run_root),
                           "--no-progress"], preexec_fn=lambda: os.sched_setaffinity(0, cpus), capture_output=True,
                          text=True, timeout=600, env={**os.environ, "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stdout + done.stderr
    return sorted(p for p in run_root.iterdir() if p.is_dir())


def run_sweep_cli(*args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.Popen([sys.executable, "-m", "softac.cli", "sweep", *args], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, env=env, text=True)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


# ------------------------------------------------------------------------------- bad input
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("argv, fragment", [
    (["--grid", "learning-rat=1e-3"], "no config field 'learning_rat'"),
    (["--grid", "learning-rate=1e-3,-1"], "learning_rate must be positive"),
    (["--grid", "learning-rate=1e-3,abc"], "'abc' is not a valid float"),
    (["--grid", "learning-rate="], "needs at least one value"),
    (["--grid", "learning-rate=1e-3,,3e-4"], "no empty ones"),
    (["--grid", "learning-rate"], "FIELD=VALUE"),
    (["--grid", "seed=1,2"], "cannot sweep seed"),
    (["--grid", "tau=0.1", "--grid", "tau=0.2"], "names a field twice"),
    (["--grid", "tau=0.1,0.1"], "lists a value twice"),
    (["--cpus-per-trial", "64"], "more than this machine's"),
    (["--gpus-per-trial", "1"], "more than this machine's 0 GPUs"),
    (["--cpus-per-trial", "0"], "--cpus-per-trial must be a positive integer"),
    (["--seeds-per-trial", "0"], "--seeds-per-trial must be a positive integer"),
    (["--seeds", "1,1"], "seeds must be distinct"),
])
def test_bad_input_is_one_sentence_before_ray_starts(tmp_path, capsys, argv, fragment):
    if "--gpus-per-trial" in argv and os.environ.get("CUDA_VISIBLE_DEVICES", "") not in ("", "-1"):
        pytest.skip("this machine has a GPU")
    code = main(["sweep", *TINY_FLAGS, "--out", str(tmp_path / "sweep"), *argv])
    assert_clean_error(code, capsys.readouterr().err, fragment)
    assert not ray.is_initialized()
    assert not (tmp_path / "sweep").exists()


def test_unreachable_ray_address_says_how_to_start_a_cluster(tmp_path, capsys):
    code = main(["sweep", *TINY_FLAGS, "--out", str(tmp_path / "sweep"), "--ray-address", f"127.0.0.1:{free_port()}"])
    err = capsys.readouterr().err
    assert_clean_error(code, err, "No Ray cluster answers at 127.0.0.1:")
    assert "ray start --head" in err and not ray.is_initialized()
    # "auto" with no cluster started on this machine: one sentence once Ray has looked, and no directory.
    code = main(["sweep", *TINY_FLAGS, "--out", str(tmp_path / "sweep"), "--ray-address", "auto"])
    assert_clean_error(code, capsys.readouterr().err, "Cannot connect to a Ray cluster at auto")
    assert not ray.is_initialized() and not (tmp_path / "sweep").exists()


def test_existing_sweep_directory_is_never_reused(tmp_path, capsys):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    assert_clean_error(main(["sweep", *TINY_FLAGS, "--out", str(out)]), capsys.readouterr().err, "already exists")
    assert (out / "mine.txt").read_text() == "keep" and len(list(out.iterdir())) == 1
    assert_clean_error(main(["sweep", "--resume", str(tmp_path)]), capsys.readouterr().err, "is not a sweep directory")
    assert_clean_error(main(["sweep", "--resume", str(out), "--grid", "tau=0.1"]), capsys.readouterr().err,
                       "--grid cannot be given")


def test_grid_values_are_parsed_as_their_fields(tmp_path):
    from softac.study import parse_grid_flag

    assert parse_grid_flag("learning-rate=1e-4,3e-4") == ("learning_rate", (1e-4, 3e-4))
    assert parse_grid_flag("hidden-sizes=64,64/256,256") == ("hidden_sizes", ((64, 64), (256, 256)))
    assert parse_grid_flag("alpha=none,0.2") == ("alpha", (None, 0.2))
    assert parse_grid_flag("learn-alpha=true,no") == ("learn_alpha", (True, False))
    spec = SweepSpec(base=SACConfig(**TINY), grid=(("tau", (0.01, 0.02)), ("gamma", (0.9, 0.99))),
                     seeds=(0, 1, 2), seeds_per_trial=2, out=tmp_path, options=None)
    trials = sweep_trials(spec)
    assert len(trials) == 4 * 2  # grid points x seed groups
    assert {(t.config.tau, t.config.gamma, t.config.seed_list) for t in trials} == {
        (tau, gamma, group) for tau in (0.01, 0.02) for gamma in (0.9, 0.99) for group in ((0, 1), (2,))}


def test_keep_to_cpus_takes_free_cores_and_pins_every_thread(tmp_path):
    script = ("import os, sys; from pathlib import Path; from softac.distributed import keep_to_cpus; "
              f"cpus = keep_to_cpus(1, Path({str(tmp_path)!r})); "
              "tasks = [os.sched_getaffinity(int(t)) for t in os.listdir('/proc/self/task')]; "
              "assert all(t == set(cpus) for t in tasks), tasks; print(cpus[0], flush=True); sys.stdin.read()")
    cores = sorted(os.sched_getaffinity(0))
    first = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        held = int(first.stdout.readline())
        second = subprocess.run([sys.executable, "-c", script], input="", capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        if len(cores) > 1:
            assert int(second.stdout) != held  # the first process holds its core
    finally:
        first.communicate("")
    # The first process has exited: its core is free again.
    again = subprocess.run([sys.executable, "-c", script], input="", capture_output=True, text=True, timeout=60)
    assert int(again.stdout) == cores[0]


# ------------------------------------------------------------------------------- on Ray
def test_sweep_table_csv_run_dirs_and_same_results_as_train(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", *TINY_FLAGS, "--total-steps", "400", "--seeds", "0,1",
                 "--grid", "learning-rate=1e-3,3e-4", "--out", str(out), "--cpus-per-trial", "1"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "best grid point: learning_rate=" in printed
    assert "env step 200, evaluation return" in printed and "of 2]" in printed  # progress lines with the counts
    with open(out / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["point"] for r in rows] == ["learning_rate=0.001", "learning_rate=0.0003"]
    assert sum(r["best"] == "True" for r in rows) == 1 and (out / "sweep.png").stat().st_size > 0
    for row, lr in zip(rows, (1e-3, 3e-4)):
        run_dirs = [out / "runs" / f"learning_rate={lr}__seed{seed}" for seed in (0, 1)]
        sweep_finals = [final_evals(d) for d in run_dirs]
        assert all(step == 400 for step, _ in sweep_finals)
        assert float(row["final_mean"]) == pytest.approx(np.mean([v for _, v in sweep_finals]))
        # Two seeds: their IQM is their mean, and the 95% bootstrap interval spans them.
        values = [v for _, v in sweep_finals]
        assert float(row["final_iqm"]) == pytest.approx(np.mean(values))
        assert (float(row["final_iqm_low"]), float(row["final_iqm_high"])) == pytest.approx((min(values), max(values)))
        # The same config and seeds through `softac train` on as many cores as a trial: the same final evaluations.
        reference = train_on_cores(1, tmp_path / f"train-{lr}", *TINY_FLAGS, "--total-steps", "400",
                                   "--learning-rate", str(lr), "--seeds", "0,1")
        assert [final_evals(d) for d in reference] == sweep_finals
        # Ordinary run directories: their config is the trial's.
        assert json.loads((run_dirs[0] / "config.json").read_text())["learning_rate"] == lr


def test_killed_worker_is_restarted_from_its_checkpoint_and_ends_as_uninterrupted(tmp_path):
    out, log = tmp_path / "sweep", tmp_path / "sweep.log"
    driver = run_sweep_cli(*TINY_FLAGS, "--total-steps", "1200", "--seeds", "3", "--grid", "learning-rate=1e-3",
                           "--out", str(out), log=log)
    run_dir = out / "runs" / "learning_rate=0.001__seed3"
    try:
        wait_for(lambda: "env step 400," in log.read_text(), 300, "the trial's second evaluation")
        pid = read_attempts(out)[-1]["pid"]
        os.kill(pid, signal.SIGKILL)
        code = driver.wait(timeout=400)
    finally:
        driver.kill()
    text = log.read_text()
    assert code == 0, text
    assert "its worker died" in text and "restarting it from its last checkpoint" in text
    attempts = read_attempts(out)
    assert len(attempts) == 2 and attempts[0]["pid"] == pid
    assert attempts[1]["start_step"] >= 400  # the steps before the last checkpoint were not trained again
    steps = [int(r["env_step"]) for r in read_metrics(run_dir)]
    assert steps == sorted(set(steps))  # metrics rows past the checkpoint were dropped, not duplicated
    reference = train_on_cores(1, tmp_path / "train", *TINY_FLAGS, "--total-steps", "1200", "--learning-rate", "1e-3",
                               "--seed", "3")
    assert final_evals(run_dir) == final_evals(reference[0])


def test_local_instance_that_loses_its_node_is_started_again_and_the_trial_ends_as_uninterrupted(tmp_path):
    """kill -9 of the node's dashboard agent takes its raylet down with it (they share their fate): the sweep
    starts the local instance again within a minute and the trial continues from its last checkpoint."""
    out, log = tmp_path / "sweep", tmp_path / "sweep.log"
    driver = run_sweep_cli(*TINY_FLAGS, "--total-steps", "1600", "--seeds", "3", "--grid", "learning-rate=1e-3",
                           "--out", str(out), log=log)
    try:
        wait_for(lambda: "env step 400," in log.read_text(), 300, "the trial's second evaluation")
        agents = [pid for pid in _descendants(driver.pid) if "DashboardAgent" in _cmdline(pid)]
        assert agents, "no dashboard agent under the driver"
        os.kill(agents[0], signal.SIGKILL)
        killed_at = time.time()
        code = driver.wait(timeout=400)
    finally:
        driver.kill()
    text = log.read_text()
    assert code == 0, text
    assert "lost its only node" in text and "starting a local Ray instance again" in text
    attempts = read_attempts(out)
    assert len(attempts) == 2 and attempts[1]["start_step"] >= 400
    assert attempts[1]["time"] - killed_at < 60  # the trial runs again within a minute
    run_dir = out / "runs" / "learning_rate=0.001__seed3"
    reference = train_on_cores(1, tmp_path / "train", *TINY_FLAGS, "--total-steps", "1600", "--learning-rate", "1e-3",
                               "--seed", "3")
    assert final_evals(run_dir) == final_evals(reference[0])


def _descendants(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return children + [d for c in children for d in _descendants(c)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_cluster_with_token_authentication_and_no_token_is_one_sentence(tmp_path):
    """A head started with RAY_AUTH_MODE=token, and softac without the token: one sentence that says so (not
    "start a cluster"), and none of the GCS client's retry lines before it."""
    port = free_port()
    address_file = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # `ray start` records its cluster
    before = address_file.read_bytes() if address_file.exists() else None
    head_env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "softac-test-token-0123456789abcdef"}
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}",
                             "--num-cpus=1", "--include-dashboard=false"],
                            env=head_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _port_open(port), 120, "the head node's GCS")
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
        env["RAY_NUM_REDIS_GET_RETRIES"] = "3"  # Ray's retries of the refused connection: 3 s, not 20
        out = tmp_path / "sweep"
        done = subprocess.run([sys.executable, "-m", "softac.cli", "sweep", *TINY_FLAGS, "--total-steps", "400",
                               "--grid", "tau=0.01", "--ray-address", f"127.0.0.1:{port}", "--out", str(out)],
                              capture_output=True, text=True, timeout=300, env=env)
        # The commands docs/sweeps.md gives: RAY_AUTH_MODE=token and the head's token connect.
        script = (f"import ray; ray.init(address='127.0.0.1:{port}', log_to_driver=False); "
                  "print(ray.cluster_resources()['CPU'])")
        joined = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                                env={**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": head_env["RAY_AUTH_TOKEN"]})
    finally:
        head.terminate()
        head.wait(timeout=60)
        _restore(address_file, before)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "refused the authentication token" in lines[0] and "RAY_AUTH_MODE=token" in lines[0], \
        done.stderr
    assert not out.exists()
    assert joined.returncode == 0 and joined.stdout.split()[-1] == "1.0", joined.stdout + joined.stderr


def _restore(path: Path, content) -> None:
    if content is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(content)


def test_auto_address_of_a_cluster_that_is_gone_is_one_sentence_at_once(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{free_port()}")  # as the address file of a stopped cluster
    started = time.time()
    code = main(["sweep", *TINY_FLAGS, "--out", str(tmp_path / "sweep"), "--ray-address", "auto"])
    assert_clean_error(code, capsys.readouterr().err, "does not answer")
    assert time.time() - started < 30 and not (tmp_path / "sweep").exists()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_interrupted_driver_resumes_without_rerunning_finished_trials(tmp_path):
    out, log = tmp_path / "sweep", tmp_path / "sweep.log"
    driver = run_sweep_cli(*TINY_FLAGS, "--total-steps", "400", "--seeds", "0", "--out", str(out),
                           "--grid", "learning-rate=1e-3,3e-4,1e-4", log=log)
    try:
        wait_for(lambda: ": done" in log.read_text(), 300, "a finished trial")
        driver.send_signal(signal.SIGINT)
        code = driver.wait(timeout=120)
    finally:
        driver.kill()
    text = log.read_text()
    assert code == 130, text
    assert f"softac sweep --resume {out}" in text
    finished = [line.split()[0] for line in text.splitlines() if line.endswith("of 3]") and ": done" in line]
    assert finished
    resumed = subprocess.run([sys.executable, "-m", "softac.cli", "sweep", "--resume", str(out)], capture_output=True,
                             text=True, timeout=600, env={**os.environ, "MPLBACKEND": "Agg"})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    starts = [a["trial"] for a in read_attempts(out)]
    for name in finished:
        assert starts.count(name) == 1  # a finished trial is not run again
    assert sorted(set(starts)) == ["p000-seeds0", "p001-seeds0", "p002-seeds0"]
    with open(out / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["final_step"] for r in rows] == ["400"] * 3


def test_asha_scheduler_settings():
    from ray.tune.schedulers import ASHAScheduler

    from softac.distributed import RayOptions, _scheduler, asha_settings

    trials = sweep_trials(SweepSpec(base=SACConfig(**TINY, total_steps=9000), grid=(("tau", (0.01, 0.02)),),
                                    seeds=(0,), seeds_per_trial=1, out=Path("x"), options=None))
    assert _scheduler(trials, RayOptions()) is None
    options = RayOptions(scheduler="asha", asha_reduction_factor=2)
    assert isinstance(_scheduler(trials, options), ASHAScheduler)
    assert asha_settings(trials, options) == dict(time_attr="env_step", metric="eval_return", mode="max", max_t=9000,
                                                  grace_period=1000, reduction_factor=2)
    assert asha_settings(trials, RayOptions(scheduler="asha", asha_grace_steps=300))["grace_period"] == 300


def test_benchmark_suite_on_ray_writes_the_same_report(tmp_path, capsys):
    runs, docs = tmp_path / "runs", tmp_path / "benchmarks.md"
    code = main(["benchmark", "--suite", "smoke", "--ray", "--seeds-per-trial", "1", "--out-root", str(runs),
                 "--docs", str(docs)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    # The run directories of a benchmark without Ray (so either way continues the other's runs) ...
    assert sorted(p.name for p in (runs / "smoke").iterdir() if not p.name.startswith("ray-")) == [
        "Pendulum-v1__seed0", "Pendulum-v1__seed1"]
    assert all(final_evals(runs / "smoke" / f"Pendulum-v1__seed{k}")[0] == 600 for k in (0, 1))
    # ... and the same generated block of the docs page.
    text = docs.read_text()
    assert "<!-- suite:smoke:Pendulum-v1:start -->" in text and "| Pendulum-v1 | 600 |" in text
    # Run again: the finished runs are reported, not trained again.
    assert main(["benchmark", "--suite", "smoke", "--ray", "--out-root", str(runs), "--docs", str(docs)]) == 0
    attempts = [a for d in (runs / "smoke").glob("ray-*") for a in read_attempts(d)]
    assert all(a["start_step"] == 0 for a in attempts if a["trial"] != "Pendulum-v1-seeds0-1")
    assert [a["start_step"] for a in attempts if a["trial"] == "Pendulum-v1-seeds0-1"] == [600]
