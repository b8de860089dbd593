"""Published-results benchmark: learning curves of named suites, compared with reference figures.

`softac benchmark --suite NAME` trains every environment of the suite with all its seeds at once
(the seeds axis), evaluating every `eval_every` steps, then writes
- `docs/benchmarks/<suite>/<env>.png`: evaluation return against env steps, mean and spread over seeds;
- `docs/benchmarks/<suite>/<env>/seed<k>.csv`: the raw metrics of every seed;
- the suite's section of `docs/benchmarks.md`: the machine, the table of measured means beside the
  reference figures, wall time and env steps/s per run (never typed by hand: rerun the command).

A suite is configuration: a TOML file, built in (softac/suites/<name>.toml) or given by path, naming the
environments, step budget, seeds, evaluation schedule, preset and config changes, and the reference
figures (`load_suite` documents and checks the keys; `--envs`, `--total-steps`, `--seeds` override it). Runs live under
`<out_root>/<suite>/` and checkpoint at every evaluation, so an interrupted benchmark continues from
its last checkpoint when the same command runs again (finished evaluations are kept), and finished
runs are not trained again. One environment's failure is reported and does not stop the others.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import time
import tomllib
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np

from softac.config import SACConfig, preset, validate
from softac.errors import SoftacError, TrialsInterrupted
from softac.logger import read_metrics
from softac.rundir import portable_name
from softac.statistics import seed_interval


@dataclass(frozen=True)
class Reference:
    """A published deterministic evaluation return (a range, or one figure with low == high) at a step."""

    step: int
    low: float
    high: float

    def text(self) -> str:
        return f"{self.low:,.0f}" if self.low == self.high else f"{self.low:,.0f} to {self.high:,.0f}"


@dataclass(frozen=True)
class Suite:
    """A list of environments trained with one config for a step budget, several seeds each."""

    name: str
    envs: tuple[str, ...]
    total_steps: int
    seeds: tuple[int, ...]
    eval_every: int
    eval_episodes: int = 10
    base_preset: str = "paper"
    config: dict = field(default_factory=dict)  # further SACConfig changes
    references: dict = field(default_factory=dict)  # env -> tuple[Reference, ...]
    target_return: Optional[float] = None  # report the steps and wall time to reach this
    description: str = ""
    source: str = ""  # what `--suite` names: a built-in suite's name or the path of its .toml file
    default_total_steps: int = 0  # the budget the suite file gives (total_steps may be overridden)

    def run_config(self, env_id: str, out_root: Path) -> SACConfig:
        base = preset(self.base_preset).replace(**self.config)
        return base.replace(env=env_id, total_steps=self.total_steps, seeds=self.seeds, seed=self.seeds[0],
                            eval_every=self.eval_every, eval_episodes=self.eval_episodes,
                            checkpoint_every=self.eval_every, log_every=min(base.log_every, self.eval_every),
                            run_root=str(out_root / self.name), run_name=portable_name(env_id),
                            progress=False, print_evaluations=True)


# Config fields a suite sets from its own keys (or for its runs); [config] may not set them.
SUITE_SET_FIELDS = ("env", "total_steps", "seeds", "seed", "eval_every", "eval_episodes", "checkpoint_every",
                    "run_root", "run_name", "progress", "print_evaluations")


SUITES_DIR = Path(__file__).parent / "suites"
SUITE_KEYS = {"name", "description", "envs", "total_steps", "seeds", "eval_every", "eval_episodes", "preset",
              "config", "references", "target_return"}


def builtin_suites() -> list[str]:
    """Names of the suites shipped with softac (softac/suites/<name>.toml)."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def _suite_file(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise SoftacError(f"Benchmark suite file {str(path)!r} does not exist.")
        return path
    if (SUITES_DIR / f"{name_or_path}.toml").is_file():
        return SUITES_DIR / f"{name_or_path}.toml"
    raise SoftacError(f"Unknown benchmark suite {name_or_path!r}; choose one of {', '.join(builtin_suites())} "
                      "or give the path of a .toml suite file.")


