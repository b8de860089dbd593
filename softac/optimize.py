"""Hyperparameter optimisation: an Optuna study whose trials are softac runs on Ray Tune.

    from softac import SACConfig, tune
    rows = tune(SACConfig(env="Hopper-v5", total_steps=100_000), trials=100, out="tunes/hopper")

As the RL Baselines3 Zoo's `--optimize` does, with Ray Tune's trials under it, so a study spreads over a
cluster as a sweep does (`softac.distributed`: the same run directories, CPU pinning, restarts of a
lost worker from its checkpoint, progress lines):
- the sampler is Optuna's TPE (multivariate, with the constant liar for trials that run at once) or random
  search, seeded; it suggests each trial's values of the search space (`softac.algos.search_space`: the
  algorithm's default space, or a `--space FILE.toml`);
- the objective is the mean over the trial's seeds of its final deterministic evaluation, or with `auc`
  of the mean of all its evaluations (the area under the evaluation curve per env step);
- a pruner (Ray Tune's ASHA, or the median stopping rule) stops weak trials on their intermediate
  evaluations; Optuna records them as PRUNED;
- the study lives in `DIR/study.db`, Optuna's RDB storage on SQLite: a real database that Optuna's API
  (`optuna.load_study(study_name="softac", storage="sqlite:///DIR/study.db")`) and `optuna-dashboard
  sqlite:///DIR/study.db` open. SQLite and not the journal file, because one process writes it (the
  searcher runs in the Ray driver, trials only report to it), and SQL is what the dashboard and ad-hoc
  queries read best;
- `--resume DIR` restores the Tune experiment and its searcher: finished trials are kept (and inform the
  sampler), unfinished ones continue from their checkpoints, and only the rest is run;
- at the end: the table of the best trials (`trials.csv` holds them all), the best configuration as a
  preset file `best.toml` (`softac train --preset-file DIR/best.toml`), the parameters' importances
  (Optuna's fANOVA) in `importances.json`, and the optimisation history `history.png`.
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from softac.algos.registry import REGISTRY
from softac.algos.search_space import KINDS, Dimension
from softac.config import SACConfig, field_hints, preset_file_text, read_toml
from softac.distributed import (RayOptions, check_options, new_experiment_dir, read_description, run_search,
                                start_ray, write_description)
from softac.errors import SoftacError, TrialsInterrupted
from softac.rundir import named_run_dirs, portable_name
from softac.suggestion import config_changes, decode_value, encode_choice, suggested_config

SPEC_NAME = "tune.json"
DATABASE_NAME = "study.db"
STUDY_NAME = "softac"
PRESET_NAME = "best.toml"
TRIALS_NAME = "trials.csv"
IMPORTANCES_NAME = "importances.json"
HISTORY_NAME = "history.png"
SPEC_VERSION = 1
OBJECTIVES = {"final": "eval_return", "auc": "eval_return_auc"}  # objective -> the reported metric it reads
SAMPLERS = ("tpe", "random")
PRUNERS = {"asha": "asha", "median": "median", "none": "fifo"}  # pruner -> softac.distributed's scheduler
# Fields the study sets itself: seeds and run directories, and output that trials do not show.
NOT_SEARCHABLE = ("algo", "env", "seed", "seeds", "run_root", "run_name", "progress", "print_evaluations",
                  "checkpoint_every", "total_steps", "eval_every", "eval_episodes")


@dataclass(frozen=True)
class TuneSpec:
    """Everything a study needs, saved as tune.json in its directory (so `--resume` needs nothing else)."""

    base: SACConfig  # every trial's config before its suggestion: seeds, run_root and checkpoints set
    space: tuple[Dimension, ...]
    trials: int
    objective: str
    sampler: str
    sampler_seed: int
    startup_trials: int
    pruner: str
    out: Path
    options: RayOptions

    @property
    def metric(self) -> str:
        return OBJECTIVES[self.objective]

    @property
    def storage_url(self) -> str:
        return f"sqlite:///{(self.out / DATABASE_NAME).resolve()}"

    def to_json(self) -> str:
        space = {}
        for d in self.space:
            space.update(d.to_dict())
        return json.dumps({"version": SPEC_VERSION, "base": self.base.to_dict(), "space": space,
                           "trials": self.trials, "objective": self.objective, "sampler": self.sampler,
                           "sampler_seed": self.sampler_seed, "startup_trials": self.startup_trials,
                           "pruner": self.pruner, "options": self.options.to_dict()}, indent=2)

    @classmethod
    def load(cls, out: str | Path) -> "TuneSpec":
        def parse(data: dict) -> "TuneSpec":
            space = tuple(Dimension.from_dict(name, values) for name, values in data["space"].items())
            return cls(base=SACConfig.from_dict(data["base"]), space=space, trials=int(data["trials"]),
                       objective=data["objective"], sampler=data["sampler"], sampler_seed=int(data["sampler_seed"]),
                       startup_trials=int(data["startup_trials"]), pruner=data["pruner"], out=Path(out),
                       options=RayOptions(**data["options"]))

        return read_description(out, SPEC_NAME, SPEC_VERSION, "study", parse)


# ------------------------------------------------------------------------------- the search space
def default_space(base: SACConfig) -> tuple[Dimension, ...]:
    """The search space that the config's algorithm declares (sac's for 'auto')."""
    return REGISTRY["sac" if base.algo == "auto" else base.algo].search_space


def read_space_file(path: str | Path) -> tuple[Dimension, ...]:
    """A search space from TOML: one table per field with one of `log`, `uniform` or `int` = [low, high], or
    `choice` = [values...], and optionally `also_sets` = [fields]; `extends = "default"` at the top starts from
    the algorithm's default space (its tables then replace or add fields), otherwise the file is the whole
    space. Returns the file's dimensions; a leading `extends` is kept as a Dimension named "" of kind "extends"."""
    data = read_toml(path, "the search space")
    dims = []
    extends = data.pop("extends", None)
    if extends not in (None, "default"):
        raise SoftacError(f"--space {path}: extends must be \"default\" (or left out), got {extends!r}.")
    if extends:
        dims.append(Dimension("", "extends"))
    for key, table in data.items():
        name = str(key).replace("-", "_")
        if not isinstance(table, dict):
            raise SoftacError(f"--space {name}: give a table [{key}] with one of {', '.join(KINDS)}.")
        kinds = [k for k in table if k in KINDS]
        unknown = [k for k in table if k not in KINDS and k != "also_sets"]
        if len(kinds) != 1 or unknown:
            raise SoftacError(f"--space {name}: give exactly one of {', '.join(KINDS)} (and optionally also_sets), "
                              f"got {', '.join(map(str, table)) or 'nothing'}.")
        kind, values = kinds[0], table[kinds[0]]
        also = table.get("also_sets", [])
        if not isinstance(also, list) or not all(isinstance(a, str) for a in also):
            raise SoftacError(f"--space {name}: also_sets must be a list of field names, got {also!r}.")
        if not isinstance(values, list):
            raise SoftacError(f"--space {name}: {kind} takes a list, got {values!r}.")
        also = tuple(a.replace("-", "_") for a in also)
        if kind == "choice":
            choices = tuple(tuple(v) if isinstance(v, list) else v for v in values)
            dims.append(Dimension(name, kind, choices=choices, also_sets=also))
        else:
            if len(values) != 2:
                raise SoftacError(f"--space {name}: {kind} takes [low, high], got {values!r}.")
            dims.append(Dimension(name, kind, values[0], values[1], also_sets=also))
    return tuple(dims)


