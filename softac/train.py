"""The training loop: collect, update, evaluate, log, checkpoint — for one or several seeds at once.

Several seeds are one process: the agent state carries a leading seed axis and every jitted
function is `jax.vmap`ped over it; each seed has its own environment, replay buffer (a slice of
one shared array), numpy Generator, run directory, logs and checkpoint. One seed is the case N=1.

One loop iteration, for every seed in lockstep (the order of Algorithm 1):
1. `_update_then_act`: uniform actions in [-1, 1] for the first `learning_starts` steps;
   afterwards a sample from the policy. When gradient steps are due (every `train_every` env steps
   once `learning_starts` transitions are stored), the `gradient_steps` updates (one lax.scan) and
   the action for the current observation are one jitted call (`update_then_act`): updates first,
   then the action from the new actor, so each step costs one dispatch;
2. step the environment with the action rescaled to its bounds, store the transition with
   `terminated` as the bootstrap's cut (a time-limit cut-off bootstraps from the true final observation)
   and `truncated` as an episode end (n-step targets stop there), reset the environment by hand when the
   episode ended;
3. log, evaluate, checkpoint at their intervals.

Vectorised collection (`num_envs` = K > 1): each seed steps K environments of its own per iteration
(softac steps them itself, so every sub-environment's cut-off keeps its true final observation), the
iteration counts K env steps, and the updates of those K env steps (K x gradient_steps with
train_every 1) run in the one dispatch before the K actions, so the updates per env step, the
replay ratio, do not change with K while the dispatch and host work per env step shrink by K.
K = 1 is the loop above, bit for bit.

While it runs, the process holds the writer lock of every run directory (softac.rundir), and
SIGINT/SIGTERM (in the main thread) set a flag the loop checks once per env step: it stops at the
end of that step, saves every seed's checkpoint and raises TrainingInterrupted.

Because the updates due after step t run together with the action of step t+1, a run stopped
after step k and resumed continues with exactly the calls an uninterrupted run would make.
(Dispatching the update asynchronously and stepping the environment meanwhile, with actions from
the actor one gradient step behind, was measured: no faster on 2 cores, where the update already
keeps both busy, so softac keeps the exact order.)
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from softac.algos.base import observes_env_steps
from softac.algos.registry import make_agent, resolve_algo
from softac.algos.registry import get_spec
from softac.callbacks import Callback
from softac.checkpoint import checkpoint_step, load_checkpoint, recover_interrupted_save, save_checkpoint
from softac.compiled import is_jax_env
from softac.compiled import run as compiled_run
from softac.config import SACConfig
from softac.envs import ENV_STEPS_INFO, action_spec, capture_env_state, make_config_env, restore_env_state
from softac.errors import SoftacError
from softac.evaluate import make_deterministic_policy, run_episodes
from softac.logger import METRICS_NAME, RunLogger, run_columns, truncate_metrics
from softac.loop_driver import EVAL_SEED_OFFSET
from softac.loop_schedule import ScheduledLoop, nonfinite_error
from softac.replay import ReplayBuffer, check_buffer_fits
from softac.rundir import (CONFIG_NAME, create_run_dirs, lock_holder, locked_run_dirs, named_run_dirs, read_run_config,
                           remove_leftovers, write_text_atomic)


@dataclass
class SeedRun:
    """Host-side state of one seed: its `num_envs` environments, RNG, episode counters and run directory."""

    seed: int
    run_dir: Path
    envs: list  # the seed's environments, stepped in order
    rng: np.random.Generator
    obs: np.ndarray  # [num_envs, obs_dim]: the observation of each environment
    episode_returns: np.ndarray  # [num_envs] float64: of the episode in progress in each environment
    episode_lengths: np.ndarray  # [num_envs] int
    episodes: int = 0  # finished, all environments together
    finished_returns: list = field(default_factory=list)  # since the last metrics row
    finished_lengths: list = field(default_factory=list)
    last_episode_return: Optional[float] = None
    last_eval: Optional[float] = None
    last_checkpoint_step: Optional[int] = None


@dataclass
class LoopCheckpoint:
    """One seed's loop state as its checkpoint holds it (`loop.json` + `loop.npz`, softac.checkpoint): with the
    agent state and the replay buffer, all that the loop needs to continue exactly where it stopped.

    Per-environment fields hold one entry per environment of the seed (`num_envs`); a checkpoint written
    before vectorised collection (one environment, scalars) reads as num_envs = 1.
    """

    step: int  # env steps taken (per seed, all its environments together)
    obs: np.ndarray  # [num_envs, obs_dim]: the observations the next actions are chosen for
    episode_returns: list[float]  # of the episode in progress in each environment
    episode_lengths: list[int]
    episodes: int  # finished
    last_episode_return: Optional[float]
    rng_state: dict  # the numpy Generator's bit_generator.state (replay sampling, warm-up actions)
    env_states: list  # softac.envs.capture_env_state of each environment
    wall_time: float  # seconds of training so far, over every session of the run
    action_key: np.ndarray  # the acting PRNG key stream
    updates_done: int  # gradient steps taken (numbers the next update for schedules such as CrossQ's delay)

    def to_checkpoint(self) -> dict:
        """The plain-data dict `save_checkpoint` writes."""
        return {"step": self.step, "obs": self.obs, "episode_return": list(self.episode_returns),
                "episode_length": list(self.episode_lengths), "episodes": self.episodes,
                "last_episode_return": self.last_episode_return, "rng": self.rng_state, "env": list(self.env_states),
                "wall_time": self.wall_time, "action_key": self.action_key, "updates_done": self.updates_done}

    @classmethod
    def from_checkpoint(cls, loop: dict) -> "LoopCheckpoint":
        """The loop state `load_checkpoint` read (the inverse of `to_checkpoint`)."""
        try:
            obs = np.asarray(loop["obs"], np.float32)
            single = obs.ndim == 1  # written with one environment per seed, before num_envs existed
            return cls(step=int(loop["step"]), obs=obs[None] if single else obs,
                       episode_returns=[float(x) for x in ([loop["episode_return"]] if single else loop["episode_return"])],
                       episode_lengths=[int(x) for x in ([loop["episode_length"]] if single else loop["episode_length"])],
                       episodes=int(loop["episodes"]), last_episode_return=loop["last_episode_return"],
                       rng_state=loop["rng"],
                       env_states=list(loop["env"]) if isinstance(loop["env"], list) else [loop["env"]],
                       wall_time=float(loop["wall_time"]), action_key=np.asarray(loop["action_key"]),
                       updates_done=int(loop["updates_done"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SoftacError(f"A checkpoint's loop state is unreadable ({type(exc).__name__}: {exc}).") from None

    def seed_run(self, seed: int, run_dir: Path, envs: list) -> "SeedRun":
        """The host-side state of the seed, continuing this loop state in `envs` (restored already)."""
        rng = np.random.default_rng()
        rng.bit_generator.state = self.rng_state
        return SeedRun(seed=seed, run_dir=run_dir, envs=envs, rng=rng, obs=self.obs.copy(),
                       episode_returns=np.array(self.episode_returns, np.float64),
                       episode_lengths=np.array(self.episode_lengths, np.int64),
                       episodes=self.episodes, last_episode_return=self.last_episode_return,
                       last_checkpoint_step=self.step)


def env_reset_seed(seed: int, env_index: int) -> int:
    """The seed of the first reset of environment `env_index` of training seed `seed`: the seed itself for the
    first environment (as with one environment), distinct derived seeds for the others."""
    if env_index == 0:
        return seed
    return int(np.random.SeedSequence([seed, env_index]).generate_state(1)[0])


class Trainer(ScheduledLoop):
    """Wires config, environments, buffer, agent and logs together and runs the loop.

    Use `train(cfg)` or `resume(run_dirs)` rather than this class directly.
    """

    def __init__(self, cfg: SACConfig, runs: list[SeedRun], state, buffer: ReplayBuffer,
                 agent, step: int, action_keys: jax.Array, wall_time_offset: float = 0.0,
                 callbacks: Sequence[Callback] = (), updates_done: int = 0):
        self.cfg, self.runs, self.state, self.buffer, self.agent = cfg, runs, state, buffer, agent
        self.callbacks = tuple(callbacks)
        self._stop_requested = False  # set by a callback that returned True
        self.step = step
        self.updates_done = updates_done  # gradient steps every seed has taken (they run in lockstep)
        self.action_keys = action_keys  # [N, 2]: the acting key stream of every seed
        self.wall_time_offset = wall_time_offset
        self.action_spec = action_spec(runs[0].envs[0].action_space)
        if cfg.video_every:  # fail now, not at the first video, where this machine cannot render or write MP4s
            from softac.video import check_video_support
            check_video_support(cfg)
        self.eval_envs = [[make_config_env(cfg) for _ in range(cfg.eval_episodes)] for _ in runs]
        columns = run_columns(get_spec(cfg.algo).metrics)
        self.loggers = [RunLogger(run.run_dir, cfg.tensorboard, columns) for run in runs]
        self.metrics: Optional[dict] = None

        def update_then_act(state, batches, action_key, obs, first_update_index):
            """The gradient steps due now, then an action for `obs` from the updated policy: one dispatch."""
            state, metrics = agent.update_many(state, batches, first_update_index)
            action, action_key = agent.explore(agent.policy_of(state), action_key, obs)
            return state, action, action_key, metrics

        # Several seeds: one vmap over the leading axis of state, batches, keys and observations; the update
        # number is the same for every seed (they run in lockstep), so it is not mapped.
        self._update_then_act = jax.jit(jax.vmap(update_then_act, in_axes=(0, 0, 0, 0, None)), donate_argnums=0)
        self._act = jax.jit(jax.vmap(lambda state, key, obs: agent.explore(agent.policy_of(state), key, obs)))
        # The agent's statistics of the data stream, after every env step (only agents that keep some).
        self._observe = jax.jit(jax.vmap(agent.observe), donate_argnums=0) if observes_env_steps(agent) else None
        self._deterministic = make_deterministic_policy(agent)

    # ------------------------------------------------------------------------------- the loop
    # ---- what the loop driver (softac.loop_driver.LoopDriver.run) asks of this loop
    def advance(self) -> None:
        """One loop iteration: the updates due and the actions, num_envs env steps of every seed, the schedule."""
        self._step_envs(self._update_then_act_step())
        self.step += self.cfg.env_steps_per_iteration
        self._after_step()

    def progress_due(self) -> bool:
        return self._crossed(64) or self.step == self.cfg.total_steps

    def progress_returns(self) -> tuple[Optional[float], Optional[float]]:
        return self._mean("last_episode_return"), self._mean("last_eval")

    def checkpoint_is_current(self) -> bool:
        return all(run.last_checkpoint_step == self.step for run in self.runs)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
        for env in [env for row in self.eval_envs for env in row] + [env for run in self.runs for env in run.envs]:
            env.close()

    def _updates_due(self) -> int:
        """Gradient steps due before the actions of this iteration (agent steps a .. a + num_envs - 1, where
        a = step // action_repeat: with action_repeat 1 agent steps are env steps).

        One environment takes `gradient_steps` updates before acting at every agent step t > 0 with
        t * action_repeat >= learning_starts and t a multiple of `train_every`. With num_envs environments, the
        updates of every such t up to the last agent step of this iteration are due (those of steps skipped
        while the warm-up ran included), so the number of updates per agent step does not depend on num_envs.
        """
        cfg = self.cfg
        if self.step == 0 or self.step < cfg.learning_starts:
            return 0
        repeat = cfg.action_repeat
        first, last = max(-(-cfg.learning_starts // repeat), 1), self.step // repeat + cfg.num_envs - 1
        due_in_all = cfg.gradient_steps * (last // cfg.train_every - (first - 1) // cfg.train_every)
        return due_in_all - self.updates_done

    def _update_then_act_step(self) -> np.ndarray:
        """The gradient steps due now (if any), then the stored-form actions [N, num_envs, ...] for this
        iteration: uniform during the warm-up, else sampled from the (updated) policy."""
        cfg = self.cfg
        if self.step < cfg.learning_starts:
            return np.stack([np.stack([self.action_spec.random(run.rng) for _ in run.envs]) for run in self.runs])
        obs = np.stack([run.obs for run in self.runs])
        if cfg.num_envs == 1:  # the policy sees [N, obs_dim], exactly as before vectorised collection
            obs = obs[:, 0]
        updates = self._updates_due()
        if updates:
            batches = self.buffer.sample([run.rng for run in self.runs], cfg.batch_size, updates)
            self.state, actions, self.action_keys, self.metrics = self._update_then_act(
                self.state, batches, self.action_keys, obs, np.int32(self.updates_done))  # a numpy scalar: no dispatch
            self.updates_done += updates
        else:
            actions, self.action_keys = self._act(self.state, self.action_keys, obs)
        actions = np.asarray(actions)
        return actions[:, None] if cfg.num_envs == 1 else actions

    def _step_envs(self, actions: np.ndarray) -> None:
        """Step every environment of every seed with its action [N, num_envs, ...], store the transitions
        (`terminated` cuts the bootstrap: a time-limit cut-off bootstraps from its true final observation;
        `truncated` marks the episode end for n-step targets) and reset the environments whose episodes ended."""
        obs = np.stack([run.obs for run in self.runs])
        next_obs = np.empty_like(obs)
        rewards = np.empty(obs.shape[:2], np.float32)
        terminateds = np.empty(obs.shape[:2], np.float32)
        truncateds = np.empty(obs.shape[:2], np.float32)
        for k, run in enumerate(self.runs):
            for j, env in enumerate(run.envs):
                next_obs_j, reward, terminated, truncated, info = env.step(self.action_spec.to_env(actions[k, j]))
                if not (np.all(np.isfinite(next_obs_j)) and np.isfinite(reward)):
                    raise nonfinite_error(run.seed, self.step + (j + 1) * self.cfg.action_repeat,
                                          run.last_checkpoint_step, run.run_dir)
                next_obs[k, j], rewards[k, j], terminateds[k, j] = next_obs_j, reward, float(terminated)
                truncateds[k, j] = float(truncated)
                run.episode_returns[j] += float(reward)
                run.episode_lengths[j] += info.get(ENV_STEPS_INFO, 1)  # env steps (ActionRepeat takes several)
                if terminated or truncated:
                    run.finished_returns.append(float(run.episode_returns[j]))
                    run.finished_lengths.append(int(run.episode_lengths[j]))
                    run.last_episode_return = float(run.episode_returns[j])
                    run.episodes += 1
                    run.episode_returns[j], run.episode_lengths[j] = 0.0, 0
                    next_obs_j, _ = env.reset()
                run.obs[j] = next_obs_j
        self.buffer.add_many(obs, actions, rewards, next_obs, terminateds, truncateds)
        if self._observe is not None:
            self.state = self._observe(self.state, np.stack([run.obs for run in self.runs]), rewards, terminateds,
                                       truncateds)

    def seeds(self) -> tuple[int, ...]:
        return tuple(run.seed for run in self.runs)

    def run_dirs(self) -> tuple[Path, ...]:
        return tuple(run.run_dir for run in self.runs)

    def last_evals(self) -> list[Optional[float]]:
        return [run.last_eval for run in self.runs]

    def _before_checkpoint(self) -> None:
        """Record the videos due at this step (their time, like evaluation's, is not training time)."""
        cfg = self.cfg
        if cfg.video_every and self._crossed(cfg.video_every):
            from softac.video import record_training_videos

            started, policy = time.time(), self.agent.policy_of(self.state)
            record_training_videos(cfg, lambda obs: self._deterministic(policy, obs), list(self.seeds()),
                                   list(self.run_dirs()), self.step)
            self._paused_seconds += time.time() - started

    # ------------------------------------------------------------------------------- pieces
    def evaluate(self) -> np.ndarray:
        """Deterministic returns [N, eval_episodes] of every seed's current policy."""
        policy = self.agent.policy_of(self.state)
        returns = run_episodes(lambda obs: np.asarray(self._deterministic(policy, obs)), self.eval_envs,
                               [run.seed + EVAL_SEED_OFFSET for run in self.runs])
        for run, r in zip(self.runs, returns):
            run.last_eval = float(r.mean())
        return returns

    def _log(self, eval_returns: Optional[np.ndarray]) -> None:
        # Training throughput: env steps per second since the last row, without evaluation and checkpoint time.
        now = time.time()
        rate = self._training_rate(now)
        metrics = jax.device_get(self.metrics) if self.metrics is not None else None
        rows = []
        for k, (run, logger) in enumerate(zip(self.runs, self.loggers)):
            row = {
                "env_step": self.step,
                "wall_time": self.wall_time_offset + now - self._start,
                "episodes": run.episodes,
                "episode_return": float(np.mean(run.finished_returns)) if run.finished_returns else None,
                "episode_length": float(np.mean(run.finished_lengths)) if run.finished_lengths else None,
                "steps_per_second": rate,
            }
            if eval_returns is not None:
                self._add_evaluation(row, eval_returns[k], run.seed, rate)
            if metrics is not None:
                row.update({name: float(value[k]) for name, value in metrics.items()})  # unknown names: an error
            logger.log(row)
            rows.append(row)
            run.finished_returns.clear()
            run.finished_lengths.clear()
        if self.callbacks:
            self._notify("on_log", self.step, rows)

    def save(self) -> None:
        """Write every seed's checkpoint (atomically, one directory per run) and flush its logs to disk."""
        host_state = jax.device_get(self.state)
        wall_time = self.wall_time_offset + time.time() - self._start
        for k, run in enumerate(self.runs):
            loop = LoopCheckpoint(
                step=self.step, obs=run.obs, episode_returns=[float(x) for x in run.episode_returns],
                episode_lengths=[int(x) for x in run.episode_lengths], episodes=run.episodes,
                last_episode_return=run.last_episode_return, rng_state=run.rng.bit_generator.state,
                env_states=[capture_env_state(env) for env in run.envs], wall_time=wall_time,
                action_key=np.asarray(self.action_keys[k]), updates_done=self.updates_done)
            seed_state = jax.tree_util.tree_map(lambda x: x[k], host_state)
            save_checkpoint(run.run_dir, seed_state, self.buffer.state_dict(k), loop.to_checkpoint(),
                            self.agent.policy_fields)
            run.last_checkpoint_step = self.step
        for logger in self.loggers:
            logger.flush()

    def _mean(self, attribute: str) -> Optional[float]:
        values = [getattr(run, attribute) for run in self.runs if getattr(run, attribute) is not None]
        return float(np.mean(values)) if values else None


# ----------------------------------------------------------------------------------- entry points
def _build(cfg: SACConfig, env) -> tuple[SACConfig, object, ReplayBuffer]:
    """(cfg with its algorithm resolved, the agent, an empty replay buffer) for the seeds of `cfg`."""
    spec = action_spec(env.action_space)
    cfg = resolve_algo(cfg, spec)
    obs_dim = int(env.observation_space.shape[0])
    agent = make_agent(cfg, obs_dim, spec.dim)
    check_buffer_fits(len(cfg.seed_list), cfg.buffer_size, obs_dim, spec.stored_dim)
    try:
        buffer = ReplayBuffer(len(cfg.seed_list), cfg.buffer_size, obs_dim, spec.stored_dim, n_steps=cfg.n_steps,
                              gamma=cfg.gamma, num_envs=cfg.num_envs)
    except MemoryError:
        raise SoftacError(f"A replay buffer of {cfg.buffer_size:,} transitions does not fit in this machine's "
                          "memory; lower --buffer-size.") from None
    return cfg, agent, buffer


def train(cfg: SACConfig, callbacks: Sequence[Callback] = ()) -> list[Path]:
    """Train `cfg` from scratch; returns the run directories (one per seed). `callbacks`: see softac.callbacks."""
    if is_jax_env(cfg.env):  # gymnax:/brax: envs train inside XLA (softac.compiled)
        return compiled_run.train(cfg, callbacks)
    envs = [[make_config_env(cfg) for _ in range(cfg.num_envs)]  # fails on a bad env before any directory exists
            for _ in cfg.seed_list]
    cfg, agent, buffer = _build(cfg, envs[0][0])
    run_dirs = create_run_dirs(cfg)
    with locked_run_dirs(run_dirs):
        return _start(cfg, agent, buffer, envs, run_dirs, callbacks)


def _start(cfg: SACConfig, agent, buffer: ReplayBuffer, envs: list, run_dirs: list[Path],
           callbacks: Sequence[Callback]) -> list[Path]:
    state = jax.vmap(agent.init)(jnp.stack([jax.random.PRNGKey(s) for s in cfg.seed_list]))
    runs = []
    for seed, seed_envs, run_dir in zip(cfg.seed_list, envs, run_dirs):
        first_obs = []
        for j, env in enumerate(seed_envs):
            obs, _ = env.reset(seed=env_reset_seed(seed, j))
            env.action_space.seed(env_reset_seed(seed, j))
            first_obs.append(np.asarray(obs, np.float32))
        runs.append(SeedRun(seed=seed, run_dir=run_dir, envs=seed_envs, rng=np.random.default_rng(seed),
                            obs=np.stack(first_obs), episode_returns=np.zeros(cfg.num_envs),
                            episode_lengths=np.zeros(cfg.num_envs, np.int64)))
    action_keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), 1) for s in cfg.seed_list])
    return Trainer(cfg, runs, state, buffer, agent, step=0, action_keys=action_keys, callbacks=callbacks).run()


