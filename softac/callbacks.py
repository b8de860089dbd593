"""Hooks into the training loop: called at every evaluation and every metrics row.

    class StopAt(Callback):
        def on_evaluation(self, event):
            return event.returns.mean() >= -150     # True: stop now, with a checkpoint of every seed

`train(cfg, callbacks=[...])` and `resume(run_dirs, callbacks=[...])` call each callback in order; a
callback that returns True from a hook ends training cleanly: the loop stops after the current env
step, writes every seed's checkpoint and closes its logs (the run can be continued with `resume`).
Callbacks run on the host between env steps, so they may read files, print or report to a tuner
(softac's Ray Tune trials report through one), but whatever they do is time not spent training.
This module imports nothing heavy, so a callback can be defined before JAX is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class EvaluationEvent:
    """One evaluation of every seed of a run: `returns` [num_seeds, eval_episodes] of the deterministic policy."""

    step: int
    seeds: tuple[int, ...]
    run_dirs: tuple[Path, ...]
    returns: np.ndarray
    wall_time: float  # seconds of this run so far (the parts of a resumed run added up)


class Callback:
    """Base class of training callbacks; override the hooks you need. Returning True stops training."""

    def on_evaluation(self, event: EvaluationEvent) -> Optional[bool]:
        """After an evaluation, before the checkpoint of that step."""
        return None

    def on_log(self, step: int, rows: list[dict]) -> Optional[bool]:
        """After a metrics row of every seed is written: `rows[k]` is seed k's row (metrics.csv columns)."""
        return None
