"""softac's compiled loop (softac.compiled) beside rejax's SAC on gymnax Pendulum-v1, in one run.

    python benchmarks/compiled_loop.py [--steps 8192] [--seeds 1,5] [--rejax-python /tmp/rejax-venv/bin/python]

Same hyperparameters for both (the issue's): 256-256 ReLU networks, lr 1e-3, batch 256, one gradient step
per env step, 1,000 warm-up steps, a buffer holding every transition, one evaluation at the end. Every
measurement is a fresh process (imports, compilation and evaluation included in its wall time), run one
after another, never two at once. rejax 0.1.3 needs gymnax < 1.0, so it runs with the Python of a separate
virtual environment (`python3 -m venv /tmp/rejax-venv && /tmp/rejax-venv/bin/pip install rejax==0.1.3
"gymnax<1.0"`); without one it is skipped with a message.

Printed for each (implementation, number of seeds): wall time of the process, env steps/s over that wall
time (all seeds), the final evaluation return (mean over seeds: softac's 10 deterministic episodes, rejax's
128 episodes of its evaluation), and for softac: the steady env steps/s after compilation (from metrics.csv),
XLA's FLOP count of one env step with its update (env, acting, replay sampling and the update, every seed;
`CompiledTrain.update_step`) and the fraction of the FLOP ceiling reached: the ceiling is the FP32 matmul rate
that `softac bench` measures (softac.throughput.matmul_rate on the update's dense shapes) over those FLOPs.
`--gymnasium` adds softac's Gymnasium loop on Pendulum-v1 with the same settings.

    python benchmarks/compiled_loop.py --steady 8 [--seeds 1,5]

instead measures, in one process, the steady env steps/s of the compiled loop after the warm-up in chunks of
256 steps, each right after a measurement of the matmul rate, and prints each chunk's fraction of the FLOP
ceiling and their median: on a shared machine the matmul rate moves by +-15% from minute to minute, so the
fraction is only meaningful between measurements taken together.

    python benchmarks/compiled_loop.py --time-to-threshold [--preset pendulum-fast] [--seeds 1,5]

instead times `softac train --preset pendulum-fast --stop-at-eval-return -200` from the command's start to its
exit (imports, compilation, evaluations, checkpoint and plot included): the wall time until every seed's
deterministic evaluation (10 episodes) reached -200, for the compiled loop (gymnax:Pendulum-v1) and, beside
it, the same preset on the Gymnasium loop (Pendulum-v1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

REJAX_SCRIPT = r"""
import json, sys, time
start = time.time()
import jax, jax.numpy as jnp
from rejax import SAC
steps, seeds, hidden, lr, batch, warmup = json.loads(sys.argv[1])
algo = SAC.create(env="Pendulum-v1", total_timesteps=steps, eval_freq=steps, skip_initial_evaluation=True,
                  learning_rate=lr, batch_size=batch, fill_buffer=warmup, buffer_size=steps,
                  hidden_layer_sizes=tuple(hidden), num_envs=1)
keys = jax.random.split(jax.random.PRNGKey(0), seeds)
train = jax.jit(jax.vmap(algo.train))
ts, (lengths, returns) = train(keys)
returns = jax.block_until_ready(returns)
print(json.dumps({"train_seconds": time.time() - start, "eval_return": float(returns[:, -1].mean())}))
"""

SOFTAC_SCRIPT = r"""
import json, sys, tempfile, time
start = time.time()
import jax, jax.numpy as jnp
from softac.config import SACConfig
from softac.logger import read_metrics
from softac.train import train
env, steps, seeds, hidden, lr, batch, warmup, log_every = json.loads(sys.argv[1])
with tempfile.TemporaryDirectory() as root:
    cfg = SACConfig(env=env, seeds=tuple(range(seeds)) if seeds > 1 else None, total_steps=steps,
                    hidden_sizes=tuple(hidden), learning_rate=lr, batch_size=batch, learning_starts=warmup,
                    buffer_size=steps, eval_every=0, eval_episodes=10, log_every=log_every, checkpoint_every=0,
                    run_root=root, progress=False, tensorboard=False)
    run_dirs = train(cfg)
    seconds = time.time() - start
    rows = [read_metrics(d) for d in run_dirs]
steady = [r for r in rows[0] if warmup + log_every < r["env_step"]]
steady_rate = (sum(log_every for _ in steady) / sum(log_every / r["steps_per_second"] for r in steady)
               if steady else None)
print(json.dumps({"train_seconds": seconds, "eval_return": sum(r[-1]["eval_return_mean"] for r in rows) / len(rows),
                  "steady_steps_per_second": steady_rate}))