def resume(run_dirs: Sequence[str | Path], total_steps: Optional[int] = None, progress: Optional[bool] = None,
           callbacks: Sequence[Callback] = (), print_evaluations: Optional[bool] = None) -> list[Path]:
    """Continue runs from their checkpoints (to `total_steps` if given); several runs must share a config and step.
    `progress` and `print_evaluations`, if given, replace the saved display settings."""
    run_dirs = [Path(d) for d in run_dirs]
    configs = [read_run_config(d) for d in run_dirs]
    base = configs[0]
    for d, c in zip(run_dirs[1:], configs[1:]):
        if c.replace(seed=base.seed, run_name=base.run_name) != base:
            raise SoftacError(f"{d} was trained with a different config than {run_dirs[0]}; resume them separately.")
    seeds = tuple(c.seed for c in configs)
    if len(set(seeds)) != len(seeds):
        raise SoftacError("The runs to resume must have different seeds.")
    changes = {"seeds": seeds if len(seeds) > 1 else None, "seed": seeds[0]}
    if total_steps is not None:
        changes["total_steps"] = total_steps
    if progress is not None:
        changes["progress"] = progress
    if print_evaluations is not None:
        changes["print_evaluations"] = print_evaluations
    cfg = base.replace(**changes)
    with locked_run_dirs(run_dirs):  # one writer per run: refused at once while another process trains it
        for run_dir in run_dirs:
            _tidy(run_dir)
        if is_jax_env(cfg.env):
            return compiled_run.resume_locked(cfg, run_dirs, seeds, callbacks)
        return _resume_locked(cfg, run_dirs, seeds, callbacks)


