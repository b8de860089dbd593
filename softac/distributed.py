"""softac runs as Ray Tune trials: one machine or a cluster, restarted when a worker is lost.

A trial is one named softac run config (a grid point of a sweep, or an environment of a benchmark
suite) with its group of seeds, trained together on the vmapped seeds axis as `softac train --seeds`
does. Ray Tune schedules the trials, restarts a trial whose worker died (`max_failures`), stops weak
ones early (ASHA, optional) and restores an interrupted experiment. softac itself keeps the results:
every trial writes ordinary run directories (config.json, metrics.csv, checkpoints) and goes through
`softac.train.train_or_resume`, so a restarted trial continues from its last softac checkpoint (exact
resume: its final evaluation equals an uninterrupted run's) and a finished one is never trained again.

JAX under Ray, three traps and how each is handled here:
- Forking a process in which JAX is running can deadlock. The driver never runs anything in JAX
  before or while Ray runs (importing softac imports JAX but starts no XLA client and no threads),
  and Ray starts its workers as fresh processes (spawned by the raylet, not forked from the driver).
- XLA's CPU client sizes its thread pool to every core it may run on, so trials sharing a node would
  each use all of its cores. `keep_to_cpus` runs first in every trial, before its first JAX computation:
  it takes `cpus_per_trial` cores of the node that no other softac trial holds (one fcntl lock file
  per core, released by the kernel when the worker exits, even on kill -9), pins every thread of the
  worker to them with sched_setaffinity, and sets OMP/MKL/OpenBLAS thread counts to match, before
  the trial's first JAX computation; XLA then creates its pool for those cores only. `benchmarks/ray_overhead.py` measures the effect.
- JAX preallocates 75% of a GPU's memory. A trial with a fraction of a GPU turns preallocation off
  (XLA_PYTHON_CLIENT_PREALLOCATE=false) and caps its allocator at that fraction
  (XLA_PYTHON_CLIENT_MEM_FRACTION); a trial without a GPU runs JAX on the CPU (jax_platforms=cpu).
These settings act when JAX's backend starts, at the trial's first computation, so they are set first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from softac.config import SACConfig
from softac.errors import SoftacError, TrialsInterrupted
from softac.suggestion import suggested_config, trial_key

SCHEDULERS = ("fifo", "asha", "median")
ATTEMPTS_NAME = "attempts.jsonl"  # one line per start of a trial's function: trial, pid, host, start step
TUNE_DIR_NAME = "tune"  # Ray Tune's experiment state, inside the experiment directory


@dataclass(frozen=True)
class RayOptions:
    """Where and how trials run."""

    address: Optional[str] = None  # None: a local Ray instance sized to this machine; "auto" or HOST:PORT
    cpus_per_trial: int = 1
    gpus_per_trial: float = 0.0
    scheduler: str = "fifo"  # "asha" or "median": stop weak trials early on evaluation return
    asha_grace_steps: Optional[int] = None  # env steps before ASHA may stop a trial (default: total_steps / 9)
    asha_reduction_factor: int = 3  # ASHA keeps the best 1/factor of trials at each rung
    max_failures: int = 3  # restarts of a trial whose worker died, each from its last checkpoint

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Trial:
    """One Ray Tune trial: a named run config (run_root and run_name set) and its group of seeds."""

    name: str  # unique and file-safe: Tune's trial directory
    label: str  # what it runs, for progress lines and tables
    config: SACConfig


@dataclass(frozen=True)
class TrialOutcome:
    name: str
    status: str  # "finished", "stopped early" (ASHA), "failed: <error>", "not finished" (interrupted)
    last_step: Optional[int]


def read_description(out: str | Path, name: str, version: int, kind: str, parse):
    """`parse(data)` of the JSON description `out`/`name` of a sweep or study (what `--resume` reads); one
    sentence if the directory is not one of `kind` or the file is unreadable."""
    path = Path(out) / name
    if not path.is_file():
        raise SoftacError(f"{out} is not a {kind} directory ({name} is missing).")
    try:
        data = json.loads(path.read_text())
        if data.get("version") != version:
            raise ValueError(f"unknown version {data.get('version')!r}")
        return parse(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise SoftacError(f"The {kind} description {path} is unreadable ({exc}).") from None


def new_experiment_dir(out: Path, kind: str, command: str) -> None:
    """SoftacError unless `out` can be a new sweep or study directory (absent, or an empty directory): an
    existing one is never reused, and the sentence gives the command that continues it."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SoftacError(f"{out} already exists and is not empty; choose another --out, or continue that {kind} "
                          f"with softac {command} --resume {out}.")


