"""`softac compare`: groups of runs (e.g. several seeds of two algorithms on a few environments) compared with
the statistics of softac.statistics (Agarwal et al. 2021, rliable's definitions; docs/statistics.md).

A group is `NAME=RUN_DIR[,RUN_DIR...]` (a quoted glob pattern such as 'sac=runs/sac*' names every directory it
matches). A run's score is its final deterministic evaluation return in metrics.csv (or its evaluation at
`--step`), and its environment is the env of its config.json, so one group may hold runs of several
environments. The report has, per environment and group, the IQM and mean with 95% stratified bootstrap
intervals; across environments, the IQM, mean, median and optimality gap of normalised scores ((return - min)
/ (max - min), from `--normalize MIN:MAX` or a `--reference` TOML of per-environment min and max; without
them only a single environment's returns are aggregated); and the probability of improvement of each pair
of groups, averaged over environments (rank-based, so it needs no normalisation). Two figures go to `--out`:
intervals.png (the aggregate's intervals, or each environment's IQM) and performance_profile.png (the
fraction of runs above each threshold, with pointwise intervals).
"""

from __future__ import annotations

import glob
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from softac import statistics as st
from softac.errors import SoftacError

INTERVALS_NAME = "intervals.png"
PROFILE_NAME = "performance_profile.png"
AGGREGATE_METRICS = {  # name -> (statistic, better when higher)
    "IQM": st.interquartile_mean,
    "mean": st.mean_score,
    "median": st.median_score,
    "optimality gap": st.optimality_gap,
}


@dataclass(frozen=True)
class RunScore:
    """One run's score: the deterministic evaluation return at env step `step`."""

    run_dir: Path
    env: str
    step: int
    score: float


# ------------------------------------------------------------------------------------ reading runs
def parse_group(text: str) -> tuple[str, list[Path]]:
    """(name, run directories) of `NAME=RUN_DIR[,RUN_DIR...]`; an item with * ? or [ is a glob pattern."""
    name, sep, dirs = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise SoftacError(f"Group {text!r} must be NAME=RUN_DIR[,RUN_DIR...] (a name, '=', then comma-separated "
                          "run directories).")
    items = [item.strip() for item in dirs.split(",") if item.strip()]
    if not items:
        raise SoftacError(f"Group {name!r} names no run directories (NAME=RUN_DIR[,RUN_DIR...]).")
    paths: list[Path] = []
    for item in items:
        if any(c in item for c in "*?["):
            matches = sorted(p for p in glob.glob(item) if Path(p).is_dir())
            if not matches:
                raise SoftacError(f"Group {name!r}: the pattern {item!r} matches no directory.")
            paths += [Path(p) for p in matches]
        else:
            paths.append(Path(item))
    seen = set()
    for path in paths:
        key = path.resolve()
        if key in seen:
            raise SoftacError(f"Group {name!r} names the run directory {path} twice.")
        seen.add(key)
    return name, paths


def evaluation_at(run_dir: Path, step: Optional[int] = None) -> tuple[int, float]:
    """(env step, mean evaluation return) of a run's last evaluation in metrics.csv, or of its evaluation at
    env step `step`; SoftacError when it has none."""
    from softac.logger import read_metrics

    try:
        rows = read_metrics(run_dir)
    except FileNotFoundError:
        raise SoftacError(f"{run_dir} has no metrics.csv, so it has no evaluation results.") from None
    evals = [(int(r["env_step"]), r["eval_return_mean"]) for r in rows
             if r.get("eval_return_mean") is not None and r.get("env_step") is not None]
    if not evals:
        raise SoftacError(f"{run_dir} has no evaluation results yet.")
    if step is None:
        return evals[-1]
    at = [e for e in evals if e[0] == step]
    if not at:
        steps = ", ".join(str(s) for s, _ in evals[:8]) + (", ..." if len(evals) > 8 else "")
        raise SoftacError(f"{run_dir} has no evaluation at env step {step} (it evaluated at env steps {steps}).")
    return at[-1]


def read_group(name: str, run_dirs: Sequence[Path], step: Optional[int] = None) -> dict[str, list[RunScore]]:
    """The scores of a group's runs by environment (the env of each run's config.json), in sorted env order."""
    from softac.evaluate import read_run_config

    by_env: dict[str, list[RunScore]] = {}
    for run_dir in run_dirs:
        env = read_run_config(run_dir).env
        at, score = evaluation_at(run_dir, step)
        if not math.isfinite(score):
            raise SoftacError(f"{run_dir}: its evaluation return at env step {at} is not finite ({score}).")
        by_env.setdefault(env, []).append(RunScore(Path(run_dir), env, at, float(score)))
    return dict(sorted(by_env.items()))