def merge_space(base: SACConfig, file_dims: tuple[Dimension, ...]) -> tuple[Dimension, ...]:
    """The space a --space file describes: itself, or (extends = "default") the default space with its fields."""
    if file_dims and file_dims[0].kind == "extends":
        own = {d.name: d for d in file_dims[1:]}
        merged = [own.pop(d.name, d) for d in default_space(base)]
        return tuple(merged) + tuple(own.values())
    return file_dims


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_space(base: SACConfig, space: Sequence[Dimension]) -> tuple[Dimension, ...]:
    """The space once every field exists, may be searched, has a non-empty range or distinct choices, and
    every end of every range and every choice is a value the config accepts; else one sentence."""
    known = field_hints()
    space = tuple(space)
    if not space:
        raise SoftacError("The search space is empty; give a --space file with at least one field.")
    names = [n for d in space for n in (d.name, *d.also_sets)]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SoftacError(f"--space sets {', '.join(twice)} twice; give each field once.")
    for d in space:
        for name in (d.name, *d.also_sets):
            if name not in known:
                raise SoftacError(f"--space: there is no config field {name!r} (`softac train --help` lists them).")
            if name in NOT_SEARCHABLE:
                raise SoftacError(f"--space cannot search {name}: the study sets it (or takes it from the command line).")
        if d.kind not in KINDS:
            raise SoftacError(f"--space {d.name}: the kind must be one of {', '.join(KINDS)}, got {d.kind!r}.")
        if d.kind == "choice":
            if not d.choices:
                raise SoftacError(f"--space {d.name}: choice needs at least one value.")
            if len(set(d.choices)) != len(d.choices):
                raise SoftacError(f"--space {d.name}: choice lists a value twice: {list(d.choices)!r}.")
            values = list(d.choices)
        else:
            if not (_number(d.low) and _number(d.high)):
                raise SoftacError(f"--space {d.name}: {d.kind} needs two finite numbers [low, high], got "
                                  f"[{d.low!r}, {d.high!r}].")
            if not d.low < d.high:
                raise SoftacError(f"--space {d.name}: the range [{d.low:g}, {d.high:g}] is empty or inverted; "
                                  "give low < high.")
            if d.kind == "log" and d.low <= 0:
                raise SoftacError(f"--space {d.name}: a log range needs low > 0, got {d.low:g}.")
            if d.kind == "int" and not (float(d.low).is_integer() and float(d.high).is_integer()):
                raise SoftacError(f"--space {d.name}: int takes two integers, got [{d.low!r}, {d.high!r}].")
            values = [int(d.low), int(d.high)] if d.kind == "int" else [float(d.low), float(d.high)]
        for value in values:
            try:
                base.replace(**config_changes((d,), {d.name: decode_value(d.name, encode_choice(value))}))
            except SoftacError as exc:
                raise SoftacError(f"--space {d.name}={value!r}: {exc}") from None
            except (TypeError, ValueError) as exc:
                raise SoftacError(f"--space {d.name}={value!r} is not a value of that field ({exc}).") from None
    return tuple(Dimension(d.name, d.kind, int(d.low), int(d.high), (), d.also_sets) if d.kind == "int" else d
                 for d in space)


