"""Runs that survive people and faults: checkpoints that cannot run code, one writer per run, Ctrl-C and
SIGTERM with a checkpoint, kill -9 during a save, a full disk, and bad input through the CLI."""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from softac import SoftacError, load_agent, resume, train
from softac.checkpoint import checkpoint_step
from softac.cli import main
from softac.errors import TrainingInterrupted
from softac.logger import read_metrics
from softac.rundir import LOCK_NAME, is_leftover
from tests.conftest import tiny_config
from tests.helpers import assert_trees_equal
from tests.test_cli import assert_clean_error
from tests.test_train import checkpoint_state

# The flags of tiny_config(tmp_path, eval_every=0, log_every=50) on the command line.
TINY_FLAGS = ["--env", "Pendulum-v1", "--learning-starts", "100", "--hidden-sizes", "32,32", "--batch-size", "32",
              "--buffer-size", "10000", "--eval-every", "0", "--eval-episodes", "2", "--log-every", "50",
              "--checkpoint-every", "0", "--no-progress", "--no-tensorboard"]


def subprocess_env() -> dict:
    """The test's environment, with JAX's compilation cache shared with the tests (as conftest sets it)."""
    import jax

    return {**os.environ, "MPLBACKEND": "Agg",
            "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir,
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def leftovers(run_dir: Path) -> list[str]:
    return [p.name for p in run_dir.iterdir() if is_leftover(p.name)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A run trained for 150 steps (copy it before changing it)."""
    root = tmp_path_factory.mktemp("finished")
    return train(tiny_config(root, total_steps=150, eval_every=150, run_name="done"))[0]


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    copy = tmp_path / "runs" / "copy"
    shutil.copytree(finished_run, copy)
    return copy


class _Payload:
    """Unpickling this creates the marker file: the proof that loading ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _rewrite(run_dir: Path, name: str, data: bytes) -> None:
    """Replace one file of the checkpoint and fix the manifest's size, so only the parser stands in the way."""
    (run_dir / "checkpoint" / name).write_bytes(data)
    manifest_path = run_dir / "checkpoint" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"][name] = len(data)
    manifest_path.write_text(json.dumps(manifest))


# ------------------------------------------------------------------------------ hostile files
def test_an_old_pickle_checkpoint_is_refused_without_running_it(run_copy, tmp_path, capsys):
    marker = tmp_path / "pwned"
    shutil.rmtree(run_copy / "checkpoint")
    (run_copy / "checkpoint.pkl").write_bytes(pickle.dumps({"format": 1, "agent_state": _Payload(marker)}))
    assert_clean_error(main(["eval", str(run_copy)]), capsys.readouterr().err, "could run arbitrary code")
    assert_clean_error(main(["train", "--resume", str(run_copy), "--total-steps", "300"]), capsys.readouterr().err,
                       "softac refuses to read it")
    assert checkpoint_step(run_copy) is None
    assert not marker.exists()


def _object_npz(marker: Path) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, obs=np.array([_Payload(marker)], dtype=object))
    return buffer.getvalue()


@pytest.mark.parametrize("name, make", [
    ("policy.msgpack", lambda marker: pickle.dumps(_Payload(marker))),
    ("agent.msgpack", lambda marker: pickle.dumps(_Payload(marker))),
    ("replay.npz", _object_npz),
    ("loop.npz", _object_npz),
    ("loop.json", lambda marker: b'{"step": 150, "obs": {"__array__": "nowhere"}}'),
    ("loop.json", lambda marker: b"[" * 100_000 + b"]" * 100_000),
    ("manifest.json", lambda marker: pickle.dumps(_Payload(marker))),
])
def test_a_crafted_checkpoint_file_runs_no_code_and_is_one_sentence(run_copy, tmp_path, capsys, name, make):
    marker = tmp_path / "pwned"
    if name == "manifest.json":
        (run_copy / "checkpoint" / name).write_bytes(make(marker))
    else:
        _rewrite(run_copy, name, make(marker))
    code = main(["train", "--resume", str(run_copy), "--total-steps", "300", "--no-progress"])
    assert_clean_error(code, capsys.readouterr().err, "unreadable")
    if name.startswith("policy") or name == "manifest.json":
        assert main(["eval", str(run_copy), "--episodes", "1"]) == 2
    assert not marker.exists()
    assert read_metrics(run_copy)[-1]["env_step"] == 150  # nothing changed


@pytest.mark.parametrize("text", ["[1, 2]", "[" * 100_000, '{"env": 5}', "\udcff"])
def test_a_crafted_config_is_one_sentence(run_copy, capsys, text):
    (run_copy / "config.json").write_text(text, errors="surrogateescape")
    assert_clean_error(main(["eval", str(run_copy)]), capsys.readouterr().err, "")


def test_a_crafted_environment_state_is_refused(run_copy, capsys):
    loop = json.loads((run_copy / "checkpoint" / "loop.json").read_text())
    loop["env"] = {"kind": "pickle", "env": "gASVAAAAAAAAAAA="}  # what softac 0.1 stored, now never unpickled
    _rewrite(run_copy, "loop.json", json.dumps(loop).encode())
    code = main(["train", "--resume", str(run_copy), "--total-steps", "300", "--no-progress"])
    assert_clean_error(code, capsys.readouterr().err, "environment state")


def test_eval_reads_only_the_policy(run_copy, capsys):
    (run_copy / "checkpoint" / "replay.npz").unlink()
    (run_copy / "checkpoint" / "agent.msgpack").unlink()
    assert main(["eval", str(run_copy), "--episodes", "1"]) == 0
    assert "mean" in capsys.readouterr().out
    assert load_agent(run_copy).act(np.zeros(3, np.float32)).shape == (1,)


# ------------------------------------------------------------------------------ one writer per run
def test_a_second_writer_is_refused_and_a_stale_lock_is_taken_over(run_copy, tmp_path, capsys):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from softac.rundir import lock_run_dir; lock_run_dir(sys.argv[1]); "
         "print('locked', flush=True); time.sleep(120)", str(run_copy)],
        stdout=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SoftacError, match=f"being written by process {holder.pid}"):
            resume([run_copy], total_steps=200)
        code = main(["train", *TINY_FLAGS, "--run-root", str(run_copy.parent), "--run-name", run_copy.name])
        assert_clean_error(code, capsys.readouterr().err, f"already exists and is being trained by process {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    assert (run_copy / LOCK_NAME).read_text().strip() == str(holder.pid)  # the dead holder's pid is still there
    resume([run_copy], total_steps=200)  # ... and its lock is taken over
    assert checkpoint_step(run_copy) == 200
    assert (run_copy / LOCK_NAME).read_text().strip() == str(os.getpid())


# ------------------------------------------------------------------------------ signals
def train_then_signal(flags: list[str], run_dir: Path, signum: int, while_training=None,
                      min_step: int = 200) -> tuple[int, str]:
    """Train `softac train FLAGS` into run_dir in a subprocess, send `signum` once metrics.csv reached
    `min_step` (after `while_training(proc)`, if given, and a random pause); returns (exit status, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "softac.cli", "train", *flags, "--total-steps", "100000000",
                             "--run-root", str(run_dir.parent), "--run-name", run_dir.name],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if (run_dir / "metrics.csv").exists() and any(r["env_step"] >= min_step for r in read_metrics(run_dir)):
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1]
        if while_training is not None:
            while_training(proc)
        time.sleep(random.uniform(0.0, 0.5))  # a random step
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_checkpoint_and_resume_equals_the_uninterrupted_run(tmp_path, capsys, signum):
    run_dir = tmp_path / "runs" / "sig"

    def second_writer_is_refused(proc):  # while it trains, a second writer is refused at once, naming it
        assert_clean_error(main(["train", "--resume", str(run_dir), "--no-progress"]), capsys.readouterr().err,
                           f"being written by process {proc.pid}")

    returncode, err = train_then_signal(TINY_FLAGS, run_dir, signum, second_writer_is_refused)
    assert returncode == 128 + signum, err
    assert "Traceback" not in err
    command = [line for line in err.splitlines() if "--resume" in line]
    assert len(command) == 1 and command[0].endswith(f"continue with: softac train --resume {run_dir}"), err
    step = checkpoint_step(run_dir)
    assert step is not None and step >= 200 and f"at env step {step} " in command[0]
    assert checkpoint_state(run_dir)[2]["step"] == step and not leftovers(run_dir)

    n = step + 37
    resume([run_dir], total_steps=n)
    straight = train(tiny_config(tmp_path, eval_every=0, log_every=50, total_steps=n, run_name="straight"))[0]
    a_state, a_buffer, a_loop = checkpoint_state(straight)
    b_state, b_buffer, b_loop = checkpoint_state(run_dir)
    assert_trees_equal(a_state, b_state)
    for field in a_buffer["data"]:
        np.testing.assert_array_equal(a_buffer["data"][field], b_buffer["data"][field])
    np.testing.assert_array_equal(a_loop["obs"], b_loop["obs"])
    steps = [r["env_step"] for r in read_metrics(run_dir)]
    assert steps == sorted(set(steps)) and steps[-1] == n


def test_a_second_ctrl_c_during_the_save_changes_nothing(tmp_path, monkeypatch):
    import softac.checkpoint
    from softac.logger import RunLogger

    log = RunLogger.log

    def log_then_interrupt(self, row):  # Ctrl-C arrives during step 200
        log(self, row)
        if row["env_step"] == 200:
            os.kill(os.getpid(), signal.SIGINT)

    def interrupt_again(stage, path):  # ... and again while the checkpoint is being written
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)

    monkeypatch.setattr(RunLogger, "log", log_then_interrupt)
    monkeypatch.setattr(softac.checkpoint, "_test_hook", interrupt_again)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as raised:
        train(tiny_config(tmp_path, total_steps=400, eval_every=0, run_name="twice"))
    assert raised.value.exit_status == 130 and raised.value.step == 200
    run_dir = tmp_path / "runs" / "twice"
    assert checkpoint_state(run_dir)[2]["step"] == 200 and not leftovers(run_dir)
    assert signal.getsignal(signal.SIGINT) is handler  # the previous handler is back


def test_training_outside_the_main_thread_installs_no_signal_handlers(tmp_path):
    result = {}
    thread = threading.Thread(target=lambda: result.update(dirs=train(tiny_config(tmp_path, total_steps=120,
                                                                                  eval_every=0))))
    thread.start()
    thread.join()
    assert checkpoint_step(result["dirs"][0]) == 120


# ------------------------------------------------------------------------------ crashes during a save
KILL_DURING_SAVE = """
import json, os, signal, sys
import softac.checkpoint

def hook(stage, path):
    if stage == sys.argv[1] and json.loads((path / "manifest.json").read_text())["step"] == 200:
        os.kill(os.getpid(), signal.SIGKILL)

softac.checkpoint._test_hook = hook
from softac.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("stage", ["written", "swapping"])
def test_kill_9_during_a_save_keeps_the_previous_checkpoint_and_the_next_start_tidies_up(tmp_path, stage):
    argv = ["train", *TINY_FLAGS[:-1], "--tensorboard", "--total-steps", "300", "--checkpoint-every", "100",
            "--run-root", str(tmp_path / "runs"), "--run-name", "killed"]
    result = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, stage, *argv], capture_output=True, text=True,
                            env=subprocess_env(), timeout=600)
    assert result.returncode == -signal.SIGKILL, result.stderr
    run_dir = tmp_path / "runs" / "killed"
    assert leftovers(run_dir)  # the half-done save
    assert checkpoint_step(run_dir) == 100
    assert checkpoint_state(run_dir)[2]["step"] == 100
    events = [p for p in run_dir.iterdir() if p.name.startswith("events.out.tfevents")]
    assert events and events[0].stat().st_size > 0  # TensorBoard was flushed at the checkpoint of step 100
    resume([run_dir])
    assert checkpoint_step(run_dir) == 300 and not leftovers(run_dir)