def read_groups(specs: Sequence[str], step: Optional[int] = None) -> dict[str, dict[str, list[RunScore]]]:
    """group name -> env -> run scores for `NAME=RUN_DIR,...` specs; SoftacError for no groups, a malformed or
    repeated group, a directory that is not a run, or a group without runs of an env another group has."""
    if not specs:
        raise SoftacError("softac compare needs at least one group NAME=RUN_DIR[,RUN_DIR...].")
    if step is not None and step < 0:
        raise SoftacError(f"--step must be a non-negative env step, got {step}.")
    parsed = [parse_group(text) for text in specs]
    names = [name for name, _ in parsed]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SoftacError(f"The group name {repeated[0]!r} is given twice; give each group one name.")
    groups = {name: read_group(name, dirs, step) for name, dirs in parsed}
    envs = sorted({env for by_env in groups.values() for env in by_env})
    for name, by_env in groups.items():
        for env in envs:
            if env not in by_env:
                other = next(n for n, e in groups.items() if env in e)
                raise SoftacError(f"Group {name!r} has no runs of {env}, which group {other!r} has; compare groups "
                                  "on the same environments.")
    return groups


# ------------------------------------------------------------------------------------ normalisation
def parse_normalize(text: str) -> tuple[float, float]:
    """(min, max) of `--normalize MIN:MAX`."""
    low, sep, high = text.partition(":")
    try:
        values = (float(low), float(high)) if sep else None
    except ValueError:
        values = None
    if values is None or not all(math.isfinite(v) for v in values) or values[0] == values[1]:
        raise SoftacError(f"--normalize must be MIN:MAX, two different numbers (e.g. --normalize=-1500:-150), "
                          f"got {text!r}.")
    return values


def read_reference(path: str | Path) -> dict[str, tuple[float, float]]:
    """env -> (min, max) of a reference TOML file: one table per environment, `["Hopper-v5"] min = ... max = ...`."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise SoftacError(f"The reference file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SoftacError(f"The reference file {path} cannot be read: {exc}.") from None
    out = {}
    for env, table in data.items():
        ok = (isinstance(table, dict) and set(table) == {"min", "max"}
              and all(isinstance(table[k], (int, float)) and not isinstance(table[k], bool)
                      and math.isfinite(table[k]) for k in ("min", "max")) and table["min"] != table["max"])
        if not ok:
            raise SoftacError(f"The reference file {path}: [{env}] must hold min = NUMBER and max = NUMBER, two "
                              "different numbers.")
        out[env] = (float(table["min"]), float(table["max"]))
    if not out:
        raise SoftacError(f"The reference file {path} has no environments ([\"ENV-ID\"] tables with min and max).")
    return out


# ------------------------------------------------------------------------------------ the comparison
@dataclass
class Panel:
    """One panel of a figure: a title, an axis label and each group's interval (or profile)."""

    title: str
    label: str
    intervals: dict[str, st.Interval]
    taus: Optional[np.ndarray] = None  # for a performance profile


@dataclass
class Comparison:
    """Everything `softac compare` prints and plots."""

    groups: dict[str, dict[str, list[RunScore]]]
    envs: list[str]
    reps: int
    seed: int
    per_env: dict[str, dict[str, dict[str, st.Interval]]] = field(default_factory=dict)  # env -> group -> IQM/mean
    aggregate: Optional[dict[str, dict[str, st.Interval]]] = None  # group -> metric -> interval
    aggregate_note: str = ""
    improvement: dict[tuple[str, str], st.Interval] = field(default_factory=dict)
    interval_panels: list[Panel] = field(default_factory=list)
    profile_panels: list[Panel] = field(default_factory=list)


def group_scores(by_env: dict[str, list[RunScore]]) -> dict[str, np.ndarray]:
    """env -> the returns of a group's runs there (the mapping form of softac.statistics)."""
    return {env: np.array([r.score for r in runs]) for env, runs in by_env.items()}


