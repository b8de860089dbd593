"""softac.statistics against independent computations (hand-sorted IQMs, pairwise counts, scipy's bootstrap,
coverage on a known distribution) and `softac compare` on small fake run directories."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from softac import statistics as st
from softac.cli import main
from softac.compare import RunScore, compare, write_figures
from softac.config import SACConfig
from softac.errors import SoftacError
from softac.logger import RunLogger

# ------------------------------------------------------------------------------------ point estimates


def test_iqm_is_the_mean_of_the_hand_sorted_middle_half():
    # 8 scores (runs 4 x tasks 2): sorted 0 1 2 3 5 8 13 21, the middle half is 2 3 5 8.
    scores = np.array([[13.0, 2.0], [0.0, 21.0], [5.0, 1.0], [8.0, 3.0]])
    assert st.interquartile_mean(scores) == pytest.approx((2 + 3 + 5 + 8) / 4)
    # 10 scores, a fractional cut-off: 10 / 4 = 2.5, and rliable (scipy.stats.trim_mean) cuts floor(2.5) = 2 at
    # each end: sorted 0 1 1 2 3 5 8 13 21 34 keeps 1 2 3 5 8 13.
    scores = np.array([[34.0, 1.0], [3.0, 13.0], [0.0, 8.0], [21.0, 2.0], [5.0, 1.0]])
    assert st.interquartile_mean(scores) == pytest.approx((1 + 2 + 3 + 5 + 8 + 13) / 6)
    # 7 scores: floor(1.75) = 1 cut at each end: sorted 1 4 9 16 25 36 49 keeps 4 9 16 25 36.
    assert st.interquartile_mean(np.array([49.0, 1.0, 25.0, 4.0, 36.0, 16.0, 9.0])) == pytest.approx(90 / 5)
    # Tasks with different numbers of runs pool all runs: 0 1 2 3 5 8 13 21 again.
    ragged = {"a": [13.0, 0.0, 5.0], "b": [2.0, 21.0, 1.0, 8.0, 3.0]}
    assert st.interquartile_mean(ragged) == pytest.approx(4.5)
    # rliable's aggregate_iqm on random [runs, tasks] of every size from 1 to 12 runs (all cut-off fractions).
    rng = np.random.default_rng(0)
    for runs in range(1, 13):
        scores = rng.normal(size=(runs, 3))
        assert st.interquartile_mean(scores) == pytest.approx(scipy.stats.trim_mean(scores, 0.25, axis=None))
    # Leading batch axes are kept: one IQM per row.
    batch = np.stack([np.array([[13.0, 2.0], [0.0, 21.0], [5.0, 1.0], [8.0, 3.0]]), np.ones((4, 2))])
    np.testing.assert_allclose(st.interquartile_mean(batch), [4.5, 1.0])


def test_mean_median_optimality_gap_and_normalisation_by_hand():
    scores = np.array([[0.2, 1.5, 0.1], [0.4, 0.5, 0.3], [0.9, 1.0, 0.2]])  # runs 3 x tasks 3
    task_means = [0.5, 1.0, 0.2]
    assert st.mean_score(scores) == pytest.approx(sum(task_means) / 3)
    assert st.median_score(scores) == pytest.approx(0.5)
    clipped = [0.2, 1.0, 0.1, 0.4, 0.5, 0.3, 0.9, 1.0, 0.2]  # min(score, 1)
    assert st.optimality_gap(scores) == pytest.approx(1 - sum(clipped) / 9)
    assert st.optimality_gap(scores, gamma=0.5) == pytest.approx(0.5 - np.mean(np.minimum(scores, 0.5)))
    ragged = {"a": [1.0, 3.0], "b": [10.0]}  # each task weighs the same in the mean
    assert st.mean_score(ragged) == pytest.approx((2.0 + 10.0) / 2)

    returns = np.array([[-1500.0, 50.0], [-150.0, -50.0], [-825.0, 95.0]])
    normalised = st.normalized_scores(returns, [-1500.0, -50.0], [-150.0, 95.0])
    np.testing.assert_allclose(normalised, [[0.0, 100 / 145], [1.0, 0.0], [0.5, 1.0]])
    by_env = st.normalized_scores({"P": [-825.0], "M": [22.5]}, {"P": -1500.0, "M": -50.0}, {"P": -150.0, "M": 95.0})
    assert by_env["P"] == pytest.approx([0.5]) and by_env["M"] == pytest.approx([0.5])
    np.testing.assert_allclose(st.normalized_scores([[2.0, 4.0]], 0.0, 4.0), [[0.5, 1.0]])
    np.testing.assert_allclose(st.normalized_scores(np.array([1.0, 3.0]), 1.0, 5.0), [0.0, 0.5])  # one task, 1-D
    with pytest.raises(SoftacError, match="two different finite numbers"):
        st.normalized_scores(returns, 0.0, 0.0)
    with pytest.raises(SoftacError, match="not finite"):
        st.mean_score([[1.0, np.nan]])


def _pairwise_probability(x, y) -> float:
    """Direct count over every pair: x > y counts 1, a tie 1/2."""
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in x for b in y)
    return wins / (len(x) * len(y))


def test_probability_of_improvement_is_the_pairwise_count_with_ties():
    x = {"t0": [1.0, 2.0, 2.0, 5.0], "t1": [0.0, 0.0, 7.0]}
    y = {"t0": [2.0, 3.0, 1.0], "t1": [0.0, 1.0, 7.0, 7.0, -1.0]}
    expected = np.mean([_pairwise_probability(x[t], y[t]) for t in x])
    assert st.probability_of_improvement(x, y) == pytest.approx(expected)
    # The Mann-Whitney U statistic of x over y divided by n m (scipy's, as rliable computes it).
    u = [scipy.stats.mannwhitneyu(x[t], y[t], alternative="greater").statistic / (len(x[t]) * len(y[t])) for t in x]
    assert st.probability_of_improvement(x, y) == pytest.approx(np.mean(u))
    assert st.probability_of_improvement(x, y) + st.probability_of_improvement(y, x) == pytest.approx(1.0)
    same = np.array([[1.0, 4.0], [2.0, 4.0], [3.0, 0.0]])
    assert st.probability_of_improvement(same, same) == pytest.approx(0.5)
    with pytest.raises(SoftacError, match="different tasks"):
        st.probability_of_improvement(x, {"t0": [1.0], "t2": [1.0]})


def test_performance_profile_counts_runs_strictly_above_tau():
    scores = np.array([[0.0, 2.0], [1.0, 3.0], [2.0, 4.0], [3.0, 5.0]])
    taus = [-1.0, 0.0, 2.0, 2.5, 5.0]
    direct = [np.mean([np.mean(scores[:, t] > tau) for t in range(2)]) for tau in taus]
    np.testing.assert_allclose(st.performance_profile(scores, taus), direct)
    np.testing.assert_allclose(direct, [1.0, 7 / 8, 0.5, 0.5, 0.0])
    grid = st.tau_grid(scores, scores + 1, points=11)
    assert grid[0] < 0.0 and grid[-1] > 6.0 and len(grid) == 11
    assert st.performance_profile(scores, grid)[0] == 1.0 and st.performance_profile(scores + 1, grid)[-1] == 0.0


# ------------------------------------------------------------------------------------ the bootstrap
def test_resampling_never_mixes_tasks():
    rng = np.random.default_rng(3)
    low, high = rng.uniform(0, 1, size=7), rng.uniform(100, 101, size=7)  # disjoint score ranges
    scores = np.stack([low, high], axis=1)  # [runs 7, tasks 2]
    seen_different = False
    for chunk in st.stratified_resamples(scores, reps=500, rng=np.random.default_rng(0), chunk=128):
        assert chunk.shape[1:] == (7, 2)
        assert np.isin(chunk[..., 0], low).all() and np.isin(chunk[..., 1], high).all()
        seen_different |= bool((np.sort(chunk[..., 0], axis=-1) != np.sort(low)).any())
    assert seen_different  # it does resample
    ragged = {"low": low[:3], "high": high}
    for chunk in st.stratified_resamples(ragged, reps=300, rng=np.random.default_rng(1)):
        assert chunk["low"].shape[1] == 3 and chunk["high"].shape[1] == 7
        assert np.isin(chunk["low"], low[:3]).all() and np.isin(chunk["high"], high).all()
    # So the mean of the low task's replicates stays in its range: [0, 1] on average with [100, 101].
    replicates = st.stratified_bootstrap(st.mean_score, scores, reps=2000, seed=0)
    assert replicates.shape == (2000,)
    assert ((replicates >= 50) & (replicates <= 51)).all()


def test_bootstrap_interval_agrees_with_scipys_independent_resampling_and_is_reproducible():
    rng = np.random.default_rng(11)
    tasks = [rng.normal(loc, 1.0, size=n) for loc, n in ((0.0, 12), (3.0, 9), (-1.0, 15))]
    scores = {f"t{i}": t for i, t in enumerate(tasks)}
    ours = st.bootstrap_interval(st.mean_score, scores, reps=20_000, seed=0)

    def mean_of_means(*samples, axis=-1):
        return np.mean([np.mean(s, axis=axis) for s in samples], axis=0)

    # scipy resamples each sample (task) independently: a stratified bootstrap.
    seed_arg = "rng" if "rng" in inspect.signature(scipy.stats.bootstrap).parameters else "random_state"  # scipy < 1.15
    theirs = scipy.stats.bootstrap(tasks, mean_of_means, n_resamples=20_000, method="percentile",
                                   confidence_level=0.95, **{seed_arg: np.random.default_rng(5)}).confidence_interval
    width = theirs.high - theirs.low
    assert ours.point == pytest.approx(np.mean([t.mean() for t in tasks]))
    assert abs(ours.low - theirs.low) < 0.06 * width and abs(ours.high - theirs.high) < 0.06 * width
    again = st.bootstrap_interval(st.mean_score, scores, reps=20_000, seed=0)
    assert (again.low, again.high) == (ours.low, ours.high)
    other = st.bootstrap_interval(st.mean_score, scores, reps=20_000, seed=1)
    assert (other.low, other.high) != (ours.low, ours.high)


def test_the_95_percent_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(2024)
    true_means = np.array([0.0, 5.0, -2.0])
    covered_mean = covered_iqm = 0
    repetitions = 200
    for k in range(repetitions):
        scores = true_means + rng.normal(size=(25, 3)) * np.array([1.0, 2.0, 0.5])  # [runs 25, tasks 3]
        mean = st.bootstrap_interval(st.mean_score, scores, reps=1000, seed=k)
        covered_mean += mean.low <= true_means.mean() <= mean.high
        # The IQM of one normal task is estimated around its mean (a symmetric distribution).
        iqm = st.bootstrap_interval(st.interquartile_mean, scores[:, :1], reps=1000, seed=k)
        covered_iqm += iqm.low <= 0.0 <= iqm.high
    assert 0.88 <= covered_mean / repetitions <= 0.99, covered_mean
    assert 0.88 <= covered_iqm / repetitions <= 0.99, covered_iqm


def test_probability_of_improvement_and_profile_intervals():
    x = np.array([[5.0, 10.0], [6.0, 11.0], [7.0, 12.0]])
    y = np.array([[1.0, 2.0], [2.0, 3.0], [3.0, 4.0], [4.0, 0.0]])
    iv = st.bootstrap_interval(st.probability_of_improvement, x, y, reps=2000)
    assert (iv.point, iv.low, iv.high) == (1.0, 1.0, 1.0)  # every run of x above every run of y
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(10, 3)), rng.normal(0.3, size=(10, 3))
    iv = st.bootstrap_interval(st.probability_of_improvement, a, b, reps=5000, seed=2)
    assert iv.low < iv.point < iv.high and 0.0 <= iv.low and iv.high <= 1.0
    taus = st.tau_grid(a)
    profile = st.performance_profile_interval(a, taus, reps=500)
    assert profile.point.shape == profile.low.shape == profile.high.shape == (len(taus),)
    assert (profile.low <= profile.point + 1e-12).all() and (profile.point <= profile.high + 1e-12).all()
    single = st.bootstrap_interval(st.interquartile_mean, np.array([[3.0]]), reps=100)
    assert (single.point, single.low, single.high) == (3.0, 3.0, 3.0)  # one run: no spread


# ------------------------------------------------------------------------------------ softac compare
def _fake_group(root: Path, name: str, envs: dict[str, list[float]], steps=(500, 1000)) -> list[Path]:
    """Run directories with a config.json and a metrics.csv whose last evaluation is each given return."""
    dirs = []
    for env, finals in envs.items():
        for seed, final in enumerate(finals):
            run_dir = root / f"{name}-{env}-seed{seed}"
            run_dir.mkdir(parents=True)
            (run_dir / "config.json").write_text(SACConfig(env=env, seed=seed).to_json())
            logger = RunLogger(run_dir, tensorboard=False)
            for step in steps:
                value = final if step == steps[-1] else final - 100.0
                logger.log({"env_step": step, "episodes": 1, "eval_return_mean": value, "eval_return_std": 1.0})
            logger.log({"env_step": steps[-1] + 10, "episodes": 2, "episode_return": 5.0})  # a training row
            logger.close()
            dirs.append(run_dir)
    return dirs


A_SCORES = {"Pendulum-v1": [-400.0, -350.0, -500.0, -300.0], "MountainCarContinuous-v0": [20.0, 60.0, 90.0]}
B_SCORES = {"Pendulum-v1": [-200.0, -250.0, -180.0], "MountainCarContinuous-v0": [80.0, 90.0, 95.0, 40.0]}
REFERENCE = {"Pendulum-v1": (-1500.0, -150.0), "MountainCarContinuous-v0": (-50.0, 95.0)}


def _groups(tmp_path):
    a = _fake_group(tmp_path / "runs", "a", A_SCORES)
    b = _fake_group(tmp_path / "runs", "b", B_SCORES)
    return a, b


def _table_row(text: str, section: str, first: str) -> list[str]:
    block = text.split(f"## {section}")[1].split("## ")[0]
    row = next(line for line in block.splitlines() if line.startswith(f"| {first} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def _point(cell: str) -> float:
    return float(re.match(r"(-?[\d.,]+) \[", cell).group(1).replace(",", ""))


def test_cli_compare_reports_the_statistics_of_fake_runs_and_writes_pngs(tmp_path):
    import matplotlib.image

    a, b = _groups(tmp_path)
    (tmp_path / "ref.toml").write_text("".join(f'["{env}"]\nmin = {lo}\nmax = {hi}\n' for env, (lo, hi) in REFERENCE.items()))
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run([sys.executable, "-m", "softac.cli", "compare", "a=" + ",".join(map(str, a)),
                             f"b={tmp_path / 'runs' / 'b-*'}", "--reference", "ref.toml", "--reps", "2000",
                             "--out", "figs"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # Per environment: the runs, the final step and the IQM / mean of the returns (hand-computed).
    row = _table_row(out, "Pendulum-v1", "a")
    assert row[1:3] == ["4", "1000"]
    assert _point(row[3]) == pytest.approx(-375.0, abs=0.05)  # 4 runs: floor(1) cut, mean of -400, -350
    assert _point(row[4]) == pytest.approx(-387.5, abs=0.05)
    row = _table_row(out, "MountainCarContinuous-v0", "b")
    assert row[1] == "4" and _point(row[3]) == pytest.approx(85.0, abs=0.05)
    # Aggregate IQM of normalised scores, computed here by sorting all 7 normalised scores of each group.
    for name, scores in (("a", A_SCORES), ("b", B_SCORES)):
        normalised = sorted((v - REFERENCE[e][0]) / (REFERENCE[e][1] - REFERENCE[e][0]) for e in scores for v in scores[e])
        row = _table_row(out, "Aggregate", name)
        assert row[1] == "7" and _point(row[2]) == pytest.approx(np.mean(normalised[1:6]), abs=5e-4)
    # Probability of improvement of a over b: the pairwise count, averaged over the two environments.
    expected = np.mean([_pairwise_probability(A_SCORES[e], B_SCORES[e]) for e in A_SCORES])
    row = _table_row(out, "Probability of improvement", "a")
    assert row[1] == "b" and _point(row[2]) == pytest.approx(expected, abs=5e-4)
    for name in ("intervals.png", "performance_profile.png"):
        image = matplotlib.image.imread(tmp_path / "figs" / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 0  # something is drawn


def test_cli_compare_step_single_environment_and_normalize(tmp_path, capsys):
    a = _fake_group(tmp_path / "runs", "a", {"Pendulum-v1": [-400.0, -300.0, -200.0]})
    b = _fake_group(tmp_path / "runs", "b", {"Pendulum-v1": [-300.0, -100.0]})
    groups = ["a=" + ",".join(map(str, a)), "b=" + ",".join(map(str, b))]
    assert main(["compare", *groups, "--step", "500", "--reps", "500", "--out", str(tmp_path / "f")]) == 0
    out = capsys.readouterr().out
    assert "evaluation at env step 500" in out and "one environment, not normalised" in out
    assert _point(_table_row(out, "Pendulum-v1", "a")[4]) == pytest.approx(-400.0, abs=0.05)  # final - 100
    header = next(line for line in out.split("## Aggregate")[1].splitlines() if line.startswith("| group | runs | IQM"))
    assert "median" in header and "optimality gap" not in header
    assert main(["compare", *groups, "--normalize=-1500:-150", "--reps", "500", "--out", str(tmp_path / "f")]) == 0
    out = capsys.readouterr().out
    row = _table_row(out, "Aggregate", "b")
    assert _point(row[2]) == pytest.approx(np.mean([(v + 1500) / 1350 for v in (-300.0, -100.0)]), abs=5e-4)
    assert _point(row[5]) == pytest.approx(1 - np.mean([min(1.0, (v + 1500) / 1350) for v in (-300.0, -100.0)]),
                                           abs=5e-4)


def test_figures_decode_as_pngs_without_an_aggregate(tmp_path):
    import matplotlib.image

    groups = {name: {env: [RunScore(tmp_path, env, 100, v) for v in values] for env, values in scores.items()}
              for name, scores in (("a", A_SCORES), ("b", B_SCORES))}
    result = compare(groups, reps=200)
    assert result.aggregate is None and "needs normalisation" in result.aggregate_note
    paths = write_figures(result, tmp_path / "figures")
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.image.imread(path).ndim == 3


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if line.startswith("softac: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_cli_compare_bad_input_is_one_sentence_and_exit_2(tmp_path, capsys):
    a, b = _groups(tmp_path)
    only_pendulum = [d for d in b if "Pendulum" in d.name]
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    ga, gb = "a=" + ",".join(map(str, a)), "b=" + ",".join(map(str, b))
    assert "at least one group" in _error(capsys, ["compare"])
    assert "must be NAME=RUN_DIR" in _error(capsys, ["compare", ga, str(b[0])])
    assert "not a softac run directory" in _error(capsys, ["compare", ga, f"b={not_a_run}"])
    assert "does not exist" in _error(capsys, ["compare", ga, f"b={tmp_path / 'missing'}"])
    assert "matches no directory" in _error(capsys, ["compare", ga, f"b={tmp_path / 'nothing*'}"])
    assert "no evaluation at env step 700" in _error(capsys, ["compare", ga, gb, "--step", "700"])
    line = _error(capsys, ["compare", ga, "b=" + ",".join(map(str, only_pendulum))])
    assert "'b' has no runs of MountainCarContinuous-v0, which group 'a' has" in line
    assert "given twice" in _error(capsys, ["compare", ga, ga])
    assert "twice" in _error(capsys, ["compare", f"a={a[0]},{a[0]}"])
    assert "--normalize must be MIN:MAX" in _error(capsys, ["compare", ga, gb, "--normalize", "1:1"])
    assert "not both" in _error(capsys, ["compare", ga, gb, "--normalize", "0:1", "--reference", "r.toml"])
    (tmp_path / "partial.toml").write_text('["Pendulum-v1"]\nmin = -1500\nmax = -150\n')
    assert "no min and max for MountainCarContinuous-v0" in _error(
        capsys, ["compare", ga, gb, "--reference", str(tmp_path / "partial.toml")])
    (tmp_path / "bad.toml").write_text('["Pendulum-v1"]\nlow = 0\n')
    assert "must hold min = NUMBER and max = NUMBER" in _error(
        capsys, ["compare", ga, gb, "--reference", str(tmp_path / "bad.toml")])
    (tmp_path / "file").write_text("")
    assert "is a file" in _error(capsys, ["compare", ga, gb, "--out", str(tmp_path / "file")])


def test_the_cli_imports_no_statistics_until_compare_runs():
    code = ("import sys, softac.cli; print([m for m in ('softac.statistics', 'softac.compare', 'scipy.stats', "
            "'matplotlib') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