def optuna_distributions(space: Sequence[Dimension]) -> dict:
    """Each dimension as an Optuna distribution (a tuple choice as its "256,256" string)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for d in space:
        if d.kind == "choice":
            out[d.name] = CategoricalDistribution([encode_choice(c) for c in d.choices])
        elif d.kind == "int":
            out[d.name] = IntDistribution(int(d.low), int(d.high))
        else:
            out[d.name] = FloatDistribution(float(d.low), float(d.high), log=d.kind == "log")
    return out


def make_sampler(kind: str, seed: int, startup_trials: int):
    """Optuna's multivariate TPE (Bergstra et al. 2011; Falkner et al. 2018), with `startup_trials` random ones
    first and the constant liar for trials running at once, or its random sampler; both seeded."""
    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(multivariate=True, constant_liar=True, seed=seed,
                                          n_startup_trials=startup_trials)


def make_searcher(spec: TuneSpec):
    """The study's Ray Tune searcher (softac.tune_search.StudySearch) on its database."""
    import optuna

    from softac.tune_search import StudySearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return StudySearch(spec.space, spec.base.total_steps, space=optuna_distributions(spec.space),
                           metric=spec.metric, mode="max", study_name=STUDY_NAME,
                           storage=optuna.storages.RDBStorage(spec.storage_url),
                           sampler=make_sampler(spec.sampler, spec.sampler_seed, spec.startup_trials))


def optuna_module():
    """The `optuna` module, or one sentence saying how to install it (an optional dependency of softac[ray])."""
    try:
        import optuna
    except ImportError:
        raise SoftacError('Optuna is not installed; install the extra with: pip install "softac[ray]".') from None
    return optuna


