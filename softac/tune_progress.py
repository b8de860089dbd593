"""The driver's view of a Ray Tune experiment of softac trials (imports Ray: only `softac.distributed` uses it).

A module-level class, because Tune pickles its run config (callbacks included) with the experiment
state, and a restored experiment (`softac sweep --resume`) prints and records through the same object.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Optional

from ray import tune
from ray.tune.experiment import Trial

OUTCOMES_NAME = "outcomes.json"  # trial name -> [Tune status, last env step, last error line] of each ended trial


def _counts(trials, ending=None, status: str = "") -> str:
    """Running/finished/failed counts; `ending` is a trial Tune is about to give `status` (not yet set)."""
    statuses = [status if t is ending else t.status for t in trials]
    running = statuses.count(Trial.RUNNING)
    done = statuses.count(Trial.TERMINATED)
    failed = statuses.count(Trial.ERROR)
    return f"[{running} running, {done} finished, {failed} failed of {len(trials)}]"


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

    def __init__(self, labels: dict[str, str], outcomes_path: str):
        self.labels, self.outcomes_path = labels, outcomes_path

    def _label(self, trial) -> str:
        name = trial.config["trial"]["name"]
        return f"{name} {self.labels.get(name, '')}".strip()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        print(f"{self._label(trial)}: env step {result['env_step']}, evaluation return {result['eval_return']:.1f} "
              f"(+- {result['eval_return_std']:.1f} over seeds) {_counts(trials)}", flush=True)

    def on_trial_recover(self, iteration, trials, trial, **info):
        print(f"{self._label(trial)}: its worker died ({_last_error_line(trial.error_file)}); restarting it from its "
              f"last checkpoint {_counts(trials)}", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record(trial, Trial.TERMINATED, "")
        print(f"{self._label(trial)}: done {_counts(trials, trial, Trial.TERMINATED)}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        error = _last_error_line(trial.error_file)
        self._record(trial, Trial.ERROR, error)
        print(f"{self._label(trial)}: FAILED ({error}) {_counts(trials, trial, Trial.ERROR)}", flush=True)

    def _record(self, trial, status: str, error: str) -> None:
        outcomes = read_outcomes(self.outcomes_path)
        outcomes[trial.config["trial"]["name"]] = [status, (trial.last_result or {}).get("env_step"), error]
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
