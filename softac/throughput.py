"""Throughput (`softac bench`; docs/design.md, "Measuring speed"): how close training runs to what the machine can do.

For each algorithm asked for (default: sac and sac-v1, side by side), prints
(a) env steps per second of training after the random warm-up (the `steps_per_second` column of
    metrics.csv, which excludes evaluation and checkpoint time), published hyperparameters (the algorithm's
    gradient steps per env step: its fractions below count updates, env steps/s x gradient steps), once for
    each number of environments per seed asked for (`--num-envs 1,4,16`), with its fraction of (b);
(b) updates per second of the jitted update alone (the trainer's own jit(vmap(scan(update))) on fixed
    batches, called as training calls it: the gradient steps of one env step per call), timed right before
    and after each training measurement so that (a) is compared with (b) under the same load;
(c) XLA's FLOP count of one update (averaged over the updates for agents whose actor steps once per
    policy_delay critic steps), the FP32 matrix-multiply rate of this machine measured on the
    same matrix shapes as the update's dense layers (forward, input-gradient and weight-gradient
    products), the ceiling they imply (rate / FLOPs) and the fraction of it reached by (a) and (b).
"""

from __future__ import annotations

import copy
import tempfile
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from softac.algos.base import Batch
from softac.algos.registry import make_agent
from softac.config import SACConfig
from softac.envs import make_env, space_dims
from softac.logger import read_metrics


def update_flops(agent, state, batches: Batch, fn) -> float:
    """XLA's cost-analysis FLOP count of one call of the jitted `fn(state, batches, first_update_index)`."""
    analysis = fn.lower(state, batches, jnp.int32(0)).compile().cost_analysis()
    if isinstance(analysis, list):
        analysis = analysis[0]
    return float(analysis["flops"])


def critic_only_agent(agent):
    """A copy of `agent` whose delayed actor step does nothing: its update is the critic step alone, the part
    of an update that agents with a `policy_delay` take every time."""
    critic_only = copy.copy(agent)
    critic_only.actor_step = lambda state, batch, key: state
    return critic_only


def mean_update_flops(agent, state, batches: Batch, fn) -> float:
    """XLA's FLOPs of one update, averaged over the updates as training runs them. XLA counts both branches of
    a lax.cond, so for agents whose actor steps once per `policy_delay` critic steps (DroQ, REDQ, CrossQ) it
    counts the actor step in every update: the mean is critic + actor / policy_delay, the critic part from
    the same update with the actor step taken out."""
    flops = update_flops(agent, state, batches, fn)
    delay = getattr(agent, "policy_delay", 1)
    if delay <= 1:
        return flops
    critic_only = critic_only_agent(agent)
    critic_fn = jax.jit(jax.vmap(critic_only.update_many, in_axes=(0, 0, None)))
    critic_flops = update_flops(critic_only, state, batches, critic_fn)
    return critic_flops + (flops - critic_flops) / delay


def dense_shapes(agent) -> list[tuple[int, int, int]]:
    """(M, K, N) of the matrix products of one SAC v2 update's dense layers, with multiplicity.

    Per layer pass over a batch B: forward B x in @ in x out. The v2 update runs the critic
    ensemble (2 critics) forward+backward (input and weight gradients) once for the critic loss,
    forward only for the target, and forward+input-gradient for the actor loss; the actor forward
    twice (next action, actor loss) and backward once. These shapes measure the machine's matmul
    rate; the FLOP count of each algorithm's update comes from XLA.
    """
    cfg, B = agent.cfg, agent.cfg.batch_size
    critic_sizes = cfg.critic_sizes
    critic_layers = list(zip((agent.obs_dim + agent.action_dim,) + critic_sizes, critic_sizes + (1,)))
    actor_layers = list(zip((agent.obs_dim,) + cfg.hidden_sizes, cfg.hidden_sizes + (2 * agent.action_dim,)))
    shapes = []
    for k, n in critic_layers:
        fwd, in_grad, w_grad = (B, k, n), (B, n, k), (k, B, n)
        shapes += [fwd] * 2 * 3 + [in_grad] * 2 * 2 + [w_grad] * 2  # x2 critics: 3 fwd, 2 input grads, 1 weight grad
    for k, n in actor_layers:
        shapes += [(B, k, n)] * 2 + [(B, n, k), (k, B, n)]
    return shapes