def compare(groups: dict[str, dict[str, list[RunScore]]], normalization: Optional[dict[str, tuple[float, float]]] = None,
            normalization_source: str = "", reps: int = st.DEFAULT_REPS, seed: int = 0) -> Comparison:
    """The statistics of `groups` (group -> env -> run scores). `normalization`: env -> (min, max)."""
    envs = sorted({env for by_env in groups.values() for env in by_env})
    result = Comparison(groups=groups, envs=envs, reps=reps, seed=seed)
    scores = {name: group_scores(by_env) for name, by_env in groups.items()}
    for env in envs:
        result.per_env[env] = {
            name: {"IQM": st.bootstrap_interval(st.interquartile_mean, s[env], reps=reps, seed=seed),
                   "mean": st.bootstrap_interval(st.mean_score, s[env], reps=reps, seed=seed)}
            for name, s in scores.items()}
    names = list(groups)
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            result.improvement[(x, y)] = st.bootstrap_interval(st.probability_of_improvement, scores[x], scores[y],
                                                               reps=reps, seed=seed)

    if normalization is not None:
        missing = [env for env in envs if env not in normalization]
        if missing:
            raise SoftacError(f"The normalisation {normalization_source} gives no min and max for {missing[0]}.")
        aggregated = {name: st.normalized_scores(s, {e: normalization[e][0] for e in envs},
                                                 {e: normalization[e][1] for e in envs}) for name, s in scores.items()}
        metrics, label = AGGREGATE_METRICS, "normalised score"
        result.aggregate_note = (f"aggregate over {len(envs)} environment{'s' if len(envs) > 1 else ''} of normalised "
                                 f"scores (return - min) / (max - min), {normalization_source}")
    elif len(envs) == 1:
        aggregated = scores
        metrics = {k: v for k, v in AGGREGATE_METRICS.items() if k != "optimality gap"}
        label = "evaluation return"
        result.aggregate_note = (f"aggregate of {envs[0]}'s evaluation returns (one environment, not normalised; "
                                 "the optimality gap needs --normalize or --reference)")
    else:
        aggregated, label = None, "evaluation return"
        result.aggregate_note = (f"no aggregate over {len(envs)} environments: their returns are on different scales, so "
                                 "it needs normalisation (--normalize MIN:MAX or --reference FILE.toml)")

    if aggregated is not None:
        result.aggregate = {name: {m: st.bootstrap_interval(f, s, reps=reps, seed=seed) for m, f in metrics.items()}
                            for name, s in aggregated.items()}
        result.interval_panels = [Panel(m, label, {name: result.aggregate[name][m] for name in names})
                                  for m in metrics]
        taus = st.tau_grid(*aggregated.values())
        result.profile_panels = [Panel("performance profile" + (f" ({envs[0]})" if normalization is None else ""),
                                       label, {name: st.performance_profile_interval(s, taus, seed=seed)
                                               for name, s in aggregated.items()}, taus)]
    else:
        result.interval_panels = [Panel(f"IQM ({env})", label, {name: result.per_env[env][name]["IQM"]
                                                                 for name in names}) for env in envs]
        for env in envs:
            taus = st.tau_grid(*(s[env] for s in scores.values()))
            result.profile_panels.append(Panel(f"performance profile ({env})", label,
                                               {name: st.performance_profile_interval(s[env], taus, seed=seed)
                                                for name, s in scores.items()}, taus))
    return result


# ------------------------------------------------------------------------------------ report
def _digits(values: Sequence[float]) -> int:
    return 1 if max(abs(v) for v in values) >= 100 else 3


def _cell(interval: st.Interval, digits: int) -> str:
    return interval.text(digits)


def _steps(runs: Sequence[RunScore]) -> str:
    steps = sorted({r.step for r in runs})
    return f"{steps[0]}" if len(steps) == 1 else f"{steps[0]}-{steps[-1]}"


