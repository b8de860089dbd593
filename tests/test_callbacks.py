"""Training callbacks: hooks at every evaluation and metrics row; returning True stops with a checkpoint."""

from __future__ import annotations

import numpy as np

from softac import Callback, resume, train
from softac.checkpoint import checkpoint_step
from softac.logger import read_metrics
from tests.conftest import tiny_config


class Recorder(Callback):
    def __init__(self, stop_at_step=None):
        self.evaluations, self.logs, self.stop_at_step = [], [], stop_at_step

    def on_evaluation(self, event):
        self.evaluations.append(event)
        return event.step == self.stop_at_step

    def on_log(self, step, rows):
        self.logs.append((step, rows))


def test_callbacks_see_every_evaluation_and_row_and_can_stop_with_a_checkpoint(tmp_path):
    recorder = Recorder(stop_at_step=200)
    dirs = train(tiny_config(tmp_path, seeds=(0, 1), total_steps=400, eval_every=100, log_every=50), callbacks=[recorder])
    # Stopped at the evaluation of step 200, with a checkpoint of every seed there.
    assert [e.step for e in recorder.evaluations] == [100, 200]
    assert all(checkpoint_step(d) == 200 for d in dirs)
    event = recorder.evaluations[-1]
    assert event.seeds == (0, 1) and event.run_dirs == tuple(dirs) and event.returns.shape == (2, 2)
    rows = [r for r in read_metrics(dirs[1]) if r["eval_return_mean"] is not None]
    assert rows[-1]["env_step"] == 200
    np.testing.assert_allclose(rows[-1]["eval_return_mean"], event.returns[1].mean(), rtol=1e-5)
    # on_log: one row per seed at every metrics row written (log_every and evaluations).
    assert [step for step, _ in recorder.logs] == [50, 100, 150, 200]
    assert all(len(rows) == 2 and rows[0]["env_step"] == step for step, rows in recorder.logs)
    # The stopped run continues to its total_steps with resume.
    again = Recorder()
    resume(dirs, callbacks=[again])
    assert [e.step for e in again.evaluations] == [300, 400]
    assert all(checkpoint_step(d) == 400 for d in dirs)