def write_description(out: Path, name: str, text: str, kind: str) -> None:
    """Create the experiment directory `out` with its description file; one sentence if the OS refuses."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    except OSError as exc:
        raise SoftacError(f"Cannot create the {kind} directory {out}: {exc.strerror or exc}.") from None


def seed_groups(seeds: Sequence[int], size: Optional[int]) -> list[tuple[int, ...]]:
    """`seeds` in consecutive groups of `size` (the last may be smaller; None: one group), one per trial."""
    size = size or len(seeds)
    return [tuple(seeds[i:i + size]) for i in range(0, len(seeds), size)]


# ------------------------------------------------------------------------------------- checks
def check_options(options: RayOptions) -> None:
    """One sentence (SoftacError) for an option that cannot work, before Ray starts."""
    if not isinstance(options.cpus_per_trial, int) or options.cpus_per_trial < 1:
        raise SoftacError(f"--cpus-per-trial must be a positive integer, got {options.cpus_per_trial!r}.")
    if not (options.gpus_per_trial >= 0):
        raise SoftacError(f"--gpus-per-trial must be 0 or more, got {options.gpus_per_trial!r}.")
    if options.gpus_per_trial > 1 and options.gpus_per_trial != int(options.gpus_per_trial):
        raise SoftacError(f"--gpus-per-trial above 1 must be a whole number of GPUs, got {options.gpus_per_trial!r}.")
    if options.scheduler not in SCHEDULERS:
        raise SoftacError(f"--scheduler must be one of {', '.join(SCHEDULERS)}, got {options.scheduler!r}.")
    if options.asha_grace_steps is not None and options.asha_grace_steps < 1:
        raise SoftacError(f"--asha-grace-steps must be positive, got {options.asha_grace_steps!r}.")
    if options.asha_reduction_factor < 2:
        raise SoftacError(f"--asha-reduction-factor must be 2 or more, got {options.asha_reduction_factor!r}.")
    if options.max_failures < 0:
        raise SoftacError(f"--max-failures must be 0 or more, got {options.max_failures!r}.")
    if options.address is None:  # the local instance: this machine's cores and GPUs
        cores = len(os.sched_getaffinity(0))
        if options.cpus_per_trial > cores:
            raise SoftacError(f"--cpus-per-trial {options.cpus_per_trial} is more than this machine's {cores} "
                              "cores; give at most that, or join a cluster with --ray-address.")
        gpus = local_gpu_count()
        if options.gpus_per_trial > gpus:
            raise SoftacError(f"--gpus-per-trial {options.gpus_per_trial:g} is more than this machine's {gpus} "
                              "GPUs; give at most that, or join a cluster with --ray-address.")
    else:
        check_reachable(options.address)
    ray_module()


def ray_module():
    """The `ray` module, or one sentence saying how to install it."""
    try:
        import ray
        import ray.tune  # noqa: F401
    except ImportError:
        raise SoftacError('Ray is not installed; install the extra with: pip install "softac[ray]".') from None
    return ray


def local_gpu_count() -> int:
    """GPUs this machine shows to CUDA (nvidia-smi), honouring CUDA_VISIBLE_DEVICES; 0 without them."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def check_reachable(address: str) -> None:
    """SoftacError unless `address` ("auto", HOST:PORT or ray://HOST:PORT) can be reached."""
    how = ("start one with `ray start --head` on its head node (and `ray start --address=HEAD:6379` on each "
           "worker), or leave out --ray-address to run on a local Ray instance")
    if address == "auto":
        # Ray looks up the cluster last started on this machine (RAY_ADDRESS, or the address file `ray start`
        # writes); one that no longer answers would cost Ray's connection retries, minutes: checked here first.
        # Without either, ray.init says at once that there is none (see start_ray).
        found = os.environ.get("RAY_ADDRESS") or _address_file_entry()
        if found:
            host, _, port = found.removeprefix("ray://").rpartition(":")
            try:
                with socket.create_connection((host, int(port)), timeout=3):
                    return
            except (OSError, ValueError) as exc:
                raise SoftacError(f"--ray-address auto found the cluster {found} (the last one started on this "
                                  f"machine), and it does not answer ({getattr(exc, 'strerror', None) or exc}); "
                                  f"{how}.") from None
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise SoftacError(f"--ray-address must be auto or HOST:PORT, got {address!r}.")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            pass
    except OSError as exc:
        raise SoftacError(f"No Ray cluster answers at {address} ({exc.strerror or exc}); {how}.") from None


