"""Per-run metrics: `metrics.csv` (one row per log point) and TensorBoard event files."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Optional

METRICS_NAME = "metrics.csv"

# The loop's own columns, written for every algorithm; an algorithm's metrics (its AlgorithmSpec) follow.
LOOP_COLUMNS = (
    "env_step", "wall_time", "episodes", "episode_return", "episode_length",
    "eval_return_mean", "eval_return_std", "steps_per_second",
)


def run_columns(metrics: tuple[str, ...]) -> tuple[str, ...]:
    """The columns of a run's metrics.csv: the loop's, then the algorithm's `metrics`."""
    return LOOP_COLUMNS + tuple(m for m in metrics if m not in LOOP_COLUMNS)


class RunLogger:
    """Appends rows to a run directory's metrics.csv and mirrors scalars to TensorBoard.

    `columns`: the names a row may hold (`run_columns` of the algorithm's metrics). A resumed run keeps
    the header its metrics.csv already has. A row with a name outside the columns is an error (KeyError),
    never a silent drop.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, columns: tuple[str, ...] = LOOP_COLUMNS):
        self.path = Path(run_dir) / METRICS_NAME
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), None)
            columns = tuple(header) if header else columns
        self.columns = columns
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=columns)
        if new:
            self._writer.writeheader()
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(run_dir))

    def log(self, row: dict) -> None:
        unknown = set(row) - set(self.columns)
        if unknown:
            raise KeyError(f"metrics {sorted(unknown)} are not columns of {self.path} (an algorithm's metrics must "
                           "be declared in its AlgorithmSpec)")
        self._writer.writerow({k: _format(v) for k, v in row.items()})
        self._file.flush()
        if self._tb is not None:
            step = int(row["env_step"])
            for key, value in row.items():
                if key != "env_step" and value is not None and not (isinstance(value, float) and math.isnan(value)):
                    self._tb.add_scalar(key, float(value), step)

    def flush(self) -> None:
        """Push metrics.csv and the TensorBoard events written so far to disk (done at every checkpoint)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def read_metrics(run_dir: str | Path) -> list[dict[str, Optional[float]]]:
    """Rows of a run's metrics.csv as dicts of floats (None where a column is empty)."""
    with open(Path(run_dir) / METRICS_NAME, newline="") as f:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in csv.DictReader(f)]


def truncate_metrics(run_dir: str | Path, last_step: int) -> None:
    """Drop rows past `last_step` (steps a resumed run will redo), rewriting the file atomically."""
    path = Path(run_dir) / METRICS_NAME
    if not path.exists():
        return
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        columns = reader.fieldnames or LOOP_COLUMNS
    kept = [r for r in rows if r["env_step"] and int(float(r["env_step"])) <= last_step]
    if len(kept) == len(rows):
        return
    tmp = path.with_name(f".{METRICS_NAME}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, path)