"""


def run_process(python: str, script: str, args: list) -> dict:
    """Run `script` in a fresh process; returns its JSON line with the process's wall time added."""
    start = time.time()
    result = subprocess.run([python, "-c", script, json.dumps(args)], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})
    wall = time.time() - start
    if result.returncode != 0:
        raise RuntimeError(f"{python} failed:\n{result.stderr[-3000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    figures["wall_seconds"] = wall
    return figures


def flop_ceiling(steps: int, seeds: int, hidden, lr, batch, warmup) -> tuple[float, float]:
    """(XLA FLOPs of one env step with its update, every seed; FP32 matmul FLOP/s on the update's shapes)."""
    import jax

    from softac.algos.registry import get_spec, make_agent, resolve_algo
    from softac.compiled.envs import make_jax_env
    from softac.compiled.loop import make_train
    from softac.config import SACConfig
    from softac.throughput import dense_shapes, matmul_rate

    cfg = SACConfig(env="gymnax:Pendulum-v1", seeds=tuple(range(seeds)) if seeds > 1 else None, total_steps=steps,
                    hidden_sizes=tuple(hidden), learning_rate=lr, batch_size=batch, learning_starts=warmup,
                    buffer_size=steps)
    env = make_jax_env(cfg.env)
    cfg = resolve_algo(cfg, env.spec)
    agent = make_agent(cfg, env.obs_dim, env.spec.dim)
    program = make_train(cfg, env, agent, get_spec(cfg.algo).metrics)
    state = program.init(cfg.seed_list)
    analysis = jax.jit(program.update_step).lower(state).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    return float(analysis["flops"]), matmul_rate(dense_shapes(agent))


def time_to_threshold(preset: str, seed_counts: list[int], threshold: float) -> None:
    """Print the wall time of `softac train --preset <preset> --stop-at-eval-return <threshold>` (a fresh process,
    from its start to its exit) and the env step at which it stopped, compiled and Gymnasium loops side by side."""
    from softac.logger import read_metrics

    print(f"softac train --preset {preset} --stop-at-eval-return {threshold}: wall time of the command")
    for seeds in seed_counts:
        for env in ("gymnax:Pendulum-v1", "Pendulum-v1"):
            with tempfile.TemporaryDirectory() as root:
                argv = [sys.executable, "-m", "softac.cli", "train", "--preset", preset, "--env", env,
                        "--stop-at-eval-return", str(threshold), "--run-root", root, "--no-progress",
                        "--no-tensorboard", "--seeds", ",".join(str(k) for k in range(seeds))]
                start = time.time()
                result = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT,
                                        env={**os.environ, "JAX_PLATFORMS": "cpu", "MPLBACKEND": "Agg"})
                wall = time.time() - start
                if result.returncode != 0:
                    raise RuntimeError(result.stderr[-3000:])
                runs = [d for d in Path(root).iterdir() if d.is_dir()]
                rows = [read_metrics(d) for d in runs]
                last = [[r for r in rs if r["eval_return_mean"] is not None][-1] for rs in rows]
                reached = all(r["eval_return_mean"] >= threshold for r in last)
                evaluations = ", ".join(f"{r['eval_return_mean']:.0f}" for r in last)
                print(f"{env:20} {seeds} seed(s): {wall:6.1f} s, stopped at env step {int(last[0]['env_step'])}, "
                      f"last evaluations {evaluations}"
                      f"{'' if reached else ' (threshold NOT reached)'}", flush=True)