def _positive_int(data: dict, key: str, where: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SoftacError(f"{where}: {key} must be a positive integer, got {value!r}.")
    return value


def _references(data: Any, where: str) -> dict[str, tuple[Reference, ...]]:
    """[references.<env>] tables of `<env step> = return` or `<env step> = [low, high]`."""
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise SoftacError(f"{where}: references must be tables [references.<env id>] of step = return.")
    out = {}
    for env_id, table in data.items():
        refs = []
        for step, value in table.items():
            low, high = (value, value) if not isinstance(value, list) else (tuple(value) + (None, None))[:2]
            try:
                step_number = int(step)
            except ValueError:
                step_number = 0
            if step_number <= 0 or (isinstance(value, list) and len(value) != 2) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
                raise SoftacError(f"{where}: reference {env_id} {step} = {value!r} must be an env step = a return "
                                  "or [low, high].")
            refs.append(Reference(step_number, float(low), float(high)))
        out[env_id] = tuple(sorted(refs, key=lambda r: r.step))
    return out


def load_suite(name_or_path: str) -> Suite:
    """The suite of a built-in name (softac/suites/<name>.toml) or of a .toml file; SoftacError, one
    sentence, for a missing file, malformed TOML, an unknown key or an invalid value."""
    path = _suite_file(name_or_path)
    where = f"Benchmark suite {str(path) if path.parent != SUITES_DIR else path.stem!r}"
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SoftacError(f"{where} cannot be read: {exc}.") from None
    unknown = sorted(set(data) - SUITE_KEYS)
    if unknown:
        raise SoftacError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys are {', '.join(sorted(SUITE_KEYS))}.")
    missing = sorted({"envs", "total_steps", "seeds", "eval_every"} - set(data))
    if missing:
        raise SoftacError(f"{where}: missing key(s) {', '.join(missing)}.")
    envs, seeds = data["envs"], data["seeds"]
    if not isinstance(envs, list) or not envs or not all(isinstance(e, str) and e for e in envs):
        raise SoftacError(f"{where}: envs must be a non-empty list of environment ids.")
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) != len(seeds)
            or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in seeds)):
        raise SoftacError(f"{where}: seeds must be a non-empty list of distinct non-negative integers.")
    config = data.get("config", {})
    if not isinstance(config, dict):
        raise SoftacError(f"{where}: [config] must be a table of softac config fields.")
    clash = sorted(set(config) & set(SUITE_SET_FIELDS))
    if clash:
        raise SoftacError(f"{where}: [config] cannot set {', '.join(clash)}; the suite sets it (use its top-level "
                          "keys envs, total_steps, seeds, eval_every, eval_episodes).")
    target = data.get("target_return")
    if target is not None and (not isinstance(target, (int, float)) or isinstance(target, bool)):
        raise SoftacError(f"{where}: target_return must be a number, got {target!r}.")
    suite = Suite(
        name=str(data.get("name", path.stem)), envs=tuple(envs),
        total_steps=_positive_int(data, "total_steps", where), seeds=tuple(seeds),
        eval_every=_positive_int(data, "eval_every", where),
        eval_episodes=_positive_int(data, "eval_episodes", where) if "eval_episodes" in data else 10,
        base_preset=str(data.get("preset", "paper")),
        config={k: tuple(v) if isinstance(v, list) else v for k, v in config.items()},
        references=_references(data.get("references", {}), where),
        target_return=None if target is None else float(target), description=str(data.get("description", "")),
        source=name_or_path if path.parent == SUITES_DIR else str(path), default_total_steps=data["total_steps"])
    return _checked(suite, where)


def _checked(suite: Suite, where: str) -> Suite:
    """`suite` once the config of its runs is valid (every field and value, before anything trains)."""
    try:
        validate(suite.run_config(suite.envs[0], Path("benchmarks/results")))
    except SoftacError as exc:
        raise SoftacError(f"{where}: {exc}") from None
    return suite


def get_suite(name: str, envs: Optional[tuple[str, ...]] = None, total_steps: Optional[int] = None,
              seeds: Optional[tuple[int, ...]] = None) -> Suite:
    """The suite `name` (built-in name or .toml path, see `load_suite`) with the given overrides."""
    changes: dict[str, Any] = {}
    if envs:
        changes["envs"] = tuple(envs)
    if total_steps is not None:
        changes["total_steps"] = total_steps
    if seeds:
        changes["seeds"] = tuple(seeds)
    suite = load_suite(name)
    return _checked(replace(suite, **changes), f"Benchmark suite {suite.source!r}") if changes else suite


