"""The driver's view of a Ray Tune experiment of softac trials (imports Ray: only `softac.distributed` uses it).

A module-level class, because Tune pickles its run config (callbacks included) with the experiment
state, and a restored experiment (`softac sweep --resume`) prints and records through the same object.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Optional

from ray import tune
from ray.tune.experiment import Trial

from softac.suggestion import trial_key


def _counts(trials, ending=None, status: str = "", total: Optional[int] = None) -> str:
    """Running/finished/failed counts of `total` trials (default: those Tune has made); `ending` is a trial Tune
    is about to give `status` (not yet set)."""
    statuses = [status if t is ending else t.status for t in trials]
    running = statuses.count(Trial.RUNNING)
    done = statuses.count(Trial.TERMINATED)
    failed = statuses.count(Trial.ERROR)
    return f"[{running} running, {done} finished, {failed} failed of {total or len(trials)}]"


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b")


def _last_error_line(error_file: Optional[str]) -> str:
    """The last `SomeError: message` line of a trial's error file (its exception), shortened."""
    if not error_file or not os.path.exists(error_file):
        return "no error recorded"
    lines = [line.strip() for line in Path(error_file).read_text(errors="replace").splitlines() if line.strip()]
    named = [line for line in lines if _EXCEPTION_LINE.match(line)]
    text = (named or lines or ["no error recorded"])[-1]
    return text if len(text) <= 200 else text[:197] + "..."


class Progress(tune.Callback):
    """One line per trial per evaluation (trial, what it runs, env step, evaluation return) and one per
    trial that finishes, fails or is restarted, each with the live count of running/finished/failed
    trials; and every trial that ended (finished, stopped by the scheduler or failed for good) in
    `outcomes_path`, kept across restored runs of the experiment. A trial that is not there did not end:
    the driver was interrupted or killed while it ran or waited."""

    def __init__(self, labels: dict[str, str], outcomes_path: str, total: Optional[int] = None):
        self.labels, self.outcomes_path, self.total = labels, outcomes_path, total

    def _label(self, trial) -> str:
        name = trial_key(trial.config)
        label = self.labels.get(name) or (trial.config.get("search") or {}).get("label", "")
        return f"{name} {label}".strip()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        print(f"{self._label(trial)}: env step {result['env_step']}, evaluation return {result['eval_return']:.1f} "
              f"(+- {result['eval_return_std']:.1f} over seeds) {_counts(trials, total=self.total)}", flush=True)

    def on_trial_recover(self, iteration, trials, trial, **info):
        print(f"{self._label(trial)}: its worker died ({_last_error_line(trial.error_file)}); restarting it from its "
              f"last checkpoint {_counts(trials, total=self.total)}", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record(trial, Trial.TERMINATED, "")
        print(f"{self._label(trial)}: done {_counts(trials, trial, Trial.TERMINATED, self.total)}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        error = _last_error_line(trial.error_file)
        self._record(trial, Trial.ERROR, error)
        print(f"{self._label(trial)}: FAILED ({error}) {_counts(trials, trial, Trial.ERROR, self.total)}", flush=True)

    def _record(self, trial, status: str, error: str) -> None:
        outcomes = read_outcomes(self.outcomes_path)
        outcomes[trial_key(trial.config)] = [status, (trial.last_result or {}).get("env_step"), error]
        tmp = f"{self.outcomes_path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(outcomes, f)
        os.replace(tmp, self.outcomes_path)


def read_outcomes(path: str | Path) -> dict[str, list]:
    """The ended trials recorded by `Progress` so far (empty if none)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


class NodeLost(RuntimeError):
    """The Ray instance has no live node to run trials on (raised by `NodeWatch` out of Tune's loop)."""


def raylet_alive() -> bool:
    """Whether this driver's Ray still has a node: the raylet process of a local instance this driver started
    (Ray's node object, a private attribute of Ray 2.x, read defensively), else any live node of the cluster."""
    import ray

    try:
        node = ray._private.worker.global_worker.node
        raylets = node.all_processes.get("raylet", [])
        if raylets:
            return all(info.process.poll() is None for info in raylets)
    except AttributeError:
        pass
    return any(n.get("Alive") for n in ray.nodes())


class NodeWatch(tune.Callback):
    """Checks every `every_s` seconds that the Ray instance still has a node, and raises NodeLost if it has
    none. Without it a local instance whose raylet died (killed by the OS or by a user, or taking its
    dashboard agent down with it, with which it shares its fate) leaves Tune waiting for ever for a node to
    run the restarted trial on."""

    def __init__(self, every_s: float = 5.0):
        self.every_s, self._last = every_s, 0.0

    def on_step_begin(self, iteration, trials, **info):
        now = time.monotonic()
        if now - self._last < self.every_s:
            return
        self._last = now
        if not raylet_alive():
            raise NodeLost("the Ray instance lost its only node (its raylet exited)")

    def __getstate__(self):  # pickled with the experiment state: the clock starts again when restored
        return {"every_s": self.every_s, "_last": 0.0}
