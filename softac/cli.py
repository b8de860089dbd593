"""The `softac` command line: train, eval, export, plot, compare, bench, benchmark, sweep, tune, tabular.

`softac train` has one flag per SACConfig field (the field name with dashes, its help the field's
documentation); `--preset NAME` starts from a named config and explicit flags override it.
Every error a user can cause prints one sentence and exits with status 2, without a traceback:
softac's own errors, bad flag values (one line, not the whole usage) and operating-system errors
(permissions, a full disk). Ctrl-C or SIGTERM during training saves a checkpoint of every seed,
prints the command that continues the run, and exits with 130 or 143.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading
import types
import typing
from pathlib import Path
from typing import Any, Optional, Sequence

from softac.config import PRESETS, SACConfig, field_hints, preset, preset_from_file
from softac.errors import SoftacError, TrainingInterrupted, TrialsInterrupted


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as one line (`softac: error: ...`, status 2) instead of the whole usage."""

    def error(self, message: str):
        self.exit(2, f"softac: error: {message} (see {self.prog} --help).\n")


# ------------------------------------------------------------------------------ config flags
def _parse_optional(parse):
    def parse_or_none(text: str):
        return None if text.lower() == "none" else parse(text)
    return parse_or_none


def _parse_int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _flag_kwargs(annotation: Any) -> dict:
    """argparse keyword arguments for a config field's type annotation."""
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional, annotation = True, args[0]
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(annotation) is tuple:
        parse, metavar = _parse_int_tuple, "N,N,..."
    else:
        parse, metavar = annotation, annotation.__name__.upper()
    if optional:
        parse = _parse_optional(parse)
        parse.__name__ = metavar.lower()
    return {"type": parse, "metavar": metavar}


def _shared_default_text(name: str, value: Any) -> str:
    """'(default: X)', or for a field whose default is the algorithm's, each algorithm's value."""
    from softac.algos.registry import REGISTRY, algorithm_defaults

    if value is not None or name not in algorithm_defaults("auto"):
        return f"(default: {value!r})"
    by_algo = {algo: algorithm_defaults(algo)[name] for algo in REGISTRY}
    common = algorithm_defaults("auto")[name]
    special = [f"{algo} {v!r}" for algo, v in by_algo.items() if v != common]
    shown = "hidden_sizes" if name == "critic_hidden_sizes" and common is None else repr(common)
    return f"(default: {shown}" + (f"; {', '.join(special)}" if special else "") + ")"


def _algo_from_argv(argv: Sequence[str]) -> Optional[str]:
    """The value of --algo in argv, if it is given (to show only that algorithm's own flags in --help)."""
    for i, arg in enumerate(argv):
        if arg == "--algo" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--algo="):
            return arg.partition("=")[2]
    return None


def add_config_flags(parser: argparse.ArgumentParser, algo: Optional[str] = None) -> None:
    """One flag per SACConfig field, and one per hyperparameter of an algorithm's own (a group per algorithm;
    a name several algorithms share is one flag, in the first one's group). With `algo` given, --help shows
    that algorithm's group only. Defaults are suppressed so only explicit flags are seen."""
    from softac.algos.registry import REGISTRY

    hints = typing.get_type_hints(SACConfig)
    defaults = SACConfig()
    group = parser.add_argument_group("config (SACConfig fields, shared by every algorithm)")
    for f in dataclasses.fields(SACConfig):
        if f.name == "algo_params":  # set through the algorithms' own flags below
            continue
        help_text = f"{f.metadata.get('help', '')} {_shared_default_text(f.name, getattr(defaults, f.name))}"
        if f.name == "algo":
            help_text += "; " + "; ".join(f"{name}: {spec.summary}" for name, spec in REGISTRY.items())
        group.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=argparse.SUPPRESS,
                           help=help_text, **_flag_kwargs(hints[f.name]))
    seen: set[str] = set()
    order = sorted(REGISTRY, key=lambda name: name != algo)  # a shared flag goes to the group of --algo
    for name in order:
        spec = REGISTRY[name]
        if spec.params is None:
            continue
        params_hints = typing.get_type_hints(spec.params)
        shown = algo is None or algo == name
        group = parser.add_argument_group(f"{name}: its own hyperparameters (--algo {name})" if shown else None)
        for f in dataclasses.fields(spec.params):
            if f.name in seen:
                continue
            seen.add(f.name)
            owners = [(a, g) for a, s in REGISTRY.items() if s.params is not None
                      for g in dataclasses.fields(s.params) if g.name == f.name]
            shown_here = algo is None or any(a == algo for a, _ in owners)
            if shown_here and algo is not None:  # --help of one algorithm: its own text and default
                owners = [(a, g) for a, g in owners if a == algo]
            if len(owners) > 1:
                help_text = "; ".join(f"{a}: {g.metadata.get('help', '')} (default: {g.default!r})" for a, g in owners)
            else:
                help_text = f"{owners[0][1].metadata.get('help', '')} (default: {owners[0][1].default!r})"
            parser_group = group if shown else parser.add_argument_group(None)
            parser_group.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=argparse.SUPPRESS,
                                      help=help_text if shown_here else argparse.SUPPRESS,
                                      **_flag_kwargs(params_hints[f.name]))