def steady_fraction(seed_counts: list[int], hidden: list[int], lr: float, batch: int, warmup: int,
                    reps: int, chunk: int = 256) -> None:
    """In one process, for each number of seeds: the compiled loop's env steps/s after the warm-up (chunks of
    `chunk` steps with their updates) and its fraction of the FLOP ceiling, the matmul rate measured right
    before each chunk, so each fraction compares the two under the same load; prints every repetition and the
    median fraction."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from softac.algos.registry import get_spec
    from softac.compiled.loop import make_train
    from softac.compiled.run import build
    from softac.config import SACConfig
    from softac.throughput import dense_shapes, matmul_rate

    for seeds in seed_counts:
        cfg = SACConfig(env="gymnax:Pendulum-v1", seeds=tuple(range(seeds)) if seeds > 1 else None,
                        hidden_sizes=tuple(hidden), learning_rate=lr, batch_size=batch, learning_starts=warmup,
                        buffer_size=warmup + (reps + 1) * chunk, total_steps=warmup + (reps + 1) * chunk)
        cfg, env, agent = build(cfg)
        program = make_train(cfg, env, agent, get_spec(cfg.algo).metrics)
        state = program.init(cfg.seed_list)
        flops = jax.jit(program.update_step).lower(state).compile().cost_analysis()
        flops = float((flops[0] if isinstance(flops, list) else flops)["flops"])
        state, _ = program.train_chunk(state, jnp.int32(warmup + chunk))  # warm-up, compile, first updates
        jax.block_until_ready(state)
        fractions = []
        for rep in range(reps):
            rate = matmul_rate(dense_shapes(agent))
            start = time.perf_counter()
            state, _ = program.train_chunk(state, jnp.int32(chunk))
            jax.block_until_ready(state)
            steps_per_second = seeds * chunk / (time.perf_counter() - start)
            ceiling = seeds * rate / flops
            fractions.append(steps_per_second / ceiling)
            print(f"softac compiled, {seeds} seed(s), repetition {rep + 1}: {steps_per_second:7.1f} env steps/s "
                  f"(all seeds), ceiling {ceiling:7.1f} (matmul {rate / 1e9:.1f} GFLOP/s, {flops / 1e6:.1f} MFLOP per "
                  f"env step), fraction {fractions[-1]:.1%}", flush=True)
        print(f"softac compiled, {seeds} seed(s): median fraction of the FLOP ceiling {np.median(fractions):.1%} "
              f"over {reps} repetitions", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8192)
    parser.add_argument("--seeds", default="1,5", help="comma-separated numbers of seeds to train at once")
    parser.add_argument("--hidden", default="256,256")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--log-every", type=int, default=1024)
    parser.add_argument("--rejax-python", default="/tmp/rejax-venv/bin/python")
    parser.add_argument("--gymnasium", action="store_true", help="also time softac's Gymnasium loop (Pendulum-v1)")
    parser.add_argument("--time-to-threshold", action="store_true",
                        help="time softac train --preset PRESET --stop-at-eval-return -200 instead")
    parser.add_argument("--preset", default="pendulum-fast")
    parser.add_argument("--steady", type=int, default=0, metavar="REPS",
                        help="instead: the steady fraction of the FLOP ceiling, REPS chunks each beside its own "
                             "matmul-rate measurement, in one process")
    args = parser.parse_args()
    if args.steady:
        steady_fraction([int(n) for n in args.seeds.split(",")], [int(h) for h in args.hidden.split(",")], args.lr,
                        args.batch, args.warmup, args.steady)
        return
    if args.time_to_threshold:
        time_to_threshold(args.preset, [int(n) for n in args.seeds.split(",")], -200.0)
        return
    hidden = [int(h) for h in args.hidden.split(",")]
    seed_counts = [int(n) for n in args.seeds.split(",")]
    have_rejax = Path(args.rejax_python).exists()
    print(f"Pendulum-v1, {args.steps} env steps per seed, networks {args.hidden}, lr {args.lr}, batch {args.batch}, "
          f"UTD 1, {args.warmup} warm-up steps; wall time of a fresh process (imports, compilation, evaluation)")
    if not have_rejax:
        print(f"rejax: skipped ({args.rejax_python} does not exist; see this script's docstring)")
    header = f"{'':34} {'wall s':>8} {'env steps/s':>12} {'eval':>8} {'steady/s':>9} {'ceiling/s':>10} {'fraction':>9}"
    print(header)
    for seeds in seed_counts:
        common = [args.steps, seeds, hidden, args.lr, args.batch, args.warmup]
        rows = []
        if have_rejax:
            rows.append((f"rejax SAC, gymnax, {seeds} seed(s)", run_process(args.rejax_python, REJAX_SCRIPT, common),
                         None))
        softac = run_process(sys.executable, SOFTAC_SCRIPT, ["gymnax:Pendulum-v1"] + common + [args.log_every])
        flops, rate = flop_ceiling(*common)
        rows.append((f"softac compiled, gymnax, {seeds} seed(s)", softac, (flops, rate)))
        if args.gymnasium:
            rows.append((f"softac Gymnasium loop, {seeds} seed(s)",
                         run_process(sys.executable, SOFTAC_SCRIPT, ["Pendulum-v1"] + common + [args.log_every]), None))
        for name, fig, ceiling in rows:
            total_rate = seeds * args.steps / fig["wall_seconds"]
            line = f"{name:34} {fig['wall_seconds']:8.1f} {total_rate:12.1f} {fig['eval_return']:8.1f}"
            steady = fig.get("steady_steps_per_second")
            if steady is not None:
                line += f" {seeds * steady:9.1f}"
            if ceiling is not None:
                flops, rate = ceiling
                ceiling_rate = rate / flops * seeds  # env steps/s, all seeds, at the measured matmul rate
                line += f" {ceiling_rate:10.1f} {seeds * steady / ceiling_rate:9.1%}"
                line += f"   ({flops / 1e6:.1f} MFLOP per step of {seeds} seed(s), matmul {rate / 1e9:.1f} GFLOP/s)"
            print(line, flush=True)
        if have_rejax:
            ratio = rows[1][1]["wall_seconds"] and rows[0][1]["wall_seconds"] / rows[1][1]["wall_seconds"]
            print(f"softac compiled / rejax env steps/s, {seeds} seed(s): {ratio:.2f}x", flush=True)


if __name__ == "__main__":
    main()