def _tidy(run_dir: Path) -> None:
    """Finish or undo what an interrupted save left in a run directory (we hold its lock)."""
    try:
        recover_interrupted_save(run_dir)
        remove_leftovers(run_dir)
    except OSError as exc:
        raise SoftacError(f"Cannot tidy run directory {run_dir}: {exc.strerror or exc}.") from None


def _resume_locked(cfg: SACConfig, run_dirs: list[Path], seeds: tuple[int, ...],
                   callbacks: Sequence[Callback]) -> list[Path]:
    probe_env = make_config_env(cfg)
    cfg, agent, buffer = _build(cfg, probe_env)
    probe_env.close()
    template = agent.init(jax.random.PRNGKey(0))
    loaded = [load_checkpoint(d, template, agent.policy_fields) for d in run_dirs]  # all read before any change
    loops = [LoopCheckpoint.from_checkpoint(loop) for _, _, loop in loaded]
    steps = {loop.step for loop in loops}
    if len(steps) != 1 or len({loop.updates_done for loop in loops}) != 1:
        raise SoftacError("The runs to resume stopped at different steps; resume them separately.")
    step = steps.pop()
    if step >= cfg.total_steps:
        raise SoftacError(f"{run_dirs[0]} is already at {step} env steps; pass a larger --total-steps to continue it.")

    runs = []
    for seed, run_dir, loop in zip(seeds, run_dirs, loops):  # every env restored before anything changes
        if len(loop.env_states) != cfg.num_envs or loop.obs.shape[0] != cfg.num_envs:
            raise SoftacError(f"The checkpoint in {run_dir} holds {len(loop.env_states)} environments per seed but "
                              f"its config says num_envs {cfg.num_envs}.")
        restored = [restore_env_state(cfg, env_state, reset_seed=seed * 1_000_003 + step + j)
                    for j, env_state in enumerate(loop.env_states)]
        run = loop.seed_run(seed, run_dir, [env for env, _ in restored])
        for j, (_, fresh_obs) in enumerate(restored):
            if fresh_obs is not None:  # the episode in progress could not be restored: start a new one
                run.obs[j] = np.asarray(fresh_obs, np.float32)
                run.episode_returns[j], run.episode_lengths[j] = 0.0, 0
        runs.append(run)
    for run in runs:
        if not (run.run_dir / METRICS_NAME).exists():
            print(f"softac: warning: {run.run_dir} has no {METRICS_NAME}; a new one starts at env step {step}.",
                  file=sys.stderr, flush=True)
        try:
            truncate_metrics(run.run_dir, step)
            write_text_atomic(run.run_dir / CONFIG_NAME, cfg.replace(seed=run.seed, seeds=None).to_json())
        except OSError as exc:
            raise SoftacError(f"Cannot write to run directory {run.run_dir}: {exc.strerror or exc}.") from None

    state = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[agent_state for agent_state, _, _ in loaded])
    buffer.load_state_dicts([buffer_state for _, buffer_state, _ in loaded])
    wall_time = max(loop.wall_time for loop in loops)
    action_keys = jnp.stack([jnp.asarray(loop.action_key) for loop in loops])
    return Trainer(cfg, runs, state, buffer, agent, step=step, action_keys=action_keys,
                   wall_time_offset=wall_time, callbacks=callbacks, updates_done=loops[0].updates_done).run()


def train_or_resume(cfg: SACConfig, callbacks: Sequence[Callback] = ()) -> list[Path]:
    """The named runs of `cfg` brought to `cfg.total_steps`: continued from their checkpoints if every seed
    has one, left alone if they are already there, trained from scratch otherwise (a run that died before
    its first checkpoint is set aside as `<name>.incomplete-<timestamp>`, never deleted).
    Benchmark suites and sweep trials run through this, so running them again continues them."""
    dirs = named_run_dirs(cfg)
    steps = [checkpoint_step(d) for d in dirs]
    if all(s is not None for s in steps):
        if min(steps) >= cfg.total_steps:
            return dirs
        return resume(dirs, total_steps=cfg.total_steps, progress=cfg.progress, callbacks=callbacks)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for d in dirs:
        holder = lock_holder(d) if d.exists() else None
        if holder is not None:
            raise SoftacError(f"Run directory {d} is being trained by process {holder}; wait for it to finish.")
        if d.exists():
            d.rename(d.with_name(f"{d.name}.incomplete-{stamp}"))
    return train(cfg, callbacks=callbacks)