def config_field_names() -> set[str]:
    """The names a flag may set: SACConfig's fields and every algorithm's own hyperparameters."""
    return set(field_hints())


def config_from_args(args: argparse.Namespace) -> SACConfig:
    """The preset (or the defaults) with the explicitly given flags applied (an algorithm's own ones go to
    algo_params, where the config checks they belong to --algo)."""
    preset_file = getattr(args, "preset_file", None)
    if args.preset and preset_file:
        raise SoftacError("Give --preset or --preset-file, not both.")
    base = preset(args.preset) if args.preset else preset_from_file(preset_file) if preset_file else SACConfig()
    names = config_field_names()
    given = {k: v for k, v in vars(args).items() if k in names}
    return base.replace(**given)


# ------------------------------------------------------------------------------ commands
def cmd_train(args: argparse.Namespace) -> int:
    # The arguments are checked before softac.train (JAX) is imported: a bad value is an error at once.
    if args.resume:
        names = config_field_names()
        changeable = ("total_steps", "progress", "print_evaluations")
        others = sorted(k for k in vars(args) if k in names and k not in changeable)
        others += [k for k in ("preset", "preset_file") if getattr(args, k)]
        if others:
            flags = ", ".join("--" + k.replace("_", "-") for k in others)
            raise SoftacError(f"--resume continues a run with its saved config; {flags} cannot be changed "
                              "(only --total-steps, --progress and --print-evaluations can).")
        from softac.train import resume

        run_dirs = resume(args.resume, total_steps=getattr(args, "total_steps", None),
                          progress=getattr(args, "progress", None),
                          print_evaluations=getattr(args, "print_evaluations", None))
    else:
        cfg = config_from_args(args)
        from softac.train import train

        run_dirs = train(cfg)
    _report_runs(run_dirs)
    return 0


def _report_runs(run_dirs: Sequence[Path]) -> None:
    from softac.logger import read_metrics
    from softac.plot import plot_runs

    for run_dir in run_dirs:
        evals = [r for r in read_metrics(run_dir) if r.get("eval_return_mean") is not None]
        if evals:
            last = evals[-1]
            print(f"{run_dir}: env step {int(last['env_step'])}, evaluation return "
                  f"mean {last['eval_return_mean']:.2f} std {last['eval_return_std']:.2f}")
    out = Path(run_dirs[0]) / "learning_curve.png"
    plot_runs(run_dirs, out)
    print(f"learning curve: {out}")