# ------------------------------------------------------------------------------------ running
def run_env(suite: Suite, env_id: str, out_root: Path) -> list[Path]:
    """Train (or continue, or skip if finished) the seeds of one environment; returns their run directories."""
    from softac.checkpoint import checkpoint_step
    from softac.rundir import named_run_dirs
    from softac.train import train_or_resume

    cfg = suite.run_config(env_id, out_root)
    steps = [checkpoint_step(d) for d in named_run_dirs(cfg)]
    if all(s is not None for s in steps):
        print(f"{env_id}: finished earlier ({suite.total_steps} steps), not trained again" if min(steps) >= suite.total_steps
              else f"{env_id}: continuing from env step {min(steps)}", flush=True)
    return train_or_resume(cfg)


def suite_trials(suite: Suite, out_root: Path, seeds_per_trial: Optional[int] = None) -> list:
    """The suite as Ray Tune trials (softac.distributed): one per environment and group of `seeds_per_trial`
    seeds (default: all seeds in one trial), with the same run directories as a run without Ray."""
    from softac.distributed import Trial, seed_groups

    trials = []
    for env_id in suite.envs:
        cfg = suite.run_config(env_id, out_root.resolve())
        for group in seed_groups(suite.seeds, seeds_per_trial):
            run_name = cfg.run_name if len(group) > 1 or len(suite.seeds) == 1 else f"{cfg.run_name}__seed{group[0]}"
            trials.append(Trial(name=f"{cfg.run_name}-seeds{'-'.join(map(str, group))}",
                                label=f"[{suite.name}: {env_id}, seeds {','.join(map(str, group))}]",
                                config=cfg.replace(seeds=group if len(group) > 1 else None, seed=group[0],
                                                   run_name=run_name, print_evaluations=False)))
    return trials


def run_suite(suite: Suite, out_root: str | Path = "benchmarks/results", docs: str | Path = "docs/benchmarks.md",
              ray=None, seeds_per_trial: Optional[int] = None) -> dict:
    """Run every environment of `suite` (one failure does not stop the others), then write the report.
    With `ray` (softac.distributed.RayOptions) the environments and seed groups run as Ray Tune trials."""
    out_root, docs = Path(out_root), Path(docs)
    print(f"benchmark {suite.name}: {', '.join(suite.envs)}; {suite.total_steps} steps; seeds "
          f"{','.join(map(str, suite.seeds))}; runs under {out_root / suite.name}", flush=True)
    results, failures = {}, {}
    if ray is not None:
        results, failures = _run_suite_on_ray(suite, out_root, ray, seeds_per_trial)
    for env_id in suite.envs if ray is None else ():
        started = time.time()
        try:
            results[env_id] = run_env(suite, env_id, out_root)
        except Exception as exc:  # keep the other environments' results
            failures[env_id] = f"{type(exc).__name__}: {exc}"
            print(f"{env_id}: FAILED after {time.time() - started:.0f} s: {failures[env_id]}", flush=True)
    report = write_report(suite, results, failures, docs)
    print(report["table"])
    return report


def _run_suite_on_ray(suite: Suite, out_root: Path, options, seeds_per_trial: Optional[int]):
    """Every environment and seed group as a Ray Tune trial. Each call is a new Tune experiment (under
    <out_root>/<suite>/ray-<timestamp>): the run directories, not Tune's state, say what is done, so running
    the command again continues unfinished runs and leaves finished ones, whatever the step budget."""
    from softac.distributed import check_options, run_trials
    from softac.rundir import named_run_dirs

    check_options(options)
    trials = suite_trials(suite, out_root, seeds_per_trial)
    experiment_dir = out_root / suite.name / f"ray-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    experiment_dir.mkdir(parents=True, exist_ok=True)
    outcomes, interrupted = run_trials(trials, experiment_dir, options)
    if interrupted:
        raise TrialsInterrupted("The benchmark was interrupted; run the same command again to continue it.")
    results, failures = {}, {}
    for env_id in suite.envs:
        mine = [o for t, o in zip(trials, outcomes) if t.config.env == env_id]
        bad = [o.status for o in mine if o.status != "finished"]
        if bad:
            failures[env_id] = bad[0]
        else:
            results[env_id] = named_run_dirs(suite.run_config(env_id, out_root))
    return results, failures


