"""The statistics deep-RL results are reported with since Agarwal et al. (NeurIPS 2021), "Deep Reinforcement
Learning at the Edge of the Statistical Precipice" (the rliable library), in numpy and scipy.

Definitions (docs/statistics.md explains each and `softac compare` prints them):
- interquartile mean (IQM): the mean of the middle 50% of all scores pooled over runs and tasks, the 25%
  trimmed mean `scipy.stats.trim_mean(scores, 0.25)` (rliable's `metrics.aggregate_iqm`): with N scores,
  floor(N / 4) are cut from each end of the sorted scores, so 10 scores keep the 3rd to 8th;
- mean: the mean over tasks of each task's mean score; median: the median over tasks of those task means;
- optimality gap at gamma (1 by default): gamma - mean(min(score, gamma)), how far scores fall short of gamma;
- normalised score: (score - low) / (high - low) with a task's reference low and high (e.g. random, expert);
- probability of improvement P(X > Y): for each task, the Mann-Whitney U statistic of X's runs against Y's
  divided by n m, i.e. the fraction of (x, y) pairs with x > y, ties counted 1/2; averaged over tasks;
- performance profile (score distribution): the fraction of runs with a score above tau, for each tau of a grid;
- stratified bootstrap confidence interval: each replicate resamples, with replacement, the runs of every
  task independently (never mixing tasks), and the interval is the percentile interval of the statistic
  over the replicates (95% by default, rliable's default `method='percentile'`), from a fixed seed.

Scores are given in one of two forms, and every function takes both:
- an array [runs, tasks] (a 1-D array is one task), with optional leading batch axes [..., runs, tasks];
- a mapping task -> 1-D array of that task's runs, for tasks with different numbers of runs (leading batch
  axes allowed as well: task -> [..., runs_t]).
The statistics compute over the last axes and keep the batch axes, which is how a bootstrap evaluates all
its replicates at once. With a different number of runs per task, the IQM pools all runs (a task with
more runs weighs more); the mean, median, optimality gap and profile weigh every task equally. With the
same number of runs per task all of them equal rliable's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import scipy.stats

from softac.errors import SoftacError

Scores = Union[np.ndarray, Sequence, Mapping[str, np.ndarray]]

# rliable's defaults: 50,000 bootstrap replicates for aggregate intervals, 2,000 for performance profiles.
DEFAULT_REPS = 50_000
PROFILE_REPS = 2_000
DEFAULT_CONFIDENCE = 0.95
_CHUNK_ELEMENTS = 4_000_000  # the resampled values held at once while bootstrapping


# ------------------------------------------------------------------------------------ score forms
def task_scores(scores: Scores) -> list[np.ndarray]:
    """The per-task float64 arrays [..., runs_t] of `scores` (an array [..., runs, tasks] or a mapping task ->
    [..., runs_t]); SoftacError for a task without runs or a score that is not finite."""
    if isinstance(scores, Mapping):
        tasks = [np.asarray(v, dtype=np.float64) for v in scores.values()]
        names = list(scores)
        tasks = [t[None] if t.ndim == 0 else t for t in tasks]
    else:
        array = np.asarray(scores, dtype=np.float64)
        if array.ndim == 0:
            array = array[None]
        if array.ndim == 1:
            array = array[:, None]
        tasks = [array[..., t] for t in range(array.shape[-1])]
        names = list(range(len(tasks)))
    if not tasks:
        raise SoftacError("The scores have no tasks.")
    for name, t in zip(names, tasks):
        if t.shape[-1] == 0:
            raise SoftacError(f"Task {name} has no scores.")
        if not np.all(np.isfinite(t)):
            raise SoftacError(f"Task {name} has a score that is not finite (NaN or infinite).")
    return tasks


def _same_form(scores: Scores, tasks: list[np.ndarray]) -> Scores:
    """`tasks` (per-task arrays) in the form of `scores`: a mapping with its keys, or an array [..., runs, tasks]."""
    if isinstance(scores, Mapping):
        return dict(zip(scores, tasks))
    return np.stack(tasks, axis=-1)


def _pooled(tasks: list[np.ndarray]) -> np.ndarray:
    """All runs of all tasks along the last axis: [..., sum of runs_t]."""
    return np.concatenate(tasks, axis=-1)


# ------------------------------------------------------------------------------------ point estimates
def interquartile_mean(scores: Scores) -> np.ndarray:
    """IQM: the 25% trimmed mean of all scores pooled over runs and tasks (rliable's `aggregate_iqm`,
    `scipy.stats.trim_mean(scores, 0.25, axis=None)`): of N sorted scores, floor(N / 4) are cut at each end
    and the rest averaged. Shape: the batch axes of `scores` (a float for [runs, tasks])."""
    return scipy.stats.trim_mean(_pooled(task_scores(scores)), proportiontocut=0.25, axis=-1)


def mean_score(scores: Scores) -> np.ndarray:
    """Mean over tasks of each task's mean score over its runs (rliable's `aggregate_mean`)."""
    return np.mean(np.stack([t.mean(axis=-1) for t in task_scores(scores)], axis=-1), axis=-1)


def median_score(scores: Scores) -> np.ndarray:
    """Median over tasks of each task's mean score over its runs (rliable's `aggregate_median`)."""
    return np.median(np.stack([t.mean(axis=-1) for t in task_scores(scores)], axis=-1), axis=-1)


def optimality_gap(scores: Scores, gamma: float = 1.0) -> np.ndarray:
    """gamma - mean(min(score, gamma)) (rliable's `aggregate_optimality_gap`): the amount by which scores
    fall short of gamma (1 = the normalised reference high), a score above gamma counting as gamma.
    Each task weighs the same (the mean of its runs' shortfalls), as rliable's mean over all scores does
    with the same number of runs per task. Lower is better."""
    return gamma - np.mean(np.stack([np.minimum(t, gamma).mean(axis=-1) for t in task_scores(scores)], axis=-1),
                           axis=-1)


def normalized_scores(scores: Scores, low, high) -> Scores:
    """(score - low) / (high - low), in the form of `scores`. `low` and `high`: one number for every task, or
    one per task (a sequence [tasks] for an array, a mapping task -> number for a mapping). SoftacError where
    high == low."""
    tasks = task_scores(scores)
    keys = list(scores) if isinstance(scores, Mapping) else list(range(len(tasks)))

    def per_task(value, what: str) -> list[float]:
        if isinstance(value, Mapping):
            missing = [k for k in keys if k not in value]
            if missing:
                raise SoftacError(f"No normalisation {what} for task {missing[0]}.")
            return [float(value[k]) for k in keys]
        values = np.broadcast_to(np.asarray(value, dtype=np.float64), (len(tasks),))
        return [float(v) for v in values]

    lows, highs = per_task(low, "low"), per_task(high, "high")
    for k, lo, hi in zip(keys, lows, highs):
        if not (np.isfinite(lo) and np.isfinite(hi)) or hi == lo:
            raise SoftacError(f"The normalisation range of task {k} must be two different finite numbers, "
                              f"got low {lo:g} and high {hi:g}.")
    normalised = _same_form(scores, [(t - lo) / (hi - lo) for t, lo, hi in zip(tasks, lows, highs)])
    return normalised if isinstance(scores, Mapping) else normalised.reshape(np.shape(scores))


def probability_of_improvement(scores_x: Scores, scores_y: Scores) -> np.ndarray:
    """P(X > Y) averaged over tasks: for each task the Mann-Whitney U statistic of X's runs over Y's divided
    by n m (the fraction of pairs (x_i, y_j) with x_i > y_j, a tie counting 1/2), then the mean over tasks
    (rliable's `probability_of_improvement`). X and Y must have the same tasks; their numbers of runs may
    differ. Batch axes of the two broadcast."""
    x_tasks, y_tasks = task_scores(scores_x), task_scores(scores_y)
    if isinstance(scores_x, Mapping) != isinstance(scores_y, Mapping):
        raise SoftacError("Give both score sets in the same form (two arrays or two mappings).")
    if isinstance(scores_x, Mapping) and list(scores_x) != list(scores_y):
        raise SoftacError(f"The two score sets have different tasks ({', '.join(map(str, scores_x))} and "
                          f"{', '.join(map(str, scores_y))}).")
    if len(x_tasks) != len(y_tasks):
        raise SoftacError(f"The two score sets have {len(x_tasks)} and {len(y_tasks)} tasks; they must be the same.")
    per_task = []
    for x, y in zip(x_tasks, y_tasks):
        xx, yy = x[..., :, None], y[..., None, :]
        per_task.append(np.mean(xx > yy, axis=(-2, -1)) + 0.5 * np.mean(xx == yy, axis=(-2, -1)))
    return np.mean(np.stack(per_task, axis=-1), axis=-1)


def performance_profile(scores: Scores, taus: Sequence[float]) -> np.ndarray:
    """The score distribution: for each tau of `taus`, the fraction of runs with a score above tau (strictly,
    as rliable's `run_score_deviation`), averaged over tasks. Shape: [..., len(taus)]."""
    taus = np.asarray(taus, dtype=np.float64)
    return np.mean(np.stack([np.mean(t[..., :, None] > taus, axis=-2) for t in task_scores(scores)], axis=-1),
                   axis=-1)


def tau_grid(*score_sets: Scores, points: int = 101) -> np.ndarray:
    """`points` evenly spaced thresholds over the scores of all `score_sets`, from a little (2% of their range)
    below the lowest to a little above the highest, so every profile falls from 1 to 0 on the grid."""
    pooled = np.concatenate([_pooled(task_scores(s)).ravel() for s in score_sets])
    low, high = float(pooled.min()), float(pooled.max())
    margin = 0.02 * (high - low) if high > low else 0.5 * max(1.0, abs(low))
    return np.linspace(low - margin, high + margin, points)


# ------------------------------------------------------------------------------------ stratified bootstrap
def stratified_resamples(scores: Scores, reps: int, rng: np.random.Generator,
                         chunk: Optional[int] = None) -> Iterator[Scores]:
    """Bootstrap replicates of `scores` (an array [runs, tasks] or a mapping task -> [runs_t]), `chunk` at a
    time: each replicate draws, for every task independently, as many runs as the task has, with replacement
    from that task's runs only (the stratified bootstrap of rliable's `StratifiedBootstrap`). Yields the
    replicates in the form of `scores` with a leading axis: [chunk, runs, tasks] or task -> [chunk, runs_t]."""
    tasks = task_scores(scores)
    if any(t.ndim != 1 for t in tasks):
        raise SoftacError("Bootstrap scores must be [runs, tasks] (or task -> runs), without batch axes.")
    if reps < 1:
        raise SoftacError(f"The number of bootstrap replicates must be positive, got {reps}.")
    size = sum(len(t) for t in tasks)
    chunk = chunk or max(1, min(reps, _CHUNK_ELEMENTS // size))
    done = 0
    while done < reps:
        n = min(chunk, reps - done)
        yield _same_form(scores, [t[rng.integers(0, len(t), size=(n, len(t)))] for t in tasks])
        done += n


def stratified_bootstrap(statistic: Callable[..., np.ndarray], *score_sets: Scores, reps: int = DEFAULT_REPS,
                         seed: int = 0) -> np.ndarray:
    """The statistic of `reps` stratified bootstrap replicates: [reps, ...]. Each of `score_sets` (one per
    algorithm, e.g. two for a probability of improvement) is resampled within each task independently of the
    others (rliable's `StratifiedIndependentBootstrap`); `statistic(*replicates)` must take score sets with a
    leading replicate axis, as every statistic of this module does."""
    if not score_sets:
        raise SoftacError("The bootstrap needs at least one set of scores.")
    rng = np.random.default_rng(seed)
    sets = [task_scores(s) for s in score_sets]
    if len({len(ts) for ts in sets}) != 1:
        raise SoftacError("The score sets of a bootstrap must have the same tasks.")
    # Memory per replicate: the resampled runs, or the pairs a two-set statistic compares.
    cost = sum(int(np.prod([len(ts[t]) for ts in sets])) + sum(len(ts[t]) for ts in sets) for t in range(len(sets[0])))
    chunk = max(1, min(reps, _CHUNK_ELEMENTS // cost))
    streams = [stratified_resamples(s, reps, rng, chunk) for s in score_sets]
    values = []
    for replicates in zip(*streams):
        value = np.asarray(statistic(*replicates), dtype=np.float64)
        if value.ndim == 0 or value.shape[0] != len(task_scores(replicates[0])[0]):
            raise ValueError("The statistic must keep the leading replicate axis of its scores (compute over the "
                             "last axes, as the statistics of softac.statistics do).")
        values.append(value)
    return np.concatenate(values, axis=0)


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap confidence interval [low, high] (floats, or arrays of one shape)."""

    point: Union[float, np.ndarray]
    low: Union[float, np.ndarray]
    high: Union[float, np.ndarray]
    confidence: float = DEFAULT_CONFIDENCE

    def text(self, digits: int = 2) -> str:
        """'point [low, high]' (for a scalar interval)."""
        return f"{float(self.point):.{digits}f} [{float(self.low):.{digits}f}, {float(self.high):.{digits}f}]"


def percentile_interval(replicates: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """The percentile bootstrap interval: the (1 - c) / 2 and (1 + c) / 2 quantiles of the replicates
    [reps, ...] along the first axis (numpy's linear interpolation)."""
    if not 0.0 < confidence < 1.0:
        raise SoftacError(f"The confidence level must be between 0 and 1, got {confidence}.")
    low, high = np.percentile(replicates, [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2], axis=0)
    return low, high


def bootstrap_interval(statistic: Callable[..., np.ndarray], *score_sets: Scores, reps: int = DEFAULT_REPS,
                       confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Interval:
    """`statistic(*score_sets)` with its stratified bootstrap percentile interval (rliable's
    `get_interval_estimates(..., method='percentile')`), reproducible from `seed`. For example
    `bootstrap_interval(interquartile_mean, scores)` or
    `bootstrap_interval(probability_of_improvement, scores_x, scores_y)`."""
    point = np.asarray(statistic(*score_sets), dtype=np.float64)
    low, high = percentile_interval(stratified_bootstrap(statistic, *score_sets, reps=reps, seed=seed), confidence)
    return Interval(point=_value(point), low=_value(low), high=_value(high), confidence=confidence)


def _value(array: np.ndarray):
    """A float for a 0-d array, else the array."""
    return float(array) if np.ndim(array) == 0 else np.asarray(array)


def performance_profile_interval(scores: Scores, taus: Sequence[float], reps: int = PROFILE_REPS,
                                 confidence: float = DEFAULT_CONFIDENCE, seed: int = 0) -> Interval:
    """The performance profile at `taus` with pointwise stratified bootstrap percentile intervals
    (rliable's `create_performance_profile`, 2,000 replicates by default); arrays [len(taus)]."""
    taus = np.asarray(taus, dtype=np.float64)
    return bootstrap_interval(lambda s: performance_profile(s, taus), scores, reps=reps, confidence=confidence,
                              seed=seed)


def seed_interval(values: Sequence[float], reps: int = 10_000, seed: int = 0) -> Optional[tuple[float, float, float]]:
    """(IQM, low, high) of one task's runs (seeds): their interquartile mean with its 95% percentile bootstrap
    interval, for the tables of `softac benchmark`, `sweep` and `tune`; None with fewer than two runs."""
    if len(values) < 2:
        return None
    interval = bootstrap_interval(interquartile_mean, np.asarray(values, dtype=np.float64)[:, None], reps=reps, seed=seed)
    return float(interval.point), float(interval.low), float(interval.high)