def report(result: Comparison, step: Optional[int] = None) -> str:
    """The text `softac compare` prints: markdown tables per environment, of the aggregate and of the
    probabilities of improvement."""
    names = list(result.groups)
    lines = [f"softac compare: {len(names)} group{'s' if len(names) > 1 else ''} ({', '.join(names)}), "
             f"{'evaluation at env step ' + str(step) if step is not None else 'final evaluation'} of each run; "
             f"95% stratified bootstrap intervals (percentile, {result.reps:,} replicates, seed {result.seed})", ""]
    for env in result.envs:
        cells = result.per_env[env]
        digits = _digits([float(c[m].point) for c in cells.values() for m in c])
        lines += [f"## {env}", "", "| group | runs | env step | IQM [95% CI] | mean [95% CI] |",
                  "| --- | --- | --- | --- | --- |"]
        for name in names:
            runs = result.groups[name][env]
            lines.append(f"| {name} | {len(runs)} | {_steps(runs)} | {_cell(cells[name]['IQM'], digits)} "
                         f"| {_cell(cells[name]['mean'], digits)} |")
        lines.append("")
    lines += ["## Aggregate", "", result.aggregate_note + "."]
    if result.aggregate is not None:
        metrics = list(next(iter(result.aggregate.values())))
        digits = _digits([float(v[m].point) for v in result.aggregate.values() for m in metrics])
        lines += ["", "| group | runs | " + " | ".join(f"{m} [95% CI]" for m in metrics) + " |",
                  "| --- | --- | " + " | ".join("---" for _ in metrics) + " |"]
        for name in names:
            runs = sum(len(r) for r in result.groups[name].values())
            lines.append(f"| {name} | {runs} | " + " | ".join(_cell(result.aggregate[name][m], digits)
                                                              for m in metrics) + " |")
        if "optimality gap" in metrics:
            lines += ["", "(optimality gap: 1 - mean(min(score, 1)), lower is better)"]
    lines.append("")
    if result.improvement:
        over = f"averaged over {len(result.envs)} environments" if len(result.envs) > 1 else f"on {result.envs[0]}"
        lines += ["## Probability of improvement", "",
                  f"P(X > Y): the chance that a run of X scores above a run of Y (ties 1/2), {over}.", "",
                  "| X | Y | P(X > Y) [95% CI] |", "| --- | --- | --- |"]
        lines += [f"| {x} | {y} | {_cell(iv, 3)} |" for (x, y), iv in result.improvement.items()]
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ figures
def plot_intervals(panels: Sequence[Panel], out: str | Path) -> Path:
    """rliable-style interval estimates: one panel per statistic, a horizontal bar (the 95% interval) and a
    tick (the point estimate) per group. Returns the path written (PNG by default)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softac.figures import save_figure

    names = list(panels[0].intervals)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1.2, 0.5 * len(names) + 1.6),
                             squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, panel in zip(axes[0], panels):
        for i, name in enumerate(names):
            iv = panel.intervals[name]
            color = colors[i % len(colors)]
            ax.barh(i, float(iv.high) - float(iv.low), left=float(iv.low), height=0.6, color=color, alpha=0.75)
            ax.vlines(float(iv.point), i - 0.3, i + 0.3, color="black", linewidth=1.5)
        ax.set_yticks(range(len(names)), names if ax is axes[0][0] else [""] * len(names))
        ax.set_title(panel.title)
        ax.set_xlabel(panel.label)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("95% stratified bootstrap intervals", fontsize=10)
    fig.tight_layout()
    try:
        return save_figure(fig, out, dpi=120)
    finally:
        plt.close(fig)


def plot_profiles(panels: Sequence[Panel], out: str | Path) -> Path:
    """Performance profiles: the fraction of runs with a score above tau against tau, a line per group with
    its pointwise 95% interval as a band. Returns the path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from softac.figures import save_figure

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        for name, iv in panel.intervals.items():
            (line,) = ax.plot(panel.taus, iv.point, label=name)
            ax.fill_between(panel.taus, iv.low, iv.high, color=line.get_color(), alpha=0.2)
        ax.set_title(panel.title)
        ax.set_xlabel(f"{panel.label} tau")
        ax.set_ylabel("fraction of runs with score > tau")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    try:
        return save_figure(fig, out, dpi=120)
    finally:
        plt.close(fig)


def write_figures(result: Comparison, out_dir: str | Path) -> list[Path]:
    """intervals.png and performance_profile.png in `out_dir` (created if needed); returns their paths."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise SoftacError(f"--out {out_dir} is a file; give a directory for the figures.")
    return [plot_intervals(result.interval_panels, out_dir / INTERVALS_NAME),
            plot_profiles(result.profile_panels, out_dir / PROFILE_NAME)]


def run_compare(specs: Sequence[str], step: Optional[int] = None, normalize: Optional[str] = None,
                reference: Optional[str | Path] = None, out: str | Path = "compare", reps: int = st.DEFAULT_REPS,
                seed: int = 0) -> tuple[str, list[Path]]:
    """What `softac compare` does: read the groups, compute, and write the figures; returns (report, figures).
    Every input is checked before anything is written."""
    if normalize is not None and reference is not None:
        raise SoftacError("Give --normalize or --reference, not both.")
    if reps < 1:
        raise SoftacError(f"--reps must be a positive number of bootstrap replicates, got {reps}.")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SoftacError(f"--out {out} is a file; give a directory for the figures.")
    normalization, source = None, ""
    if normalize is not None:
        low, high = parse_normalize(normalize)
        source = f"min {low:g} and max {high:g} for every environment (--normalize)"
    elif reference is not None:
        normalization, source = read_reference(reference), f"min and max from {reference}"
    groups = read_groups(specs, step)
    if normalize is not None:
        envs = {env for by_env in groups.values() for env in by_env}
        normalization = {env: (low, high) for env in envs}
    result = compare(groups, normalization, source, reps=reps, seed=seed)
    return report(result, step), write_figures(result, out)