# ------------------------------------------------------------------------------------ report
def _eval_at(rows: list[dict], step: int) -> Optional[float]:
    for r in rows:
        if r["env_step"] == step and r["eval_return_mean"] is not None:
            return r["eval_return_mean"]
    return None


def env_summary(suite: Suite, run_dirs: list[Path]) -> dict:
    """Figures of one environment's seeds: evaluation means at the reference and final steps, wall time,
    training env steps/s, and the steps and wall time to `target_return` per seed."""
    all_rows = [read_metrics(d) for d in run_dirs]
    evals = [[r for r in rows if r["eval_return_mean"] is not None] for rows in all_rows]
    final_step = int(min(rows[-1]["env_step"] for rows in evals))
    references = [r.step for r in suite.references.get(_env_of(run_dirs[0]), ()) if r.step <= suite.total_steps]
    steps = sorted(set(references) | {final_step})
    at = {}
    for step in steps:
        values = [v for v in (_eval_at(rows, step) for rows in evals) if v is not None]
        at[step] = (float(np.mean(values)), float(np.std(values)), len(values), seed_interval(values)) if values else None
    # Training throughput: rows once updates run (they carry losses), less the first (it includes compiling).
    rates = [r["steps_per_second"] for rows in all_rows
             for r in [r for r in rows if r["critic_loss"] is not None][1:] if r["steps_per_second"] is not None]
    reach = []
    if suite.target_return is not None:
        for rows in evals:
            first = next((r for r in rows if r["eval_return_mean"] >= suite.target_return), None)
            reach.append(None if first is None else (int(first["env_step"]), float(first["wall_time"])))
    return {
        "at": at,
        "final_step": final_step,
        "wall_time": max(rows[-1]["wall_time"] for rows in all_rows),
        "steps_per_second": float(np.median(rates)) if rates else float("nan"),
        "reach": reach,
    }


def _env_of(run_dir: Path) -> str:
    from softac.rundir import read_run_config

    return read_run_config(run_dir).env


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import jax

    return (f"{cpu}, {os.cpu_count()} cores, {jax.devices()[0].platform} JAX {jax.__version__}, "
            f"Python {platform.python_version()}, {platform.system()}")


TABLE_HEADER = ["| environment | env step | measured mean +- std (seeds) | IQM [95% bootstrap CI] | reference | wall time "
                "| env steps/s |", "| --- | --- | --- | --- | --- | --- | --- |"]


def write_report(suite: Suite, results: dict[str, list[Path]], failures: dict[str, str], docs: Path) -> dict:
    """Regenerate, in `docs`, the suite's header and one block per environment run now (plots and raw
    metrics beside it). Blocks of environments not run now are kept, so the environments of a suite can
    be run in separate sessions. Returns the figures and the table of this run."""
    assets = docs.parent / docs.stem / suite.name
    figures, rows = {}, []
    header = [f"## Suite `{suite.name}`", "", suite.description, "",
              f"Command: `softac benchmark --suite {suite.source or suite.name}` (`--envs` runs some of its environments; each "
              f"environment's block below is regenerated by its own run). {suite.default_total_steps or suite.total_steps:,} env "
              f"steps per run unless a block says otherwise, seeds {', '.join(map(str, suite.seeds))}, deterministic evaluation every {suite.eval_every:,} "
              f"steps over {suite.eval_episodes} episodes. Wall time is the time of the process training all seeds "
              "together (the parts of a resumed run added up); env steps/s is the median of the metrics rows once updates run (per seed, without "
              "evaluation and checkpoint time).", ""]
    _replace_block(docs, f"suite:{suite.name}", "\n".join(header), after=None)
    for env_id, run_dirs in results.items():
        summary = env_summary(suite, run_dirs)
        figures[env_id] = summary
        env_rows = _env_rows(suite, env_id, summary)
        rows += env_rows
        body = [f"### {env_id}", "",
                f"Generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {_machine()}; "
                f"{suite.total_steps:,} env steps per run.", ""]
        body += TABLE_HEADER + env_rows + [""]
        if suite.target_return is not None:
            body += [_reach_line(suite, env_id, summary), ""]
        body += [f"![{env_id}]({_write_assets(suite, env_id, run_dirs, assets).relative_to(docs.parent).as_posix()})", ""]
        _replace_block(docs, f"suite:{suite.name}:{env_id}", "\n".join(body), after=f"suite:{suite.name}")
    for env_id, error in failures.items():
        rows.append(f"| {env_id} | - | FAILED: {error} | - | - | - | - |")
        _replace_block(docs, f"suite:{suite.name}:{env_id}",
                       f"### {env_id}\n\nThe last run FAILED: {error}\n", after=f"suite:{suite.name}")
    return {"figures": figures, "failures": failures, "table": "\n".join(TABLE_HEADER + rows)}


