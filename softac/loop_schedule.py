"""What a training loop does on the host once env steps are taken: evaluate, log, checkpoint and tell the
callbacks, on their schedules. Shared by the Gymnasium loop (softac.train.Trainer, after every loop
iteration) and the compiled loop (softac.compiled.run.Runner, after every chunk), so both write the same
rows at the same steps.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from softac.callbacks import Callback, EvaluationEvent
from softac.config import SACConfig
from softac.errors import SoftacError
from softac.loop_driver import LoopDriver


def nonfinite_error(seed: int, env_step: int, last_checkpoint_step: Optional[int], run_dir: Path) -> SoftacError:
    """The error that stops training when seed `seed`'s environment returned NaN or inf at `env_step`; the
    checkpoint on disk (if any) predates it and is kept."""
    kept = (f"the last good checkpoint (step {last_checkpoint_step}) is kept" if last_checkpoint_step is not None
            else "no checkpoint had been written yet")
    return SoftacError(f"The environment of seed {seed} returned a non-finite observation or reward at env step "
                       f"{env_step}; training stopped and {kept} in {run_dir}.")


class ScheduledLoop(LoopDriver):
    """The host-side schedule of a loop, driven by `LoopDriver.run`. A subclass sets `cfg`, `step`, `callbacks`,
    `wall_time_offset` and `_stop_requested`, and provides `evaluate`, `_log`, `save`, `seeds`, `run_dirs`,
    `last_evals` and the driver's `advance`, `progress_returns`, `checkpoint_is_current` and `close`."""

    cfg: SACConfig
    step: int
    callbacks: Sequence[Callback]
    wall_time_offset: float
    _start: float
    _paused_seconds: float
    _rate_mark: tuple[int, float]  # (env step, time) of the last metrics row
    _stop_requested: bool

    # ---- what a subclass provides
    def evaluate(self) -> np.ndarray:
        """Deterministic returns [N, eval_episodes] of every seed's current policy."""
        raise NotImplementedError

    def _log(self, eval_returns: Optional[np.ndarray]) -> None:
        raise NotImplementedError

    def save(self) -> None:
        raise NotImplementedError

    def seeds(self) -> tuple[int, ...]:
        raise NotImplementedError

    def run_dirs(self) -> tuple[Path, ...]:
        raise NotImplementedError

    def last_evals(self) -> list[Optional[float]]:
        """Every seed's last mean evaluation return (None before its first)."""
        raise NotImplementedError

    # ---- the schedule
    def _crossed(self, interval: int) -> bool:
        """True when the env steps of the last iteration (num_envs x action_repeat of them) reached a multiple of
        `interval`."""
        return self.step // interval > (self.step - self.cfg.env_steps_per_iteration) // interval

    def _should_stop(self) -> bool:
        """True once a callback asked to stop, or every seed's last evaluation reached `stop_at_eval_return`."""
        threshold = self.cfg.stop_at_eval_return
        return self._stop_requested or (
            threshold is not None and all(e is not None and e >= threshold for e in self.last_evals()))

    def _notify(self, hook: str, *args) -> None:
        """Call `hook` of every callback; one that returns True asks the loop to stop after this step."""
        for callback in self.callbacks:
            if getattr(callback, hook)(*args):
                self._stop_requested = True

    def _before_checkpoint(self) -> None:
        """Work due after logging and before the checkpoint of this step (the Gymnasium loop records videos)."""

    def _after_step(self) -> None:
        """Evaluate, log and checkpoint on their schedules, then tell the callbacks about the evaluation.

        The checkpoint of this step is on disk before any callback hears of it, so whatever a callback
        reports (to Ray Tune, say) can be resumed from; a callback that asks to stop gets a checkpoint too.
        """
        cfg, step = self.cfg, self.step
        final = step == cfg.total_steps
        evaluated = None
        if final or (cfg.eval_every and self._crossed(cfg.eval_every)):
            started = time.time()
            evaluated = self.evaluate()
            self._paused_seconds += time.time() - started
            final = final or self._should_stop()
        if final or evaluated is not None or self._crossed(cfg.log_every):
            self._log(evaluated)
            final = final or self._should_stop()
        self._before_checkpoint()
        saved = final or bool(cfg.checkpoint_every and self._crossed(cfg.checkpoint_every))
        if saved:
            self._timed_save()
        if evaluated is not None and self.callbacks:
            self._notify("on_evaluation", EvaluationEvent(
                step=step, seeds=tuple(self.seeds()), run_dirs=tuple(self.run_dirs()), returns=evaluated,
                wall_time=self.wall_time_offset + time.time() - self._start))
            if not saved and self._should_stop():
                self._timed_save()

    def _training_rate(self, now: float) -> float:
        """Env steps per second since the last metrics row, without evaluation, video and checkpoint time
        (the mark moves to this row)."""
        mark_step, mark_time = self._rate_mark
        rate = (self.step - mark_step) / max(now - mark_time - self._paused_seconds, 1e-9)
        self._rate_mark, self._paused_seconds = (self.step, now), 0.0
        return rate

    def _add_evaluation(self, row: dict, returns: np.ndarray, seed: int, rate: float) -> None:
        """Put one seed's evaluation returns [eval_episodes] into its metrics row (and print it if asked)."""
        row["eval_return_mean"] = float(returns.mean())
        row["eval_return_std"] = float(returns.std())
        if self.cfg.print_evaluations:
            print(f"{self.cfg.env} seed {seed}: env step {self.step}, {rate:.1f} steps/s, evaluation "
                  f"return {row['eval_return_mean']:.1f} +- {row['eval_return_std']:.1f}", flush=True)

    def _timed_save(self) -> None:
        """`save`, with its time kept out of the run's training wall time."""
        started = time.time()
        self.save()
        self._paused_seconds += time.time() - started