def matmul_rate(shapes: list[tuple[int, int, int]], repeats: int = 200) -> float:
    """FP32 FLOP/s of this machine running exactly these matrix products (one jitted call each round)."""
    rng = np.random.default_rng(0)
    operands = [(jnp.asarray(rng.standard_normal((m, k)), jnp.float32),
                 jnp.asarray(rng.standard_normal((k, n)), jnp.float32)) for m, k, n in shapes]
    products = jax.jit(lambda ops: [a @ b for a, b in ops])
    jax.block_until_ready(products(operands))
    start = time.perf_counter()
    for _ in range(repeats):
        out = products(operands)
    jax.block_until_ready(out)
    elapsed = time.perf_counter() - start
    return repeats * sum(2.0 * m * k * n for m, k, n in shapes) / elapsed


class UpdateTimer:
    """The trainer's jitted update alone, called as training calls it: jit(vmap(scan(update))) over the
    `gradient_steps` updates of one env step per call (20 for DroQ and REDQ, 2 for SimbaV2, 1 for SAC),
    compiled once and timed as often as asked, in updates per second. Timing it right before and after each
    training measurement compares the two under the same load on a shared machine. `updates_per_call`
    overrides the number of updates per call (1: every update a dispatch of its own)."""

    def __init__(self, agent, updates_per_call: Optional[int] = None):
        self.update = jax.jit(jax.vmap(agent.update_many, in_axes=(0, 0, None)), donate_argnums=0)
        self.state = jax.vmap(agent.init)(jnp.stack([jax.random.PRNGKey(0)]))
        self.updates_per_call = int(updates_per_call or agent.cfg.gradient_steps)
        rng = np.random.default_rng(0)
        B, G = agent.cfg.batch_size, self.updates_per_call
        tails = [(agent.obs_dim,), (agent.action_dim,), (), (agent.obs_dim,), ()]
        self.batches = Batch(*(jnp.asarray(rng.standard_normal((1, G, B) + tail), jnp.float32) for tail in tails))
        # One update's batch, for the FLOP count: XLA's cost analysis counts a scan's body once.
        self.batch = Batch(*(None if b is None else b[:, :1] for b in self.batches))
        self.flops = mean_update_flops(agent, self.state, self.batch, self.update)  # FLOPs of one update
        self.updates_done = 0
        self._run(1)

    def _run(self, calls: int) -> None:
        for _ in range(calls):
            self.state, _ = self.update(self.state, self.batches, np.int32(self.updates_done))  # as training passes it
            self.updates_done += self.updates_per_call
        jax.block_until_ready(self.state)

    def updates_per_second(self, updates: int) -> float:
        """Updates per second over at least `updates` updates (whole calls of `updates_per_call` each)."""
        calls = max(1, -(-updates // self.updates_per_call))
        start = time.perf_counter()
        self._run(calls)
        return calls * self.updates_per_call / (time.perf_counter() - start)


def updates_per_second(agent, repeats: int) -> tuple[float, float]:
    """(updates/s of the trainer's jitted update alone, FLOPs per update)."""
    timer = UpdateTimer(agent)
    return timer.updates_per_second(repeats), timer.flops


def training_steps_per_second(algo: str, env_id: str, learning_starts: int, train_steps: int,
                              log_every: int = 500, num_seeds: int = 1, num_envs: int = 1) -> float:
    """Env steps/s (per seed) of a real training run after warm-up, skipping the first logged interval
    (compilation); with num_seeds > 1 the seeds train together on the vmapped seed axis, with num_envs > 1
    each seed steps that many environments per loop iteration (and takes num_envs updates per dispatch)."""
    log_every = min(log_every, max(train_steps // 2, 1))  # the first interval (compilation) is skipped
    log_every = -(-log_every // num_envs) * num_envs  # rows at whole loop iterations
    learning_starts = -(-learning_starts // num_envs) * num_envs
    train_steps = max(-(-train_steps // log_every), 2) * log_every
    with tempfile.TemporaryDirectory() as root:
        cfg = SACConfig(algo=algo, env=env_id, seeds=tuple(range(num_seeds)) if num_seeds > 1 else None,
                        num_envs=num_envs,
                        learning_starts=learning_starts, total_steps=learning_starts + train_steps,
                        eval_every=0, eval_episodes=1, log_every=log_every, checkpoint_every=0, run_root=root,
                        progress=False, tensorboard=False)
        from softac.train import train

        run_dir = train(cfg)[0]
        rows = [r for r in read_metrics(run_dir) if r["env_step"] > learning_starts + log_every]
    steps = sum(log_every for _ in rows)
    seconds = sum(log_every / r["steps_per_second"] for r in rows)
    return steps / seconds


def run_benchmark(env_id: str = "HalfCheetah-v5", train_steps: int = 3000, learning_starts: int = 5000,
                  update_repeats: int = 500, algos: tuple[str, ...] = ("sac", "sac-v1"), num_seeds: int = 1,
                  num_envs: tuple[int, ...] = (1,)) -> dict:
    """Measure and print (a), (b), (c) of the module docstring for each algorithm; returns the figures."""
    env = make_env(env_id)
    obs_dim, action_dim = space_dims(env)
    env.close()
    print(f"softac throughput on {env_id} (obs {obs_dim}, action {action_dim}), published hyperparameters, "
          f"{jax.devices()[0].platform} backend, {jax.local_device_count()} device(s)")
    figures = {}
    for algo in algos:
        agent = make_agent(SACConfig(algo=algo, env=env_id), obs_dim, action_dim)
        rate = matmul_rate(dense_shapes(agent))
        print(f"[{algo}] FP32 matmul rate on the update's matrix shapes: {rate / 1e9:.1f} GFLOP/s")
        figures.setdefault("matmul_flops_per_second", rate)
        timer = UpdateTimer(agent)
        updates_per_step = agent.cfg.gradient_steps
        ceiling = rate / timer.flops
        per_seed = (f" per seed, {num_seeds} seeds at once; fractions are per seed" if num_seeds > 1 else "")
        training, update_rates = {}, []
        for k in num_envs:
            before = timer.updates_per_second(update_repeats)
            steps_per_s = training_steps_per_second(algo, env_id, learning_starts, train_steps, num_seeds=num_seeds,
                                                    num_envs=k)
            after = timer.updates_per_second(update_repeats)
            alone = (before + after) / 2
            update_rates += [before, after]
            training[k] = steps_per_s
            training_updates = steps_per_s * updates_per_step  # updates/s while training
            print(f"[{algo}] (a) training, {k} env(s) per seed: {steps_per_s:7.1f} env steps/s ({updates_per_step} "
                  f"update(s) per env step, after {learning_starts} warm-up steps){per_seed}: "
                  f"{training_updates / ceiling:.1%} of the ceiling, {training_updates / alone:.1%} of the update-alone "
                  f"rate timed around it ({before:.1f} before, {after:.1f} after)")
        ups = float(np.mean(update_rates))
        print(f"[{algo}] (b) jitted update alone: {ups:7.1f} updates/s (mean of the timings around (a))")
        print(f"[{algo}] (c) {timer.flops / 1e6:.1f} MFLOP per update (XLA); ceiling {ceiling:.1f} updates/s; "
              f"fraction reached by the update alone {ups / ceiling:.1%}")
        figures[algo] = {"env_steps_per_second": training[num_envs[0]], "training_by_num_envs": training,
                         "updates_per_second": ups, "flops_per_update": timer.flops,
                         "ceiling_updates_per_second": ceiling}
    return figures