# ------------------------------------------------------------------------------------- the study
def open_study(spec: TuneSpec):
    """The study in `spec.out`/study.db; one sentence if the file is not a softac study's database. The file is
    checked with the standard library first: Optuna would add its tables to any SQLite file it opens."""
    optuna = optuna_module()
    path = spec.out / DATABASE_NAME
    try:
        with open(path, "rb") as f:
            header = f.read(16)
    except OSError as exc:
        raise SoftacError(f"Cannot read the study database {path} ({exc.strerror or exc}).") from None
    if header != b"SQLite format 3\x00":
        raise SoftacError(f"{path} is not a study database (not an SQLite file).")
    try:
        with sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True) as db:
            names = [row[0] for row in db.execute("SELECT study_name FROM studies")]
    except sqlite3.Error as exc:
        raise SoftacError(f"{path} is not a study database of Optuna ({exc}).") from None
    if STUDY_NAME not in names:
        raise SoftacError(f"{path} holds no study named {STUDY_NAME!r} (it has {', '.join(names) or 'none'}).")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=STUDY_NAME, storage=spec.storage_url)


def _ended(study) -> int:
    from optuna.trial import TrialState

    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) for t in study.trials)


def tune(base_config: SACConfig, trials: int = 20, *, space: Optional[Sequence[Dimension]] = None,
         out: Optional[str | Path] = None, objective: str = "final", sampler: str = "tpe",
         sampler_seed: Optional[int] = None, startup_trials: int = 10, pruner: str = "asha",
         seeds_per_trial: int = 1, ray_address: Optional[str] = None, cpus_per_trial: int = 1,
         gpus_per_trial: float = 0.0, asha_grace_steps: Optional[int] = None, asha_reduction_factor: int = 3,
         max_failures: int = 3) -> list[dict]:
    """Run an Optuna study of `trials` trials on Ray Tune and return its trials as rows (see `study_rows`).

    `space` is a sequence of `Dimension`s (default: the algorithm's own, `AlgorithmSpec.search_space`). Each
    trial trains `seeds_per_trial` seeds together (`base_config.seeds` if given, else seed, seed+1, ...).
    `out` is a new study directory (default tunes/<env>__<timestamp>). See the module's docstring.
    """
    if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
        raise SoftacError(f"--trials must be a positive integer, got {trials!r}.")
    if objective not in OBJECTIVES:
        raise SoftacError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}.")
    if sampler not in SAMPLERS:
        raise SoftacError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}.")
    if pruner not in PRUNERS:
        raise SoftacError(f"--pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}.")
    if not isinstance(startup_trials, int) or startup_trials < 0:
        raise SoftacError(f"--startup-trials must be 0 or more, got {startup_trials!r}.")
    if not isinstance(seeds_per_trial, int) or seeds_per_trial < 1:
        raise SoftacError(f"--seeds-per-trial must be a positive integer, got {seeds_per_trial!r}.")
    seeds = tuple(base_config.seeds) if base_config.seeds else tuple(range(base_config.seed, base_config.seed + seeds_per_trial))
    checked = check_space(base_config, default_space(base_config) if space is None else merge_space(base_config, tuple(space)))
    options = RayOptions(address=ray_address, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial,
                         scheduler=PRUNERS[pruner], asha_grace_steps=asha_grace_steps,
                         asha_reduction_factor=asha_reduction_factor, max_failures=max_failures)
    check_options(options)
    optuna = optuna_module()
    if out is None:
        out = Path("tunes") / f"{portable_name(base_config.env)}__{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out = Path(out)
    new_experiment_dir(out, "study", "tune")
    base = base_config.replace(seed=seeds[0], seeds=seeds if len(seeds) > 1 else None,
                               run_root=str(out.resolve() / "runs"), run_name=None, progress=False,
                               print_evaluations=False, checkpoint_every=base_config.eval_every)
    spec = TuneSpec(base=base, space=checked, trials=trials, objective=objective, sampler=sampler,
                    sampler_seed=base_config.seed if sampler_seed is None else int(sampler_seed),
                    startup_trials=startup_trials, pruner=pruner, out=out, options=options)
    ray = start_ray(options)  # before anything is written: an unreachable or too small cluster leaves no directory
    try:
        write_description(out, SPEC_NAME, spec.to_json(), "study")
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(study_name=STUDY_NAME, storage=spec.storage_url, direction="maximize")
        study.set_user_attr("softac", {"env": base.env, "algo": base.algo, "objective": objective,
                                       "total_steps": base.total_steps, "seeds": list(seeds)})
        return _run(spec, resume=False)
    finally:
        ray.shutdown()


