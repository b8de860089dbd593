"""What the host drivers of both training loops share around the loop itself: the seeds evaluation
episodes are reset with, the stop request that SIGINT/SIGTERM set, and the progress bar.

The Gymnasium loop (softac.train.Trainer) checks the stop request once per env step, the compiled loop
(softac.compiled.run.Runner) once per chunk; both show the same progress bar.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import TYPE_CHECKING, Iterator, Optional

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
