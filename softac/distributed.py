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

from softac.config import SACConfig
from softac.errors import SoftacError

SCHEDULERS = ("fifo", "asha")
ATTEMPTS_NAME = "attempts.jsonl"  # one line per start of a trial's function: trial, pid, host, start step
TUNE_DIR_NAME = "tune"  # Ray Tune's experiment state, inside the experiment directory


@dataclass(frozen=True)
class RayOptions:
    """Where and how trials run."""

    address: Optional[str] = None  # None: a local Ray instance sized to this machine; "auto" or HOST:PORT
    cpus_per_trial: int = 1
    gpus_per_trial: float = 0.0
    scheduler: str = "fifo"  # "asha": stop weak trials early on evaluation return
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
        return  # Ray looks up a cluster started on this machine; ray.init says if there is none (see _start_ray)
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise SoftacError(f"--ray-address must be auto or HOST:PORT, got {address!r}.")
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            pass
    except OSError as exc:
        raise SoftacError(f"No Ray cluster answers at {address} ({exc.strerror or exc}); {how}.") from None


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
    dirs = named_run_dirs(cfg)
    steps = [checkpoint_step(d) for d in dirs]
    start_step = min(steps) if all(s is not None for s in steps) else 0
    _append_line(Path(spec["experiment_dir"]) / ATTEMPTS_NAME,
                 {"trial": spec["name"], "pid": os.getpid(), "host": socket.gethostname(), "cpus": list(cpus),
                  "start_step": start_step, "time": time.time()})

    class ReportToTune(Callback):
        reported = False

        def on_evaluation(self, event):
            seed_means = event.returns.mean(axis=1)
            tune.report({"env_step": event.step, "eval_return": float(seed_means.mean()),
                         "eval_return_std": float(seed_means.std()), "seed_returns": seed_means.tolist(),
                         "wall_time": event.wall_time})
            ReportToTune.reported = True

    train_or_resume(cfg, callbacks=[ReportToTune()])
    if not ReportToTune.reported:  # finished before this start (a restored experiment): report its last evaluation
        evals = [[r for r in read_metrics(d) if r["eval_return_mean"] is not None] for d in dirs]
        seed_means = [rows[-1]["eval_return_mean"] for rows in evals]
        tune.report({"env_step": int(min(rows[-1]["env_step"] for rows in evals)),
                     "eval_return": float(sum(seed_means) / len(seed_means)), "eval_return_std": 0.0,
                     "seed_returns": seed_means, "wall_time": max(rows[-1]["wall_time"] for rows in evals)})


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
    if options.address is None:
        kwargs["num_cpus"] = len(os.sched_getaffinity(0))
    else:
        kwargs["address"] = options.address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError) as exc:
        reason = str(exc).splitlines()[0].split(". ")[0].rstrip(".")
        raise SoftacError(f"Cannot connect to a Ray cluster at {options.address} ({reason}); start one with "
                          "`ray start --head`, or leave out --ray-address.") from None
    logging.getLogger("ray").setLevel(logging.CRITICAL)  # ray.init set it again
    if options.address is not None:
        _check_cluster_fits(ray, options)
    return ray


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
               resume: bool = False) -> tuple[list[TrialOutcome], bool]:
    """Run `trials` as Ray Tune trials with their state in `experiment_dir`/tune; returns each trial's
    outcome and whether the experiment was interrupted (Ctrl-C: continue it with resume=True)."""
    experiment_dir = Path(experiment_dir).resolve()
    ray = start_ray(options)
    from ray import tune

    from softac.tune_progress import OUTCOMES_NAME, Progress, read_outcomes

    outcomes_path = experiment_dir / OUTCOMES_NAME
    trainable = tune.with_resources(_trial_main, {"cpu": options.cpus_per_trial, "gpu": options.gpus_per_trial})
    tune_dir = experiment_dir / TUNE_DIR_NAME
    try:
        if resume and tune.Tuner.can_restore(str(tune_dir)):
            tuner = tune.Tuner.restore(str(tune_dir), trainable=trainable, resume_unfinished=True, resume_errored=True)
        else:
            param_space = {"trial": tune.grid_search([
                {"name": t.name, "config": t.config.to_dict(), "experiment_dir": str(experiment_dir),
                 "cpus": options.cpus_per_trial, "gpus": options.gpus_per_trial} for t in trials])}
            tuner = tune.Tuner(
                trainable, param_space=param_space,
                tune_config=tune.TuneConfig(scheduler=_scheduler(trials, options), reuse_actors=False,
                                            trial_name_creator=lambda t: t.config["trial"]["name"],
                                            trial_dirname_creator=lambda t: t.config["trial"]["name"]),
                run_config=tune.RunConfig(name=TUNE_DIR_NAME, storage_path=str(experiment_dir), verbose=0,
                                          failure_config=tune.FailureConfig(max_failures=options.max_failures),
                                          callbacks=[Progress({t.name: t.label for t in trials}, str(outcomes_path))]))
        tuner.fit()  # a restored experiment keeps its saved run config, the Progress callback included
    finally:
        ray.shutdown()
    outcomes = read_outcomes(outcomes_path)
    result = []
    for t in trials:
        status, last, error = outcomes.get(t.name, ("PENDING", None, ""))
        total = t.config.total_steps
        if status == "TERMINATED":
            text = "finished" if last is not None and last >= total else "stopped early"
        elif status == "ERROR":
            text = f"failed: {error}"
        else:
            text = "not finished"
        result.append(TrialOutcome(t.name, text, last))
    interrupted = any(o.status == "not finished" for o in result)
    return result, interrupted


def asha_settings(trials: Sequence[Trial], options: RayOptions) -> dict:
    """Keyword arguments of Tune's ASHAScheduler for these trials: rungs in env steps at grace * factor^k
    (default grace: the longest trial's total_steps / 9), on the mean evaluation return over a trial's seeds."""
    total = max(t.config.total_steps for t in trials)
    return dict(time_attr="env_step", metric="eval_return", mode="max", max_t=total,
                grace_period=options.asha_grace_steps or max(1, total // 9),
                reduction_factor=options.asha_reduction_factor)


def _scheduler(trials: Sequence[Trial], options: RayOptions):
    if options.scheduler == "fifo":
        return None
    from ray.tune.schedulers import ASHAScheduler

    return ASHAScheduler(**asha_settings(trials, options))
