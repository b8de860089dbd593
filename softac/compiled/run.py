"""The host side of the compiled loop: run directories, metrics rows, evaluation, checkpoints, resume,
callbacks, SIGINT/SIGTERM and the progress bar, between chunks of compiled env steps.

A chunk runs up to the next step at which the host has something to do (a metrics row every `log_every`
steps, an evaluation every `eval_every`, a checkpoint every `checkpoint_every`, the end); the host then
does what the Gymnasium loop does at that step (softac.train.Trainer._after_step), so the run directory
is the same: config.json, metrics.csv with the same columns, TensorBoard events, checkpoint/ (the same
checkpoint format: agent and policy msgpack, replay.npz as `ReplayBuffer.state_dict`, and the loop state:
step, updates, keys, observation, counters and the environment state's leaves), and `softac eval`,
`softac plot` and `softac train --resume` work on it. A stop request (signal or callback) takes effect
at the end of the running chunk.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from softac.algos.registry import get_spec, make_agent, resolve_algo
from softac.callbacks import Callback
from softac.checkpoint import load_checkpoint, save_checkpoint
from softac.compiled import replay
from softac.compiled.envs import JaxEnv, make_jax_env
from softac.compiled.loop import CompiledTrain, SeedState, TrainState, make_train
from softac.config import SACConfig
from softac.errors import SoftacError
from softac.logger import METRICS_NAME, RunLogger, run_columns, truncate_metrics
from softac.loop_driver import EVAL_SEED_OFFSET
from softac.loop_schedule import ScheduledLoop, nonfinite_error
from softac.replay import check_buffer_fits
from softac.rundir import CONFIG_NAME, create_run_dirs, locked_run_dirs, write_text_atomic

LOOP_KIND = "compiled"  # loop.json's "kind": a checkpoint of the compiled loop


def build(cfg: SACConfig) -> tuple[SACConfig, JaxEnv, object]:
    """(cfg with its algorithm resolved, the environment, the agent); SoftacError on bad input."""
    if cfg.num_envs != 1:
        raise SoftacError(f"{cfg.env} trains one environment per seed (num_envs 1); train several seeds at once with "
                          "--seeds instead.")
    if cfg.video_every:
        raise SoftacError(f"Videos (video_every) are not recorded for {cfg.env}; set --video-every 0.")
    env = make_jax_env(cfg.env, cfg.env_kwargs_dict, cfg.flatten_obs)
    cfg = resolve_algo(cfg, env.spec)
    agent = make_agent(cfg, env.obs_dim, env.spec.dim)
    check_buffer_fits(len(cfg.seed_list), cfg.buffer_size, env.obs_dim, env.spec.stored_dim)
    return cfg, env, agent


def train(cfg: SACConfig, callbacks: Sequence[Callback] = ()) -> list[Path]:
    """Train `cfg` (a gymnax: or brax: env) from scratch with the compiled loop; returns the run directories."""
    cfg, env, agent = build(cfg)  # fails on bad input before any directory exists
    run_dirs = create_run_dirs(cfg)
    with locked_run_dirs(run_dirs):
        program = make_train(cfg, env, agent, get_spec(cfg.algo).metrics)
        state = program.init(cfg.seed_list)
        return Runner(cfg, env, agent, program, state, run_dirs, 0.0, callbacks).run()


def resume_locked(cfg: SACConfig, run_dirs: list[Path], seeds: tuple[int, ...],
                  callbacks: Sequence[Callback]) -> list[Path]:
    """Continue compiled runs from their checkpoints (`softac.train.resume` has checked the configs, taken the
    locks and tidied the directories)."""
    cfg, env, agent = build(cfg)
    program = make_train(cfg, env, agent, get_spec(cfg.algo).metrics)
    template = jax.tree_util.tree_map(lambda x: x[0], program.init([0]).seeds)
    loaded = [load_checkpoint(d, template.agent, agent.policy_fields) for d in run_dirs]  # all read first
    seed_states = [_seed_state(d, template, agent_state, loop) for d, (agent_state, _, loop) in zip(run_dirs, loaded)]
    try:
        buffer = replay.from_state_dicts([buffer_state for _, buffer_state, _ in loaded], cfg.buffer_size,
                                         env.obs_dim, env.spec.stored_dim)
    except (KeyError, TypeError, ValueError) as exc:
        raise SoftacError(f"The replay buffers of {run_dirs[0]} and the other runs do not fit this run "
                          f"({exc}).") from None
    steps = {(int(loop["step"]), int(loop["updates_done"])) for _, _, loop in loaded}
    if len(steps) != 1:
        raise SoftacError("The runs to resume stopped at different steps; resume them separately.")
    step, updates_done = steps.pop()
    if step >= cfg.total_steps:
        raise SoftacError(f"{run_dirs[0]} is already at {step} env steps; pass a larger --total-steps to continue it.")
    for seed, run_dir in zip(seeds, run_dirs):
        if not (run_dir / METRICS_NAME).exists():
            print(f"softac: warning: {run_dir} has no {METRICS_NAME}; a new one starts at env step {step}.")
        try:
            truncate_metrics(run_dir, step)
            write_text_atomic(run_dir / CONFIG_NAME, cfg.replace(seed=seed, seeds=None).to_json())
        except OSError as exc:
            raise SoftacError(f"Cannot write to run directory {run_dir}: {exc.strerror or exc}.") from None
    stacked = jax.tree_util.tree_map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *seed_states)
    state = TrainState(seeds=stacked, buffer=buffer, step=jnp.int32(step), updates_done=jnp.int32(updates_done))
    wall_time = max(float(loop["wall_time"]) for _, _, loop in loaded)
    return Runner(cfg, env, agent, program, state, run_dirs, wall_time, callbacks).run()


def _seed_state(run_dir: Path, template: SeedState, agent_state, loop: dict) -> SeedState:
    """One seed's SeedState from its checkpoint (the template gives the structure, shapes and dtypes)."""
    try:
        if loop.get("kind") != LOOP_KIND:
            raise ValueError("it was written by the Gymnasium loop")
        env_leaves, env_def = jax.tree_util.tree_flatten(template.env_state)
        saved_leaves = list(loop["env_state"])
        if len(saved_leaves) != len(env_leaves):
            raise ValueError("the environment state has another structure")
        env_state = jax.tree_util.tree_unflatten(env_def, [_like(saved, t)
                                                           for saved, t in zip(saved_leaves, env_leaves)])
        fields = {name: _like(loop[name], getattr(template, name))
                  for name in ("obs", "key", "action_key", "episode_return", "episode_length", "episodes",
                               "last_episode_return", "row_return_sum", "row_length_sum", "row_episodes")}
        metrics = {name: _like(loop["metrics"][name], value) for name, value in template.metrics.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise SoftacError(f"The checkpoint in {run_dir} does not fit this compiled run ({exc}).") from None
    # A checkpoint is only written while every env step was finite (softac.loop_schedule.nonfinite_error).
    return SeedState(agent=agent_state, env_state=env_state, metrics=metrics, nonfinite_at=np.int32(-1), **fields)


def _like(value, template) -> np.ndarray:
    """`value` as an array of the template's shape and dtype (ValueError if the shape differs)."""
    array = np.asarray(value)
    if array.shape != np.shape(template):
        raise ValueError(f"an array of shape {array.shape} where {np.shape(template)} was expected")
    return array.astype(np.asarray(template).dtype)


class Runner(ScheduledLoop):
    """Runs a compiled program to cfg.total_steps with the host work of the Gymnasium loop between chunks."""

    def __init__(self, cfg: SACConfig, env: JaxEnv, agent, program: CompiledTrain, state: TrainState,
                 run_dirs: list[Path], wall_time_offset: float, callbacks: Sequence[Callback]):
        self.cfg, self.env, self.agent, self.program, self.state = cfg, env, agent, program, state
        self.run_dir_list, self.seed_list = list(run_dirs), cfg.seed_list
        self.wall_time_offset, self.callbacks = wall_time_offset, tuple(callbacks)
        self.step = int(state.step)
        self.last_eval: list[Optional[float]] = [None] * len(self.seed_list)
        self.last_checkpoint_step: Optional[int] = self.step if self.step > 0 else None
        self._stop_requested = False
        columns = run_columns(get_spec(cfg.algo).metrics)
        self.loggers = [RunLogger(d, cfg.tensorboard, columns) for d in self.run_dir_list]
        self.eval_seeds = jnp.asarray([s + EVAL_SEED_OFFSET for s in self.seed_list], jnp.int32)

    def next_boundary(self) -> int:
        """The next step at which the host logs, evaluates, checkpoints or stops."""
        cfg, step = self.cfg, self.step
        candidates = [cfg.total_steps]
        for every in (cfg.log_every, cfg.eval_every, cfg.checkpoint_every):
            if every:
                candidates.append((step // every + 1) * every)
        return min(candidates)

    # ---- what the loop driver (softac.loop_driver.LoopDriver.run) asks of this loop
    def advance(self) -> None:
        """One chunk: the env steps up to the next step where something is due, inside XLA; then the schedule."""
        target = self.next_boundary()
        self.state, stats = self.program.train_chunk(self.state, jnp.int32(target - self.step))
        self.stats = jax.device_get(stats)
        for seed, run_dir, at in zip(self.seed_list, self.run_dir_list, self.stats["nonfinite_at"]):
            if at >= 0:
                raise nonfinite_error(seed, int(at), self.last_checkpoint_step, run_dir)
        self.step = target
        self._after_step()  # the chunk ends exactly at a multiple of what is due

    def progress_returns(self) -> tuple[Optional[float], Optional[float]]:
        return (_nanmean(self.stats["last_episode_return"]),
                _nanmean([np.nan if e is None else e for e in self.last_eval]))

    def checkpoint_is_current(self) -> bool:
        return self.last_checkpoint_step == self.step

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()

    def seeds(self) -> tuple[int, ...]:
        return tuple(self.seed_list)

    def run_dirs(self) -> tuple[Path, ...]:
        return tuple(self.run_dir_list)

    def last_evals(self) -> list[Optional[float]]:
        return self.last_eval

    def evaluate(self) -> np.ndarray:
        """Deterministic returns [N, eval_episodes] of every seed's current policy (compiled)."""
        returns = np.asarray(jax.device_get(self.program.evaluate(self.state, self.eval_seeds)), np.float64)
        self.last_eval = [float(r.mean()) for r in returns]
        return returns

    def _log(self, eval_returns: Optional[np.ndarray]) -> None:
        now = time.time()
        rate = self._training_rate(now)
        stats, metric_names = self.stats, get_spec(self.cfg.algo).metrics
        rows = []
        for k, (seed, logger) in enumerate(zip(self.seed_list, self.loggers)):
            finished = int(stats["row_episodes"][k])
            row = {"env_step": self.step, "wall_time": self.wall_time_offset + now - self._start,
                   "episodes": int(stats["episodes"][k]),
                   "episode_return": float(stats["row_return_sum"][k]) / finished if finished else None,
                   "episode_length": float(stats["row_length_sum"][k]) / finished if finished else None,
                   "steps_per_second": rate}
            if eval_returns is not None:
                self._add_evaluation(row, eval_returns[k], seed, rate)
            row.update({name: float(stats[name][k]) for name in metric_names
                        if name in stats and not np.isnan(stats[name][k])})
            logger.log(row)
            rows.append(row)
        self.state = self.program.start_row(self.state)
        if self.callbacks:
            self._notify("on_log", self.step, rows)

    def save(self) -> None:
        """Write every seed's checkpoint (atomically, one directory per run) and flush its logs."""
        host = jax.device_get(self.state)
        wall_time = self.wall_time_offset + time.time() - self._start
        for k, run_dir in enumerate(self.run_dir_list):
            s = jax.tree_util.tree_map(lambda x: np.asarray(x[k]), host.seeds)
            loop = {"kind": LOOP_KIND, "step": self.step, "updates_done": int(host.updates_done),
                    "wall_time": wall_time, "env_state": jax.tree_util.tree_leaves(s.env_state),
                    "metrics": dict(s.metrics)}
            loop.update({name: getattr(s, name) for name in (
                "obs", "key", "action_key", "episode_return", "episode_length", "episodes", "last_episode_return",
                "row_return_sum", "row_length_sum", "row_episodes")})
            save_checkpoint(run_dir, s.agent, replay.state_dict(host.buffer, k), loop, self.agent.policy_fields)
        self.last_checkpoint_step = self.step
        for logger in self.loggers:
            logger.flush()


def _nanmean(values) -> Optional[float]:
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None