def _address_file_entry() -> Optional[str]:
    """The address in the file where `ray start` records the cluster it started on this machine, if any."""
    try:
        return (Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster").read_text().strip() or None
    except OSError:
        return None


# ------------------------------------------------------------------------------ inside a trial
_HELD_CPU_LOCKS: list = []  # open lock files of the cores this process holds (kept for its lifetime)


def keep_to_cpus(count: int, lock_dir: Optional[Path] = None) -> tuple[int, ...]:
    """Pin this process (every thread) to `count` cores that no other softac trial on this node holds.

    Cores are claimed with one non-blocking fcntl lock per core in a node-local directory; the kernel
    releases a lock when its process exits, however it exits. If fewer than `count` cores are free
    (more trials than cores, or cores shared with other work), the first `count` allowed cores are used.
    Call it before the process's first JAX computation: XLA sizes its CPU thread pool to the cores the
    process may use when its CPU client starts.
    """
    allowed = sorted(os.sched_getaffinity(0))
    lock_dir = lock_dir or Path(tempfile.gettempdir()) / f"softac-cpu-locks-{os.getuid()}"
    lock_dir.mkdir(parents=True, exist_ok=True)
    held = []
    for cpu in allowed:
        if len(held) == count:
            break
        handle = open(lock_dir / f"cpu{cpu}.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        held.append((cpu, handle))
    if len(held) < count:
        for _, handle in held:
            handle.close()
        held, cpus = [], allowed[:count]
    else:
        cpus = [cpu for cpu, _ in held]
    _HELD_CPU_LOCKS.extend(handle for _, handle in held)
    for tid in os.listdir("/proc/self/task"):  # sched_setaffinity(0) pins only the calling thread
        try:
            os.sched_setaffinity(int(tid), cpus)
        except OSError:
            pass
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(len(cpus))
    return tuple(cpus)


def set_gpu_memory_env(gpus_per_trial: float) -> None:
    """JAX's device settings for a trial with `gpus_per_trial` GPUs (before its first JAX computation)."""
    if gpus_per_trial <= 0:
        import jax

        jax.config.update("jax_platforms", "cpu")  # the environment variable is read when JAX is imported
    elif gpus_per_trial < 1:
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.95 * gpus_per_trial:.3f}"


def _trial_main(config: dict) -> None:
    """The function Ray Tune runs for one trial (in a Ray worker process, in a non-main thread)."""
    spec = config["trial"]
    cpus = keep_to_cpus(spec["cpus"])
    set_gpu_memory_env(spec["gpus"])
    from ray import tune

    from softac.callbacks import Callback
    from softac.checkpoint import checkpoint_step
    from softac.logger import read_metrics
    from softac.rundir import named_run_dirs
    from softac.train import train_or_resume  # JAX's CPU client starts after the pinning

    cfg = SACConfig.from_dict(spec["config"])
    search = config.get("search")
    if search is not None:  # a study trial: the base config with the searcher's suggestion
        cfg = suggested_config(cfg, search["number"], search["changes"])
    dirs = named_run_dirs(cfg)
    steps = [checkpoint_step(d) for d in dirs]
    start_step = min(steps) if all(s is not None for s in steps) else 0
    # The evaluations before this start (a restarted trial), for the area under the evaluation curve.
    earlier = _evaluations_until(dirs, start_step)
    _append_line(Path(spec["experiment_dir"]) / ATTEMPTS_NAME,
                 {"trial": trial_key(config), "pid": os.getpid(), "host": socket.gethostname(), "cpus": list(cpus),
                  "start_step": start_step, "time": time.time()})

    class ReportToTune(Callback):
        """One Tune result per evaluation: its mean over the trial's seeds, their spread, and eval_return_auc,
        the mean of every evaluation so far (the area under the evaluation curve per env step, for evaluations
        at a fixed interval): `softac tune --objective auc` optimises it."""

        reported = False
        history = list(earlier)

        def on_evaluation(self, event):
            seed_means = event.returns.mean(axis=1)
            ReportToTune.history.append(float(seed_means.mean()))
            tune.report({"env_step": event.step, "eval_return": float(seed_means.mean()),
                         "eval_return_std": float(seed_means.std()), "seed_returns": seed_means.tolist(),
                         "eval_return_auc": float(np.mean(ReportToTune.history)), "wall_time": event.wall_time})
            ReportToTune.reported = True

    train_or_resume(cfg, callbacks=[ReportToTune()])
    if not ReportToTune.reported:  # finished before this start (a restored experiment): report its last evaluation
        evals = [[r for r in read_metrics(d) if r["eval_return_mean"] is not None] for d in dirs]
        seed_means = [rows[-1]["eval_return_mean"] for rows in evals]
        tune.report({"env_step": int(min(rows[-1]["env_step"] for rows in evals)),
                     "eval_return": float(sum(seed_means) / len(seed_means)), "eval_return_std": 0.0,
                     "seed_returns": seed_means, "eval_return_auc": float(np.mean(earlier)) if earlier else 0.0,
                     "wall_time": max(rows[-1]["wall_time"] for rows in evals)})


def _evaluations_until(dirs: Sequence[Path], step: int) -> list[float]:
    """The mean over seeds of every evaluation up to env step `step` in these run directories (none before a
    first start)."""
    from softac.logger import read_metrics

    if step <= 0:
        return []
    per_seed = []
    for d in dirs:
        try:
            per_seed.append({int(r["env_step"]): r["eval_return_mean"] for r in read_metrics(d)
                             if r["eval_return_mean"] is not None and int(r["env_step"]) <= step})
        except (FileNotFoundError, OSError):
            return []
    common = sorted(set.intersection(*(set(p) for p in per_seed))) if per_seed else []
    return [float(np.mean([p[k] for p in per_seed])) for k in common]


def _append_line(path: Path, record: dict) -> None:
    with open(path, "a") as f:  # one short O_APPEND write per line: lines of concurrent trials do not interleave
        f.write(json.dumps(record) + "\n")


def read_attempts(experiment_dir: str | Path) -> list[dict]:
    """Every start of a trial function so far (trial, pid, host, cpus, start_step, time), oldest first."""
    path = Path(experiment_dir) / ATTEMPTS_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------- driver
def start_ray(options: RayOptions):
    """Start a local Ray instance or join the cluster of `options.address` (nothing if Ray already runs);
    one sentence if the cluster cannot be reached or its largest node is smaller than a trial."""
    ray = ray_module()
    import logging

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    logging.getLogger("ray").setLevel(logging.CRITICAL)  # Ray's notices and tracebacks: Progress prints one line each
    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    if options.address is None:  # "local": a new instance, even where `ray start` runs a cluster on this machine
        kwargs.update(address="local", num_cpus=len(os.sched_getaffinity(0)))
    else:
        kwargs["address"] = options.address
    if options.address is None:
        ray.init(**kwargs)
    else:
        # Ray's GCS client logs a line to the process's stderr (C++, not Python's logging) for every retry of a
        # refused connection: held back, and read for the reason a cluster refused us.
        with _stderr_held_back() as held:
            try:
                ray.init(**kwargs)
                failure = None
            except (ConnectionError, RuntimeError) as exc:
                failure = str(exc).splitlines()[0].split(". ")[0].rstrip(".")
        if failure is not None:
            if "InvalidAuthToken" in held.captured or "Unauthenticated" in held.captured:
                raise SoftacError(
                    f"The Ray cluster at {options.address} refused the authentication token (it runs with token "
                    "authentication, and softac had no token or a wrong one); set RAY_AUTH_MODE=token for softac "
                    "too, with the cluster's token in RAY_AUTH_TOKEN or in ~/.ray/auth_token (the head node's "
                    "file), and try again.") from None
            raise SoftacError(f"Cannot connect to a Ray cluster at {options.address} ({failure}); start one with "
                              "`ray start --head`, or leave out --ray-address.") from None
    logging.getLogger("ray").setLevel(logging.CRITICAL)  # ray.init set it again
    if options.address is not None:
        _check_cluster_fits(ray, options)
    return ray


class _HeldStderr:
    captured: str = ""  # what was written to file descriptor 2, once the block has ended


@contextlib.contextmanager
def _stderr_held_back():
    """File descriptor 2 redirected to a temporary file while the block runs (what native code writes to it
    included); yields an object whose `captured` holds it afterwards."""
    import sys

    sys.stderr.flush()
    held = _HeldStderr()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            yield held
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            f.seek(0)
            held.captured = f.read().decode(errors="replace")


def _check_cluster_fits(ray, options: RayOptions) -> None:
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    most_cpus = max((r.get("CPU", 0) for r in nodes), default=0)
    most_gpus = max((r.get("GPU", 0) for r in nodes), default=0)
    if options.cpus_per_trial > most_cpus or options.gpus_per_trial > most_gpus:
        ray.shutdown()
        raise SoftacError(f"A trial needs {options.cpus_per_trial} CPUs and {options.gpus_per_trial:g} GPUs on one "
                          f"node, and the largest node of the cluster at {options.address} has {most_cpus:g} CPUs "
                          f"and {most_gpus:g} GPUs.")


def run_trials(trials: Sequence[Trial], experiment_dir: str | Path, options: RayOptions,
               resume: bool = False, resume_command: str = "the same command again") -> tuple[list[TrialOutcome], bool]:
    """Run `trials` as Ray Tune trials with their state in `experiment_dir`/tune; returns each trial's
    outcome and whether the experiment was interrupted (Ctrl-C: continue it with resume=True)."""
    experiment_dir = Path(experiment_dir).resolve()

    def new_tuner(tune, trainable, run_config):
        param_space = {"trial": tune.grid_search([_trial_spec(t.name, t.config, experiment_dir, options)
                                                  for t in trials])}
        return tune.Tuner(trainable, param_space=param_space, run_config=run_config,
                          tune_config=tune.TuneConfig(scheduler=_scheduler(trials, options), reuse_actors=False,
                                                      trial_name_creator=_trial_name, trial_dirname_creator=_trial_name))

    _fit(new_tuner, experiment_dir, options, {t.name: t.label for t in trials}, resume,
         resume_command=resume_command)
    from softac.tune_progress import read_outcomes

    outcomes = read_outcomes(experiment_dir / OUTCOMES_NAME)
    result = []
    for t in trials:
        status, last, error = outcomes.get(t.name, ("PENDING", None, ""))
        result.append(TrialOutcome(t.name, outcome_text(status, last, error, t.config.total_steps), last))
    interrupted = any(o.status == "not finished" for o in result)
    return result, interrupted


def run_search(base: SACConfig, searcher: Any, num_samples: int, experiment_dir: str | Path, options: RayOptions,
               metric: str, resume: bool = False, resume_command: str = "the same command with --resume"
               ) -> dict[str, list]:
    """Run `num_samples` trials whose configs `searcher` (a Ray Tune searcher, such as the Optuna study of
    `softac.optimize`) suggests for `base`, at most as many at once as the cluster has room for (a searcher
    learns from the trials that ended before it suggests the next). The scheduler of `options` stops weak
    trials on `metric`. Returns every trial that ended so far (name -> [status, last env step, error])."""
    experiment_dir = Path(experiment_dir).resolve()

    def new_tuner(tune, trainable, run_config):
        import ray

        room = max(1, int(ray.cluster_resources().get("CPU", 1) // options.cpus_per_trial))
        return tune.Tuner(
            trainable, param_space={"trial": _trial_spec("study", base, experiment_dir, options)}, run_config=run_config,
            tune_config=tune.TuneConfig(search_alg=searcher, num_samples=num_samples, max_concurrent_trials=room,
                                        scheduler=scheduler_for(options, base.total_steps, metric), reuse_actors=False,
                                        trial_name_creator=_trial_name, trial_dirname_creator=_trial_name))

    _fit(new_tuner, experiment_dir, options, {}, resume, total=num_samples, resume_command=resume_command)
    from softac.tune_progress import read_outcomes

    return read_outcomes(experiment_dir / OUTCOMES_NAME)


OUTCOMES_NAME = "outcomes.json"  # trial name -> [Tune status, last env step, last error line] of each ended trial


def outcome_text(status: str, last: Optional[int], error: str, total_steps: int) -> str:
    """"finished", "stopped early" (by the scheduler), "failed: <error>" or "not finished" (interrupted)."""
    if status == "TERMINATED":
        return "finished" if last is not None and last >= total_steps else "stopped early"
    if status == "ERROR":
        return f"failed: {error}"
    return "not finished"


def _trial_spec(name: str, cfg: SACConfig, experiment_dir: Path, options: RayOptions) -> dict:
    return {"name": name, "config": cfg.to_dict(), "experiment_dir": str(experiment_dir),
            "cpus": options.cpus_per_trial, "gpus": options.gpus_per_trial}


def _trial_name(trial) -> str:
    return trial_key(trial.config)


def _fit(new_tuner, experiment_dir: Path, options: RayOptions, labels: dict[str, str], resume: bool,
         total: Optional[int] = None, resume_command: str = "the same command with --resume") -> None:
    """Start Ray, then restore the experiment in `experiment_dir`/tune (resume) or make it with `new_tuner(tune,
    trainable, run_config)`, and run it to its end or to an interruption.

    A local Ray instance that loses its node (`NodeWatch`) is started again and the experiment restored, its
    trials continuing from their last checkpoints, up to LOCAL_RESTARTS times; on a cluster, or after that,
    one sentence (TrialsInterrupted) says how to continue."""
    from softac.tune_progress import NodeLost

    restarts = 0
    while True:
        ray = start_ray(options)
        try:
            _fit_once(new_tuner, experiment_dir, options, labels, resume, total)
            return
        except NodeLost as exc:
            tune_dir = experiment_dir / TUNE_DIR_NAME
            ray.shutdown()
            from ray import tune

            if options.address is not None or restarts >= LOCAL_RESTARTS or not tune.Tuner.can_restore(str(tune_dir)):
                raise TrialsInterrupted(f"The trials stopped because {exc}; continue them from their last "
                                        f"checkpoints with: {resume_command}") from None
            restarts += 1
            print(f"{exc}: starting a local Ray instance again ({restarts} of {LOCAL_RESTARTS}); the trials continue "
                  "from their last checkpoints", flush=True)
            resume = True
        finally:
            ray.shutdown()


LOCAL_RESTARTS = 3  # times a local Ray instance that lost its node is started again within one command


def _fit_once(new_tuner, experiment_dir: Path, options: RayOptions, labels: dict[str, str], resume: bool,
              total: Optional[int]) -> None:
    from ray import tune

    from softac.tune_progress import NodeWatch, Progress

    trainable = tune.with_resources(_trial_main, {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial})
    tune_dir = experiment_dir / TUNE_DIR_NAME
    if resume and tune.Tuner.can_restore(str(tune_dir)):
        tuner = tune.Tuner.restore(str(tune_dir), trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        run_config = tune.RunConfig(name=TUNE_DIR_NAME, storage_path=str(experiment_dir), verbose=0,
                                    failure_config=tune.FailureConfig(max_failures=options.max_failures),
                                    callbacks=[Progress(labels, str(experiment_dir / OUTCOMES_NAME), total),
                                               NodeWatch()])
        tuner = new_tuner(tune, trainable, run_config)
    tuner.fit()  # a restored experiment keeps its saved run config, the callbacks included


def asha_settings(trials: Sequence[Trial], options: RayOptions, metric: str = "eval_return") -> dict:
    """Keyword arguments of Tune's ASHAScheduler for these trials: rungs in env steps at grace * factor^k
    (default grace: the longest trial's total_steps / 9), on the mean evaluation return over a trial's seeds."""
    return _asha_settings(max(t.config.total_steps for t in trials), options, metric)


def _asha_settings(max_t: int, options: RayOptions, metric: str) -> dict:
    return dict(time_attr="env_step", metric=metric, mode="max", max_t=max_t,
                grace_period=options.asha_grace_steps or max(1, max_t // 9),
                reduction_factor=options.asha_reduction_factor)


def scheduler_for(options: RayOptions, max_t: int, metric: str = "eval_return"):
    """Tune's scheduler of `options.scheduler` on `metric` (None for fifo): ASHA (asynchronous successive halving,
    Li et al. 2020), or the median stopping rule (Golovin et al. 2017: stop a trial whose best result so far is
    below the median of the other trials' running averages at the same env step, after the grace steps)."""
    if options.scheduler == "fifo":
        return None
    if options.scheduler == "median":
        from ray.tune.schedulers import MedianStoppingRule

        return MedianStoppingRule(time_attr="env_step", metric=metric, mode="max",
                                  grace_period=options.asha_grace_steps or max(1, max_t // 9), min_samples_required=3)
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(**_asha_settings(max_t, options, metric))


def _scheduler(trials: Sequence[Trial], options: RayOptions):
    return scheduler_for(options, max(t.config.total_steps for t in trials))