def test_a_full_disk_during_a_save_is_one_sentence_and_keeps_the_previous_checkpoint(tmp_path, capsys, monkeypatch):
    import softac.checkpoint

    write, calls = softac.checkpoint._write_file, []

    def fill_up(path, fill):  # the disk fills up in the middle of the second checkpoint
        calls.append(path)
        if len(calls) == 9:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        write(path, fill)

    monkeypatch.setattr(softac.checkpoint, "_write_file", fill_up)
    code = main(["train", *TINY_FLAGS, "--total-steps", "300", "--checkpoint-every", "100",
                 "--run-root", str(tmp_path / "runs"), "--run-name", "full"])
    assert_clean_error(code, capsys.readouterr().err, "No space left on device")
    run_dir = tmp_path / "runs" / "full"
    assert checkpoint_step(run_dir) == 100 and not leftovers(run_dir)
    assert checkpoint_state(run_dir)[2]["step"] == 100


def test_resume_removes_leftovers_and_warns_once_when_metrics_are_missing(run_copy, capsys):
    (run_copy / ".checkpoint.new-12345").mkdir()
    (run_copy / ".checkpoint.new-12345" / "replay.npz").write_bytes(b"half")
    (run_copy / ".checkpoint.pkl.tmp-777").write_bytes(b"softac 0.1's leftover")
    (run_copy / ".config.json.tmp-5").write_text("{")
    (run_copy / "metrics.csv").unlink()
    resume([run_copy], total_steps=200)
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if "metrics.csv" in line]) == 1 and "warning" in err
    assert not leftovers(run_copy)
    assert [r["env_step"] for r in read_metrics(run_copy)] == [200]
    assert json.loads((run_copy / "config.json").read_text())["total_steps"] == 200