def resume_tune(out: str | Path) -> list[dict]:
    """Continue the study in `out` (after an interrupted or killed driver): ended trials are kept and inform
    the sampler, unfinished ones continue from their checkpoints, and only the rest of the trials run."""
    spec = TuneSpec.load(out)
    check_options(spec.options)
    open_study(spec)
    return _run(spec, resume=True)


def _run(spec: TuneSpec, resume: bool) -> list[dict]:
    study = open_study(spec)
    remaining = spec.trials - _ended(study)
    print(f"tune {spec.out}: {spec.trials} trials of {spec.base.env} ({spec.base.algo}, {spec.base.total_steps} env "
          f"steps, seeds {','.join(map(str, spec.base.seed_list))}), {spec.sampler} sampler (seed {spec.sampler_seed}),"
          f" pruner {spec.pruner}, objective {spec.objective}; {spec.options.cpus_per_trial} CPUs each on "
          f"{spec.options.address or 'a local Ray instance'}; study {spec.storage_url}", flush=True)
    print("search space: " + "; ".join(d.describe() for d in spec.space), flush=True)
    if remaining > 0:
        run_search(spec.base, make_searcher(spec), remaining, spec.out, spec.options, spec.metric, resume=resume,
                   resume_command=f"softac tune --resume {spec.out}")
    study = open_study(spec)
    if _ended(study) < spec.trials:
        raise TrialsInterrupted(f"The study was interrupted; continue it with: softac tune --resume {spec.out}")
    _fail_orphans(study)
    rows = study_rows(spec, study)
    write_results(spec, study, rows)
    return rows


