"""Sweeps: a grid of config changes x groups of seeds, run as Ray Tune trials, summarised per grid point.

    from softac import SACConfig, sweep
    rows = sweep(SACConfig(env="Hopper-v5", total_steps=300_000), {"learning_rate": [1e-4, 3e-4, 1e-3]},
                 seeds=[0, 1, 2])

Each grid point (one value per grid field, every combination) and each group of `seeds_per_trial`
seeds is one trial (`softac.distributed`); the seeds of a group train together on the vmapped seeds
axis. A sweep directory holds
- `sweep.json`: what was asked (base config, grid, seeds, Ray options), so `--resume` needs nothing else;
- `runs/<point>__seed<k>/`: ordinary run directories (`softac eval`, `plot`, `train --resume` work on them);
- `tune/`: Ray Tune's experiment state; `attempts.jsonl`: every start of a trial (pid, start step);
- `sweep.csv` and `sweep.png`: one row / one curve per grid point (mean over seeds, min-max band).
Trials checkpoint at every evaluation, so a trial restarted after a lost worker repeats at most one
evaluation interval, and its final evaluation equals an uninterrupted run's (resume is exact).
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from softac.config import SACConfig, field_hints
from softac.distributed import (RayOptions, Trial, TrialOutcome, check_options, new_experiment_dir, read_description,
                                 run_trials, seed_groups, start_ray, write_description)
from softac.errors import SoftacError, TrialsInterrupted
from softac.rundir import portable_name
from softac.statistics import seed_interval

SPEC_NAME = "sweep.json"
CSV_NAME = "sweep.csv"
PLOT_NAME = "sweep.png"
SPEC_VERSION = 1
# Fields a sweep sets itself: seeds come from --seeds, run directories from the sweep directory.
NOT_GRIDDABLE = ("seed", "seeds", "run_root", "run_name", "progress", "print_evaluations", "checkpoint_every")


@dataclass(frozen=True)
class SweepSpec:
    """Everything a sweep needs, saved as sweep.json in its directory."""

    base: SACConfig
    grid: tuple[tuple[str, tuple], ...]  # (field, values) in the order given
    seeds: tuple[int, ...]
    seeds_per_trial: int
    out: Path
    options: RayOptions

    def points(self) -> list[dict[str, Any]]:
        """Every combination of one value per grid field (a single empty point for an empty grid)."""
        names = [name for name, _ in self.grid]
        return [dict(zip(names, values)) for values in itertools.product(*(v for _, v in self.grid))]

    def seed_groups(self) -> list[tuple[int, ...]]:
        return seed_groups(self.seeds, self.seeds_per_trial)

    def to_json(self) -> str:
        return json.dumps({"version": SPEC_VERSION, "base": self.base.to_dict(),
                           "grid": [[name, list(values)] for name, values in self.grid],
                           "seeds": list(self.seeds), "seeds_per_trial": self.seeds_per_trial,
                           "options": self.options.to_dict()}, indent=2)

    @classmethod
    def load(cls, out: str | Path) -> "SweepSpec":
        def parse(data: dict) -> "SweepSpec":
            grid = tuple((name, tuple(tuple(v) if isinstance(v, list) else v for v in values))
                         for name, values in data["grid"])
            return cls(base=SACConfig.from_dict(data["base"]), grid=grid, seeds=tuple(data["seeds"]),
                       seeds_per_trial=int(data["seeds_per_trial"]), out=Path(out),
                       options=RayOptions(**data["options"]))

        return read_description(out, SPEC_NAME, SPEC_VERSION, "sweep", parse)


# ------------------------------------------------------------------------------------ the grid
def parse_grid_flag(text: str) -> tuple[str, tuple]:
    """`learning-rate=1e-4,3e-4` -> ("learning_rate", (1e-4, 3e-4)), each value parsed as its field's type.
    Values of a tuple field (hidden_sizes) are separated by '/': `hidden-sizes=64,64/256,256`."""
    name, sep, values_text = text.partition("=")
    field_name = name.strip().replace("-", "_")
    if not sep or not field_name:
        raise SoftacError(f"--grid takes FIELD=VALUE,VALUE,..., got {text!r}.")
    hint = _field_hints().get(field_name)
    if hint is None:
        raise SoftacError(f"--grid {name}: there is no config field {field_name!r} (`softac train --help` lists them).")
    is_tuple = typing.get_origin(_strip_optional(hint)) is tuple
    parts = [p.strip() for p in values_text.split("/" if is_tuple else ",")]
    if not values_text.strip() or any(p == "" for p in parts):
        raise SoftacError(f"--grid {name} needs at least one value and no empty ones, got {values_text!r}.")
    return field_name, tuple(_parse_value(field_name, hint, p) for p in parts)


def _field_hints() -> dict[str, Any]:
    return field_hints()


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0]
    return hint


def _parse_value(name: str, hint: Any, text: str) -> Any:
    optional = _strip_optional(hint) is not hint
    kind = _strip_optional(hint)
    if optional and text.lower() == "none":
        return None
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError(text)
            return lowered in ("true", "yes", "1")
        if typing.get_origin(kind) is tuple:
            return tuple(int(p) for p in text.split(",") if p.strip())
        return kind(text)
    except ValueError:
        kind_name = "comma-separated integers" if typing.get_origin(kind) is tuple else getattr(kind, "__name__", str(kind))
        raise SoftacError(f"--grid {name.replace('_', '-')}: {text!r} is not a valid {kind_name}.") from None


def check_grid(base: SACConfig, grid: Sequence[tuple[str, Sequence]]) -> tuple[tuple[str, tuple], ...]:
    """The grid as ((field, values), ...) once every field exists, may be swept, and every point is a valid config."""
    known = set(field_hints())
    checked = []
    for name, values in grid:
        if name not in known:
            raise SoftacError(f"--grid: there is no config field {name!r} (`softac train --help` lists them).")
        if name in NOT_GRIDDABLE:
            raise SoftacError(f"--grid cannot sweep {name}: the sweep sets it (seeds come from --seeds).")
        values = tuple(tuple(v) if isinstance(v, list) else v for v in values)
        if not values:
            raise SoftacError(f"--grid {name} has no values; give at least one.")
        if len(set(values)) != len(values):
            raise SoftacError(f"--grid {name} lists a value twice: {values!r}.")
        checked.append((name, values))
    names = [name for name, _ in checked]
    if len(set(names)) != len(names):
        raise SoftacError("--grid names a field twice; give each field once with all its values.")
    for values in itertools.product(*(v for _, v in checked)):
        point = dict(zip(names, values))
        try:
            base.replace(**point)
        except SoftacError as exc:
            raise SoftacError(f"--grid {_point_label(point)}: {exc}") from None
    return tuple(checked)


def _format_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "-".join(map(str, value))
    return repr(value) if isinstance(value, str) else str(value)


def _point_label(point: dict[str, Any]) -> str:
    """learning_rate=0.0001,tau=0.01 (or 'base' for the point of an empty grid)."""
    return ",".join(f"{k}={_format_value(v)}" for k, v in point.items()) or "base"


def _point_dir_name(point: dict[str, Any]) -> str:
    return _point_label(point).replace(",", "__").replace("/", "-").replace("'", "")


def sweep_trials(spec: SweepSpec) -> list[Trial]:
    """One trial per grid point and seed group; its run directories are runs/<point>__seed<k>."""
    trials = []
    for p, point in enumerate(spec.points()):
        for group in spec.seed_groups():
            name = _point_dir_name(point)
            cfg = spec.base.replace(
                **point, seed=group[0], seeds=group if len(group) > 1 else None,
                run_root=str(spec.out.resolve() / "runs"),
                run_name=name if len(group) > 1 else f"{name}__seed{group[0]}",
                checkpoint_every=spec.base.eval_every, progress=False, print_evaluations=False)
            trials.append(Trial(name=f"p{p:03d}-seeds{'-'.join(map(str, group))}",
                                label=f"[{_point_label(point)}; seeds {','.join(map(str, group))}]", config=cfg))
    return trials


# ------------------------------------------------------------------------------------- running
def sweep(base_config: SACConfig, grid: dict[str, Sequence] | Sequence[tuple[str, Sequence]], seeds: Sequence[int],
          *, out: Optional[str | Path] = None, seeds_per_trial: Optional[int] = None,
          ray_address: Optional[str] = None, cpus_per_trial: int = 1, gpus_per_trial: float = 0.0,
          scheduler: str = "fifo", asha_grace_steps: Optional[int] = None, asha_reduction_factor: int = 3,
          max_failures: int = 3) -> list[dict]:
    """Run a sweep as Ray Tune trials and return its table, one row per grid point (see `summarize`).

    `grid` maps config fields to the values to try (every combination is a point); `seeds` are trained
    at every point, `seeds_per_trial` of them together per trial (default: all in one trial). `out` is a
    new sweep directory (default sweeps/<env>__<timestamp>). See softac.distributed for the Ray options.
    """
    seeds = tuple(seeds)
    if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise SoftacError(f"--seeds must be distinct non-negative integers, got {seeds!r}.")
    seeds_per_trial = len(seeds) if seeds_per_trial is None else seeds_per_trial
    if not isinstance(seeds_per_trial, int) or seeds_per_trial < 1:
        raise SoftacError(f"--seeds-per-trial must be a positive integer, got {seeds_per_trial!r}.")
    items = list(grid.items()) if isinstance(grid, dict) else list(grid)
    checked = check_grid(base_config, items)
    options = RayOptions(address=ray_address, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                         scheduler=scheduler, asha_grace_steps=asha_grace_steps,
                         asha_reduction_factor=asha_reduction_factor, max_failures=max_failures)
    check_options(options)
    if out is None:
        out = Path("sweeps") / f"{portable_name(base_config.env)}__{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out = Path(out)
    new_experiment_dir(out, "sweep", "sweep")
    spec = SweepSpec(base=base_config, grid=checked, seeds=seeds, seeds_per_trial=seeds_per_trial, out=out,
                     options=options)
    ray = start_ray(options)  # before anything is written: an unreachable or too small cluster leaves no directory
    try:
        write_description(out, SPEC_NAME, spec.to_json(), "sweep")
        return _run(spec, resume=False)
    finally:
        ray.shutdown()


def resume_sweep(out: str | Path) -> list[dict]:
    """Continue the sweep in `out` (after an interrupted or killed driver): finished trials are not rerun,
    unfinished ones continue from their last checkpoints."""
    spec = SweepSpec.load(out)
    check_options(spec.options)
    return _run(spec, resume=True)


def _run(spec: SweepSpec, resume: bool) -> list[dict]:
    trials = sweep_trials(spec)
    print(f"sweep {spec.out}: {len(spec.points())} grid points x {len(spec.seed_groups())} seed groups = "
          f"{len(trials)} trials, {spec.options.cpus_per_trial} CPUs and {spec.options.gpus_per_trial:g} GPUs each, "
          f"on {spec.options.address or 'a local Ray instance'}", flush=True)
    outcomes, interrupted = run_trials(trials, spec.out, spec.options, resume=resume,
                                       resume_command=f"softac sweep --resume {spec.out}")
    rows = summarize(spec, outcomes)
    if interrupted:
        raise TrialsInterrupted(f"The sweep was interrupted; continue it with: softac sweep --resume {spec.out}")
    write_csv(rows, spec.out / CSV_NAME)
    if any(r["final_mean"] is not None for r in rows):
        plot_sweep(spec, spec.out / PLOT_NAME)
    print(format_table(rows), flush=True)
    print(f"table: {spec.out / CSV_NAME}; curves: {spec.out / PLOT_NAME}", flush=True)
    return rows


# ------------------------------------------------------------------------------------- results
def _mean_std(values: list[float]) -> tuple[Optional[float], Optional[float]]:
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values))


def summarize(spec: SweepSpec, outcomes: Sequence[TrialOutcome] = ()) -> list[dict]:
    """One row per grid point, from its run directories' metrics.csv: the point's values, the seeds with
    results, the final env step, mean and std over seeds of the final and of the best evaluation, the wall
    time (longest of its trials), the trials' outcomes, and `best` (True on the best final mean)."""
    from softac.logger import read_metrics
    from softac.rundir import named_run_dirs

    status = {o.name: o.status for o in outcomes}
    trials = sweep_trials(spec)
    rows = []
    for p, point in enumerate(spec.points()):
        finals, bests, steps, walls, seeds, states = [], [], [], [], [], []
        for trial in trials:
            if not trial.name.startswith(f"p{p:03d}-"):
                continue
            states.append(status.get(trial.name, "-"))
            for seed, run_dir in zip(trial.config.seed_list, named_run_dirs(trial.config)):
                try:
                    evals = [r for r in read_metrics(run_dir) if r["eval_return_mean"] is not None]
                except (FileNotFoundError, OSError):
                    continue
                if not evals:
                    continue
                seeds.append(seed)
                finals.append(evals[-1]["eval_return_mean"])
                bests.append(max(r["eval_return_mean"] for r in evals))
                steps.append(int(evals[-1]["env_step"]))
                walls.append(evals[-1]["wall_time"])
        final_mean, final_std = _mean_std(finals)
        best_mean, best_std = _mean_std(bests)
        iqm = seed_interval(finals)
        rows.append({"point": _point_label(point), **{k: _format_value(v) for k, v in point.items()},
                     "seeds": ",".join(map(str, seeds)), "final_step": min(steps) if steps else None,
                     "final_mean": final_mean, "final_std": final_std,
                     "final_iqm": iqm[0] if iqm else None, "final_iqm_low": iqm[1] if iqm else None,
                     "final_iqm_high": iqm[2] if iqm else None, "best_mean": best_mean, "best_std": best_std,
                     "wall_time_s": max(walls) if walls else None,
                     "status": "; ".join(sorted(set(states))), "best": False})
    ranked = [r for r in rows if r["final_mean"] is not None]
    if ranked:
        top = max(ranked, key=lambda r: (r["final_step"], r["final_mean"]))
        top["best"] = True
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    tmp.replace(path)