# ------------------------------------------------------------------------------ bad input through the CLI
@pytest.mark.parametrize("argv, fragment", [
    (["train", "--run-name", "../../escape"], "run_name must be a directory name, not a path"),
    (["train", "--run-name", "/tmp/elsewhere"], "run_name must be a directory name, not a path"),
    (["train", "--run-name", ""], "run_name must be a directory name, not a path"),
    (["train", "--run-name", ".."], "run_name must be a directory name, not a path"),
    (["train", "--buffer-size", "1000000000000"], "needs 36.4 TiB of memory"),  # 10 float32 per Pendulum transition
    (["plot", "runs/x", "--out", "x.txt"], ".txt is not an image format"),
    (["tabular", "--plot", "x.txt"], ".txt is not an image format"),
    (["tabular", "--plot", "/proc/x.png"], "Cannot write the figure /proc/x.png"),
])
def test_bad_input_is_one_sentence_status_2_and_changes_nothing(argv, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert_clean_error(main(argv + (["--no-progress"] if argv[0] == "train" else [])), capsys.readouterr().err,
                       fragment)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not (tmp_path.parent / "escape").exists()


def test_plot_to_an_unwritable_place_and_to_a_name_without_suffix(run_copy, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_clean_error(main(["plot", str(run_copy), "--out", "/proc/x.png"]), capsys.readouterr().err,
                       "Cannot write the figure /proc/x.png")
    assert_clean_error(main(["plot", str(run_copy), "--out", str(tmp_path)]), capsys.readouterr().err,
                       "is a directory")
    (tmp_path / "figures").mkdir()
    assert main(["plot", str(run_copy), "--out", "figures/plot"]) == 0
    assert capsys.readouterr().out.strip() == "figures/plot.png"
    assert (tmp_path / "figures" / "plot.png").stat().st_size > 0
    assert os.listdir(tmp_path / "figures") == ["plot.png"]


def test_a_runs_directory_without_write_permission_is_one_sentence(tmp_path, capsys, monkeypatch):
    mkdir = Path.mkdir

    def denied(self, *args, **kwargs):  # as a non-root user meets a read-only --run-root (root ignores modes)
        if self.parent == tmp_path / "runs":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return mkdir(self, *args, **kwargs)

    (tmp_path / "runs").mkdir()
    monkeypatch.setattr(Path, "mkdir", denied)
    code = main(["train", *TINY_FLAGS, "--total-steps", "200", "--run-root", str(tmp_path / "runs")])
    assert_clean_error(code, capsys.readouterr().err, "Permission denied")
    assert not any((tmp_path / "runs").iterdir())


def test_a_bad_flag_value_is_one_line_not_the_usage(tmp_path):
    result = subprocess.run([sys.executable, "-m", "softac.cli", "train", "--batch-size", "many"], cwd=tmp_path,
                            capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "softac: error: argument --batch-size: invalid int value: 'many' (see softac train --help)."]