def _env_rows(suite: Suite, env_id: str, summary: dict) -> list[str]:
    references = {r.step: r for r in suite.references.get(env_id, ())}
    rate = summary["steps_per_second"]
    rows = []
    for step, measured in summary["at"].items():
        text = "not reached" if measured is None else f"{measured[0]:,.1f} +- {measured[1]:,.1f} ({measured[2]})"
        iqm = "-" if measured is None or measured[3] is None else "{:,.1f} [{:,.1f}, {:,.1f}]".format(*measured[3])
        ref = references[step].text() if step in references else "-"
        rows.append(f"| {env_id} | {step:,} | {text} | {iqm} | {ref} | {summary['wall_time'] / 60:.1f} min "
                    f"| {'-' if np.isnan(rate) else f'{rate:.1f}'} |")
    return rows


def _reach_line(suite: Suite, env_id: str, summary: dict) -> str:
    cells = ["not reached" if r is None else f"{r[0]:,} steps / {r[1]:.0f} s" for r in summary["reach"]]
    reached = [r for r in summary["reach"] if r is not None]
    mean = (f"mean {np.mean([r[0] for r in reached]):,.0f} steps, {np.mean([r[1] for r in reached]):.0f} s"
            if reached else "none reached")
    return (f"Steps / wall time to a mean evaluation return of {suite.target_return:g}, per seed "
            f"{', '.join(map(str, suite.seeds))}: {'; '.join(cells)} ({mean}, {len(reached)} of {len(cells)} seeds).")


def _write_assets(suite: Suite, env_id: str, run_dirs: list[Path], assets: Path) -> Path:
    """The learning-curve PNG and a copy of every seed's metrics.csv; returns the PNG's path."""
    from softac.plot import plot_runs

    safe = portable_name(env_id)
    (assets / safe).mkdir(parents=True, exist_ok=True)
    for seed, run_dir in zip(suite.seeds, run_dirs):
        shutil.copyfile(run_dir / "metrics.csv", assets / safe / f"seed{seed}.csv")
    references = [(r.step, r.low, r.high) for r in suite.references.get(env_id, ()) if r.step <= suite.total_steps]
    seeds = f"{len(run_dirs)} seed{'' if len(run_dirs) == 1 else 's'}"
    return plot_runs(run_dirs, assets / f"{safe}.png", title=f"{env_id} ({suite.name}, {seeds})", references=references)


PAGE_HEADER = ("# Benchmarks\n\nGenerated by `softac benchmark --suite NAME`; every figure on this page comes from "
               "the runs of that command (see softac/learning_curves.py). Rerun the command to regenerate a section.\n")


def _replace_block(docs: Path, key: str, body: str, after: Optional[str]) -> None:
    """Put `body` between the markers of `key` in `docs`, atomically. A new block goes after the last
    block whose key starts with `after` (or at the end of the page)."""
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    text = docs.read_text() if docs.exists() else PAGE_HEADER
    block = f"{start}\n{body}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        ends = [m.end() for m in re.finditer(r"<!-- " + re.escape(after) + r"(:[^>]*)?:end -->", text)] if after else []
        at = ends[-1] if ends else len(text.rstrip())
        text = text[:at] + "\n\n" + block + text[at:] if ends else text.rstrip() + "\n\n" + block + "\n"
    docs.parent.mkdir(parents=True, exist_ok=True)
    tmp = docs.with_name(f".{docs.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, docs)