def _cell(mean: Optional[float], std: Optional[float]) -> str:
    return "-" if mean is None or math.isnan(mean) else f"{mean:.1f} +- {std:.1f}"


def _iqm_cell(row: dict) -> str:
    if row.get("final_iqm") is None:
        return "-"
    return f"{row['final_iqm']:.1f} [{row['final_iqm_low']:.1f}, {row['final_iqm_high']:.1f}]"


def format_table(rows: list[dict]) -> str:
    header = ("| grid point | seeds | final env step | final evaluation | final IQM [95% bootstrap CI] | best evaluation "
              "| wall time | trials |")
    lines = [header, "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        wall = "-" if r["wall_time_s"] is None else f"{r['wall_time_s'] / 60:.1f} min"
        lines.append(f"| {r['point']}{' (best)' if r['best'] else ''} | {r['seeds'] or '-'} | "
                     f"{r['final_step'] if r['final_step'] is not None else '-'} | {_cell(r['final_mean'], r['final_std'])} "
                     f"| {_iqm_cell(r)} | {_cell(r['best_mean'], r['best_std'])} | {wall} | {r['status']} |")
    best = [r for r in rows if r["best"]]
    if best:
        lines.append(f"best grid point: {best[0]['point']} (final evaluation {_cell(best[0]['final_mean'], best[0]['final_std'])})")
    return "\n".join(lines)


def plot_sweep(spec: SweepSpec, out: Path) -> Path:
    """One curve per grid point: mean evaluation return over its seeds, with the min-max band."""
    from softac.plot import plot_groups
    from softac.rundir import named_run_dirs

    groups: dict[str, list[Path]] = {}
    trials = sweep_trials(spec)
    for p, point in enumerate(spec.points()):
        dirs = [d for t in trials if t.name.startswith(f"p{p:03d}-") for d in named_run_dirs(t.config)]
        groups[_point_label(point)] = [d for d in dirs if (d / "metrics.csv").exists()]
    return plot_groups({k: v for k, v in groups.items() if v}, out, title=f"{spec.base.env}: sweep {spec.out.name}")
