"""The one driver of both training loops (`LoopDriver.run`) and what it is made of: the seeds evaluation
episodes are reset with, the stop request that SIGINT/SIGTERM set, and the progress bar.

The Gymnasium loop (softac.train.Trainer) advances one loop iteration (num_envs env steps per seed) at a
time, the compiled loop (softac.compiled.run.Runner) one chunk; the driver checks the stop request after
each, and both show the same progress bar.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Iterator, Optional

from softac.errors import TrainingInterrupted

if TYPE_CHECKING:
    from softac.config import SACConfig

EVAL_SEED_OFFSET = 100_000  # evaluation episode i of training seed s is reset with s + 100_000 + i


class StopRequest:
    """Set by SIGINT/SIGTERM: the loop checks `signum` once per env step and stops at the end of that step."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self.saving = False

    def handle(self, signum: int, frame) -> None:
        if self.signum is None:
            self.signum = signum
            print(f"softac: {signal.Signals(signum).name} received; stopping after this env step and saving "
                  "checkpoints", file=sys.stderr, flush=True)
        elif self.saving:
            print("softac: still saving the checkpoints; exiting when they are written", file=sys.stderr, flush=True)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """A StopRequest that SIGINT and SIGTERM set while the block runs (their previous handlers are restored
    after). Python lets only the main thread install handlers: elsewhere (e.g. a Ray Tune trial) it never fires."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    signums = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in signums}
    for s in signums:
        signal.signal(s, stop.handle)
    try:
        yield stop
    finally:
        for s in signums:
            signal.signal(s, previous[s] if previous[s] is not None else signal.SIG_DFL)


def format_return(value: Optional[float]) -> str:
    """A return as the progress bar shows it: one decimal, '-' before there is one."""
    return "-" if value is None else f"{value:.1f}"


def progress_bar(cfg: SACConfig):
    """A rich progress bar: steps, steps/s, recent episode return, last evaluation, time left."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeRemainingColumn)
    from rich.text import Text

    class SpeedColumn(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed or 0.0:6.1f} steps/s")

    return Progress(
        TextColumn(f"[bold]{cfg.env}[/bold] {cfg.algo} seeds {','.join(map(str, cfg.seed_list))}"),
        BarColumn(),
        MofNCompleteColumn(),
        SpeedColumn(),
        TextColumn("return {task.fields[ret]}"),
        TextColumn("eval {task.fields[ev]}"),
        TimeRemainingColumn(),
        disable=not cfg.progress,
        transient=False,
    )


class LoopDriver:
    """The one driver of both training loops: it owns what they do around their steps (the stop request of
    SIGINT/SIGTERM, the progress bar, the stop checks, the checkpoint of an interrupted run, closing the logs
    and environments); a loop supplies how it advances and what it saves.

    A subclass (through softac.loop_schedule.ScheduledLoop) sets `cfg` and `step`, and provides `advance`,
    `save`, `run_dirs`, `_should_stop`, `progress_due`, `progress_returns`, `checkpoint_is_current` and
    `close`.
    """

    cfg: "SACConfig"
    step: int

    # ---- what a loop provides
    def advance(self) -> None:
        """One iteration: the env steps (and the updates due) that move `step` forward, then the schedule."""
        raise NotImplementedError

    def progress_due(self) -> bool:
        """Whether to redraw the progress bar after this iteration."""
        return True

    def progress_returns(self) -> tuple[Optional[float], Optional[float]]:
        """(the mean recent episode return, the mean last evaluation return) over seeds, None before the first."""
        raise NotImplementedError

    def checkpoint_is_current(self) -> bool:
        """True when every seed's last checkpoint is at `step` (nothing to save on an interruption)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the logs (and environments) of the run."""

    # ---- the driver
    def run(self) -> list:
        """Train to cfg.total_steps (or until a stop condition); on SIGINT/SIGTERM stop after the current
        iteration, save every seed's checkpoint and raise TrainingInterrupted. Returns the run directories."""
        cfg = self.cfg
        self._start = time.time()
        self._rate_mark, self._paused_seconds = (self.step, self._start), 0.0
        interrupted = False
        try:
            with stop_on_signals() as stop, progress_bar(cfg) as progress:
                task = progress.add_task("train", total=cfg.total_steps, completed=self.step, ret="-", ev="-")
                while self.step < cfg.total_steps and not self._should_stop() and stop.signum is None:
                    self.advance()
                    if self.progress_due():
                        recent, last_eval = self.progress_returns()
                        progress.update(task, completed=self.step, ret=format_return(recent),
                                        ev=format_return(last_eval))
                interrupted = stop.signum is not None and self.step < cfg.total_steps and not self._should_stop()
                if interrupted:
                    stop.saving = True  # further signals are only reported: the save completes
                    if not self.checkpoint_is_current():
                        self.save()
        finally:
            self.close()
        if interrupted:
            raise TrainingInterrupted(stop.signum, self.step, list(self.run_dirs()))
        return list(self.run_dirs())