def cmd_eval(args: argparse.Namespace) -> int:
    if args.episodes <= 0:
        raise SoftacError(f"--episodes must be positive, got {args.episodes}.")
    from softac.evaluate import load_agent

    agent = load_agent(args.run_dir)
    if args.video is not None:  # the same episodes, rendered: DIR/episode-<i>.mp4 (softac.video)
        from softac.video import record_episodes

        returns, paths = record_episodes(agent, args.video, episodes=args.episodes, seed=args.seed)
        for path in paths:
            print(f"video {path}")
    else:
        returns = agent.evaluate(episodes=args.episodes, seed=args.seed)
    print(f"episodes {len(returns)}")
    print(f"mean {returns.mean():.4f}")
    print(f"std {returns.std():.4f}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from softac.export import export_policy

    exported = export_policy(args.run_dir, args.format, args.out)
    print(f"{exported.path}: {exported.summary}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from softac.plot import plot_runs

    print(plot_runs(args.run_dirs, args.out))  # the path written: --out, with .png added if it has no suffix
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from softac.compare import run_compare

    text, figures = run_compare(args.groups, step=args.step, normalize=args.normalize, reference=args.reference,
                                out=args.out, reps=args.reps, seed=args.seed)
    print(text)
    print("figures: " + ", ".join(str(p) for p in figures))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from softac.algos.registry import algorithm_names

    names = algorithm_names()
    algos = tuple(a for a in args.algos.split(",") if a)
    unknown = [a for a in algos if a not in names]
    if args.seeds < 1:
        raise SoftacError(f"--seeds must be a positive number of seeds, got {args.seeds}.")
    if unknown or not algos:
        raise SoftacError(f"--algos must name algorithms among {', '.join(names)}, got {args.algos!r}.")
    num_envs = _parse_positive_list(args.num_envs, "--num-envs")
    from softac.throughput import run_benchmark

    run_benchmark(env_id=args.env, train_steps=args.train_steps, learning_starts=args.learning_starts,
                  update_repeats=args.update_repeats, algos=algos, num_seeds=args.seeds, num_envs=num_envs)
    return 0


def _parse_positive_list(text: str, flag: str) -> tuple[int, ...]:
    """Comma-separated positive integers, or SoftacError naming the flag."""
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise SoftacError(f"{flag} must be comma-separated positive integers, got {text!r}.")
    return values


def cmd_benchmark(args: argparse.Namespace) -> int:
    from softac.learning_curves import get_suite, run_suite

    suite = get_suite(args.suite, envs=tuple(e for e in (args.envs or "").split(",") if e) or None,
                      total_steps=args.total_steps, seeds=args.seeds)
    ray = None
    if args.ray is not None:
        from softac.distributed import RayOptions

        ray = RayOptions(address=None if args.ray == "local" else args.ray, cpus_per_trial=args.cpus_per_trial,
                         gpus_per_trial=args.gpus_per_trial, max_failures=args.max_failures)
    if args.seeds_per_trial is not None and (ray is None or args.seeds_per_trial < 1):
        raise SoftacError("--seeds-per-trial needs --ray and a positive number of seeds.")
    report = run_suite(suite, out_root=args.out_root, docs=args.docs, ray=ray, seeds_per_trial=args.seeds_per_trial)
    return 2 if report["failures"] else 0


SWEEP_ONLY = ("grid", "ray_address", "cpus_per_trial", "gpus_per_trial", "seeds_per_trial", "scheduler",
              "asha_grace_steps", "asha_reduction_factor", "max_failures", "out")


def _refuse_flags_with_resume(args: argparse.Namespace, own: Sequence[str], kind: str) -> None:
    """One sentence if a config flag, a preset or one of the command's `own` flags is given with --resume."""
    names = config_field_names()
    given = sorted([k for k in vars(args) if k in names] +
                   [k for k in own if getattr(args, k) not in (None, False, [])])
    given += [k for k in ("preset", "preset_file") if getattr(args, k)]
    if given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise SoftacError(f"--resume continues a {kind} as it was started; {flags} cannot be given with it.")


def cmd_sweep(args: argparse.Namespace) -> int:
    from softac.study import parse_grid_flag, resume_sweep, sweep

    if args.resume:
        _refuse_flags_with_resume(args, SWEEP_ONLY, "sweep")
        resume_sweep(args.resume)
        return 0
    cfg = config_from_args(args)
    grid = [parse_grid_flag(text) for text in args.grid or []]
    defaults = {"cpus_per_trial": 1, "gpus_per_trial": 0.0, "scheduler": "fifo", "asha_reduction_factor": 3,
                "max_failures": 3}
    options = {k: defaults[k] if getattr(args, k) is None else getattr(args, k) for k in defaults}
    sweep(cfg.replace(seeds=None), grid, seeds=cfg.seed_list, out=args.out, seeds_per_trial=args.seeds_per_trial,
          ray_address=args.ray_address, asha_grace_steps=args.asha_grace_steps, **options)
    return 0


TUNE_ONLY = ("trials", "space", "sampler", "sampler_seed", "startup_trials", "pruner", "objective", "ray_address",
             "cpus_per_trial", "gpus_per_trial", "seeds_per_trial", "asha_grace_steps", "asha_reduction_factor",
             "max_failures", "out")


def cmd_tune(args: argparse.Namespace) -> int:
    from softac.optimize import read_space_file, resume_tune, tune

    if args.resume:
        _refuse_flags_with_resume(args, TUNE_ONLY, "study")
        resume_tune(args.resume)
        return 0
    cfg = config_from_args(args)
    if args.seeds_per_trial is not None and cfg.seeds:
        raise SoftacError("Give --seeds (the seeds of every trial) or --seeds-per-trial, not both.")
    space = read_space_file(args.space) if args.space is not None else None
    defaults = {"trials": 20, "sampler": "tpe", "startup_trials": 10, "pruner": "asha", "objective": "final",
                "seeds_per_trial": 1, "cpus_per_trial": 1, "gpus_per_trial": 0.0, "asha_reduction_factor": 3,
                "max_failures": 3}
    options = {k: defaults[k] if getattr(args, k) is None else getattr(args, k) for k in defaults}
    tune(cfg, space=space, out=args.out, sampler_seed=args.sampler_seed, ray_address=args.ray_address,
         asha_grace_steps=args.asha_grace_steps, **options)
    return 0


def cmd_tabular(args: argparse.Namespace) -> int:
    from softac import tabular
    from softac.figures import figure_path

    if args.plot is not None:
        figure_path(args.plot)  # a bad output path fails before any work
    P, R = tabular.named_mdp(args.mdp, seed=args.seed)
    print(tabular.soft_policy_iteration_report(P, R, args.gamma, args.alpha, plot_path=args.plot))
    return 0


def _add_ray_flags(p: argparse.ArgumentParser) -> None:
    """The flags of where and how Ray Tune trials run, shared by sweep and tune."""
    p.add_argument("--ray-address", default=None, metavar="auto|HOST:PORT",
                   help="join a running Ray cluster (default: start a local Ray instance sized to this machine)")
    p.add_argument("--cpus-per-trial", type=int, default=None, help="cores each trial keeps to (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=None,
                   help="GPUs per trial, a fraction to share one (default 0: JAX on the CPU)")
    p.add_argument("--asha-grace-steps", type=int, default=None,
                   help="env steps before the scheduler (pruner) may stop a trial (default total_steps / 9)")
    p.add_argument("--asha-reduction-factor", type=int, default=None,
                   help="ASHA keeps the best 1/factor of the trials at each rung (default 3)")
    p.add_argument("--max-failures", type=int, default=None,
                   help="restarts of a trial whose worker died, each from its last checkpoint (default 3)")


def _add_preset_file_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset-file", type=Path, default=None, metavar="FILE.toml",
                   help="start from the [config] table of a preset file (softac tune writes its best trial's as "
                        "best.toml); explicit flags override it")


def build_parser(algo: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of every command; `algo` (the --algo of the command line) narrows --help to its own flags."""
    parser = _Parser(prog="softac", description="Soft Actor-Critic in JAX.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train SAC (or continue a run with --resume)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from a named set of hyperparameters")
    _add_preset_file_flag(p)
    p.add_argument("--resume", nargs="+", metavar="RUN_DIR",
                   help="continue these runs from their last checkpoints (with --total-steps to extend them)")
    add_config_flags(p, algo)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a run's deterministic policy")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="episode i is reset with seed SEED + i")
    p.add_argument("--video", type=Path, default=None, metavar="DIR",
                   help="also write an MP4 of every episode to DIR/episode-<i>.mp4 (a name in use gets a suffix: "
                        "no file is overwritten); needs softac[video]")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="write a run's deterministic policy as an ONNX model or numpy weights (npz)")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--format", choices=["onnx", "npz"], required=True,
                   help="onnx: a model for onnxruntime (needs softac[export]); npz: weights for "
                        "softac.numpy_policy.NumpyPolicy, which needs numpy only")
    p.add_argument("--out", type=Path, required=True, help="the file to write (an earlier export there is replaced)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("plot", help="plot evaluation return against env steps")
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path("curve.png"))
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("compare", help="compare groups of runs: IQM, mean, probability of improvement, performance "
                                       "profiles with stratified bootstrap intervals (rliable's statistics)",
                       description="Each group is NAME=RUN_DIR[,RUN_DIR...] (a quoted glob such as 'sac=runs/sac*' "
                                   "names the directories it matches); its runs may be several seeds and several "
                                   "environments (the env of each config.json). A run's score is its final evaluation "
                                   "return (or at --step). See docs/statistics.md.")
    p.add_argument("groups", nargs="*", metavar="NAME=RUN_DIR[,RUN_DIR...]")
    p.add_argument("--step", type=int, default=None, help="use every run's evaluation at this env step (default: "
                   "its last evaluation)")
    p.add_argument("--normalize", default=None, metavar="MIN:MAX",
                   help="normalise every environment's returns as (return - MIN) / (MAX - MIN) to aggregate them "
                        "(write --normalize=-1500:-150 for a negative MIN)")
    p.add_argument("--reference", type=Path, default=None, metavar="FILE.toml",
                   help='per-environment min and max for the normalisation: ["Hopper-v5"] min = ... max = ...')
    p.add_argument("--out", type=Path, default=Path("compare"), help="directory for intervals.png and "
                   "performance_profile.png (default: compare)")
    p.add_argument("--reps", type=int, default=50_000, help="bootstrap replicates (default 50000, as rliable)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("bench", help="throughput: env steps/s of training, updates/s, fraction of the FLOP ceiling")
    p.add_argument("--env", default="HalfCheetah-v5")
    p.add_argument("--train-steps", type=int, default=3000, help="training steps timed after the warm-up")
    p.add_argument("--learning-starts", type=int, default=5000)
    p.add_argument("--update-repeats", type=int, default=500, help="jitted updates timed alone")
    p.add_argument("--algos", default="sac,sac-v1", help="comma-separated algorithms, reported side by side")
    p.add_argument("--seeds", type=int, default=1, help="train this many seeds at once for (a)")
    p.add_argument("--num-envs", default="1", help="comma-separated environments per seed for (a), e.g. 1,4,16: "
                   "one training measurement each")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("benchmark", help="learning curves of a suite of environments against published figures")
    p.add_argument("--suite", default="mujoco-short", help="a built-in suite (mujoco-short, pendulum, smoke: softac/suites/) or the path of a .toml suite file")
    p.add_argument("--envs", default=None, help="comma-separated env ids replacing the suite's")
    p.add_argument("--total-steps", type=int, default=None, help="env steps per run, replacing the suite's")
    p.add_argument("--seeds", type=_parse_int_tuple, default=None, help="seeds, e.g. 0,1,2, replacing the suite's")
    p.add_argument("--out-root", type=Path, default=Path("benchmarks/results"), help="where the runs live")
    p.add_argument("--docs", type=Path, default=Path("docs/benchmarks.md"), help="the page to (re)generate")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the environments as Ray Tune trials: on a local Ray instance, or on the cluster at "
                        "ADDRESS (auto or HOST:PORT); needs softac[ray]")
    p.add_argument("--cpus-per-trial", type=int, default=1, help="with --ray: cores each trial keeps to")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="with --ray: GPUs (or a fraction) per trial")
    p.add_argument("--seeds-per-trial", type=int, default=None,
                   help="with --ray: seeds trained together in one trial (default: all of an environment's)")
    p.add_argument("--max-failures", type=int, default=3, help="with --ray: restarts of a trial whose worker died")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("sweep", help="a grid of config values x seeds as Ray Tune trials (local or on a cluster)",
                       description="Every combination of the --grid values is a grid point; each grid point and group "
                                   "of --seeds-per-trial seeds is one Ray Tune trial writing ordinary run directories "
                                   "under OUT/runs. At the end: a table per grid point (OUT/sweep.csv) and its "
                                   "curves (OUT/sweep.png). Needs softac[ray].")
    p.add_argument("--grid", action="append", metavar="FIELD=V1,V2,...",
                   help="a config field and the values to try (repeat for more fields; a tuple field's values are "
                        "separated by '/', e.g. hidden-sizes=64,64/256,256)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from a named set of hyperparameters")
    _add_preset_file_flag(p)
    p.add_argument("--seeds-per-trial", type=int, default=None,
                   help="seeds trained together (vmapped) in one trial (default: all of a grid point's)")
    p.add_argument("--scheduler", choices=["fifo", "asha", "median"], default=None,
                   help="fifo (default): run every trial to the end; asha, or median (the median stopping rule): stop "
                        "weak trials early on evaluation return")
    _add_ray_flags(p)
    p.add_argument("--out", type=Path, default=None, help="the new sweep directory (default sweeps/<env>__<time>)")
    p.add_argument("--resume", type=Path, default=None, metavar="SWEEP_DIR",
                   help="continue an interrupted sweep: finished trials are not rerun")
    add_config_flags(p, algo)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("tune", help="an Optuna study (TPE) of hyperparameters, its trials on Ray Tune (local or on "
                                    "a cluster)",
                       description="Each trial trains the config with the values the sampler suggests for the search "
                                   "space (the algorithm's default space, or --space FILE.toml) and writes ordinary "
                                   "run directories under OUT/runs; the study is the SQLite database OUT/study.db "
                                   "(optuna-dashboard sqlite:///OUT/study.db opens it). At the end: the best trials "
                                   "(OUT/trials.csv), the best config as a preset file (OUT/best.toml, for softac "
                                   "train --preset-file), the parameters' importances and the optimisation history "
                                   "(OUT/history.png). Needs softac[ray]. See docs/sweeps.md.")
    p.add_argument("--trials", type=int, default=None, help="trials of the study (default 20)")
    p.add_argument("--space", type=Path, default=None, metavar="FILE.toml",
                   help="the search space: a table per field with log, uniform or int = [low, high], or choice = "
                        "[...]; extends = \"default\" adds to the algorithm's default space (docs/sweeps.md)")
    p.add_argument("--sampler", choices=["tpe", "random"], default=None,
                   help="tpe (default): Optuna's multivariate TPE; random: random search")
    p.add_argument("--sampler-seed", type=int, default=None, help="seed of the sampler (default: --seed)")
    p.add_argument("--startup-trials", type=int, default=None,
                   help="random trials before TPE models the results (default 10, Optuna's)")
    p.add_argument("--pruner", choices=["asha", "median", "none"], default=None,
                   help="stop weak trials on their evaluations: asha (default), the median stopping rule, or none")
    p.add_argument("--objective", choices=["final", "auc"], default=None,
                   help="final (default): the mean over a trial's seeds of its final evaluation; auc: of the mean of "
                        "all its evaluations (area under the evaluation curve)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from a named set of hyperparameters")
    _add_preset_file_flag(p)
    p.add_argument("--seeds-per-trial", type=int, default=None,
                   help="seeds each trial trains together (vmapped): --seed, --seed + 1, ... (default 1)")
    _add_ray_flags(p)
    p.add_argument("--out", type=Path, default=None, help="the new study directory (default tunes/<env>__<time>)")
    p.add_argument("--resume", type=Path, default=None, metavar="STUDY_DIR",
                   help="continue an interrupted study: ended trials are kept, unfinished ones continue")
    add_config_flags(p, algo)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("tabular", help="exact soft policy iteration on a finite MDP")
    p.add_argument("--mdp", default="frozenlake", choices=["frozenlake", "cliffwalking", "taxi", "random"])
    p.add_argument("--alpha", type=float, default=0.1)
    p.add_argument("--gamma", type=float, default=0.95)
    p.add_argument("--seed", type=int, default=0, help="seed of the random MDP")
    p.add_argument("--plot", type=Path, default=None, help="write a PNG of the iterations here")
    p.set_defaults(func=cmd_tabular)
    return parser


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside the training loop (which handles it itself, with a checkpoint)."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def _os_error_sentence(exc: OSError) -> str:
    if exc.filename:
        return f"Could not use {exc.filename} ({exc.strerror or exc})."
    return f"An operating-system error stopped softac ({exc.strerror or exc})."


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_algo_from_argv(argv)).parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        return args.func(args)
    except SoftacError as exc:
        print(f"softac: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # what the filesystem says (permissions, a full disk, ...), as one sentence
        print(f"softac: error: {_os_error_sentence(exc)}", file=sys.stderr)
        return 2
    except TrainingInterrupted as exc:
        print(f"softac: {exc}", file=sys.stderr, flush=True)
        return exc.exit_status
    except TrialsInterrupted as exc:
        print(f"softac: {exc}", file=sys.stderr, flush=True)
        return 130
    except _Terminated:
        print("softac: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("softac: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