def _fail_orphans(study) -> None:
    """Mark FAIL the trials still RUNNING in the database once every Tune trial has ended: each was asked for by
    a driver that was killed before it saved the experiment, and no Tune trial will tell it."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)


# ------------------------------------------------------------------------------------- results
STATE_TEXT = {"COMPLETE": "finished", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "not finished",
              "WAITING": "not started"}


def _run_dirs(spec: TuneSpec, number: int, changes: dict) -> list[Path]:
    try:
        return named_run_dirs(suggested_config(spec.base, number, changes))
    except SoftacError:  # values the config refuses (the trial failed at its start)
        return []


def _seed_finals(spec: TuneSpec, number: int, changes: dict) -> list[float]:
    from softac.logger import read_metrics

    finals = []
    for d in _run_dirs(spec, number, changes):
        try:
            evals = [r for r in read_metrics(d) if r["eval_return_mean"] is not None]
        except (FileNotFoundError, OSError):
            continue
        if evals:
            finals.append(float(evals[-1]["eval_return_mean"]))
    return finals


def study_rows(spec: TuneSpec, study) -> list[dict]:
    """One row per trial, by trial number: its state, value (the objective), last env step, the final
    evaluation of each seed with their mean and IQM with its 95% bootstrap interval, its run directories and
    its values."""
    from softac.statistics import seed_interval

    rows = []
    for t in study.trials:
        params = dict(t.params)
        changes = config_changes(spec.space, params)
        finals = _seed_finals(spec, t.number, changes)
        iqm = seed_interval(finals)
        rows.append({"trial": t.number, "state": STATE_TEXT.get(t.state.name, t.state.name.lower()),
                     "value": t.value, "env_step": t.last_step,
                     "seed_finals": ",".join(f"{v:.2f}" for v in finals),
                     "final_mean": float(np.mean(finals)) if finals else None,
                     "final_iqm": iqm[0] if iqm else None, "final_iqm_low": iqm[1] if iqm else None,
                     "final_iqm_high": iqm[2] if iqm else None,
                     "run_dirs": " ".join(map(str, _run_dirs(spec, t.number, changes))),
                     **{name: encode_choice(decode_value(name, value)) for name, value in params.items()}})
    return rows


def best_row(rows: Sequence[dict]) -> Optional[dict]:
    """The finished trial of the highest value (pruned and failed trials did not train to the end)."""
    finished = [r for r in rows if r["state"] == "finished" and r["value"] is not None]
    return max(finished, key=lambda r: r["value"]) if finished else None


def format_table(spec: TuneSpec, rows: Sequence[dict], top: int = 10) -> str:
    """The best `top` trials (finished ones first, then pruned, by value), as a Markdown table."""
    def rank(r):
        return (r["state"] == "finished", r["value"] if r["value"] is not None else -math.inf)

    names = [d.name for d in spec.space]
    header = "| trial | state | objective | final evaluation (IQM [95% bootstrap CI] over seeds) | env step | " + \
             " | ".join(names) + " |"
    lines = [header, "| " + " | ".join(["---"] * (5 + len(names))) + " |"]
    for r in sorted(rows, key=rank, reverse=True)[:top]:
        if r["final_mean"] is None:
            final = "-"
        elif r["final_iqm"] is None:
            final = f"{r['final_mean']:.1f}"
        else:
            final = f"{r['final_iqm']:.1f} [{r['final_iqm_low']:.1f}, {r['final_iqm_high']:.1f}]"
        value = "-" if r["value"] is None else f"{r['value']:.1f}"
        cells = [_cell_text(r.get(n)) for n in names]
        lines.append(f"| {r['trial']} | {r['state']} | {value} | {final} | {r['env_step'] or '-'} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell_text(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def importances(study) -> dict[str, float]:
    """Optuna's fANOVA importance of each searched field over the finished trials (empty with fewer than two,
    or when every finished trial has the same value)."""
    import optuna
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 2 or len({t.value for t in done}) < 2:
        return {}
    try:
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (ValueError, RuntimeError):  # e.g. a space whose every finished trial drew the same values
        return {}


def plot_history(study, path: Path, title: str = "") -> Optional[Path]:
    """The optimisation history (each finished trial's objective and the best so far) as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    if not done and not pruned:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    if done:
        numbers = [t.number for t in done]
        values = [t.value for t in done]
        ax.scatter(numbers, values, s=18, label="finished trial")
        ax.step(numbers, np.maximum.accumulate(values), where="post", color="C3", label="best so far")
    if pruned:
        ax.scatter([t.number for t in pruned], [t.value for t in pruned], s=18, marker="x", color="grey",
                   label="pruned (its last evaluation)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_results(spec: TuneSpec, study, rows: list[dict]) -> None:
    """trials.csv, best.toml, importances.json and history.png in the study directory, and the table printed."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(spec.out / TRIALS_NAME, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows([{k: ("" if v is None else v) for k, v in r.items()} for r in rows])
    print(format_table(spec, rows), flush=True)
    best = best_row(rows)
    if best is not None:
        params = {d.name: best[d.name] for d in spec.space if d.name in best}
        cfg = suggested_config(spec.base, best["trial"], config_changes(
            spec.space, {k: v for k, v in study.trials[best["trial"]].params.items()}))
        text = preset_file_text(cfg, (f"The best trial of the study {spec.out}: trial {best['trial']}, objective "
                                      f"({spec.objective}) {best['value']:.2f}.",
                                      "Train it with: softac train --preset-file THIS_FILE [--seed N ...]",
                                      f"Its values: {', '.join(f'{k}={v}' for k, v in params.items())}"))
        (spec.out / PRESET_NAME).write_text(text)
        print(f"best trial: {best['trial']} (objective {best['value']:.2f}); its config: {spec.out / PRESET_NAME}",
              flush=True)
    weights = importances(study)
    (spec.out / IMPORTANCES_NAME).write_text(json.dumps(weights, indent=2))
    if weights:
        print("importances (fANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in weights.items()), flush=True)
    title = f"{spec.base.env} ({spec.base.algo}): objective {spec.objective}, study {spec.out.name}"
    if plot_history(study, spec.out / HISTORY_NAME, title) is not None:
        print(f"trials: {spec.out / TRIALS_NAME}; history: {spec.out / HISTORY_NAME}", flush=True)
