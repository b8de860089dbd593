"""MuJoCo Playground's DM Control Suite tasks on this CPU against dm_control through Gymnasium (shimmy), in one run.

    python benchmarks/playground_speed.py [--task CheetahRun] [--envs 1,16] [--steps 20]
        [--playground-python /tmp/pg-venv/bin/python]

MuJoCo Playground (`pip install playground`, 0.2.0 here; JAX ports of the DM Control Suite on MJX) would let the
compiled loop (softac.compiled) train DMC tasks the way it trains gymnax and Brax. Whether that is worth it on a
CPU depends on one number, the env steps/s of the port, measured here for both of its physics implementations
(`impl="warp"`, its default: MuJoCo Warp kernels compiled for the CPU; `impl="jax"`: MJX in plain JAX), with the
step jitted and vmapped over N environments, next to dm_control's C MuJoCo for the same task through Gymnasium
(`dm_control/<domain>-<task>-v0`, one environment, what softac's Gymnasium loop steps). The port's compilation
is timed apart (first reset and step). The playground measurements run in a separate Python (playground pulls in
warp-lang and ipython; softac's own environment does not need them): `python3 -m venv /tmp/pg-venv &&
/tmp/pg-venv/bin/pip install playground "mujoco<3.18" "mujoco-mjx<3.18"`. Without one they are skipped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

PLAYGROUND_CHILD = r"""
import json, sys, time
import jax, jax.numpy as jnp
from mujoco_playground import registry
task, impl, n, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
env = registry.load(task, config_overrides={"impl": impl})
reset, step = jax.jit(jax.vmap(env.reset)), jax.jit(jax.vmap(env.step))
start = time.perf_counter()
state = reset(jax.random.split(jax.random.PRNGKey(0), n))
action = jnp.zeros((n, env.action_size))
state = step(state, action)
jax.block_until_ready(state.obs)
compile_s = time.perf_counter() - start
start = time.perf_counter()
for _ in range(steps):
    state = step(state, action)
jax.block_until_ready(state.obs)
print(json.dumps({"compile_s": compile_s, "steps_per_s": steps * n / (time.perf_counter() - start)}))
"""

DMC_IDS = {"CheetahRun": "dm_control/cheetah-run-v0", "WalkerRun": "dm_control/walker-run-v0",
           "HopperHop": "dm_control/hopper-hop-v0", "QuadrupedRun": "dm_control/quadruped-run-v0"}


def dm_control_steps_per_s(env_id: str, steps: int = 2000) -> float:
    import numpy as np

    from softac.envs import make_env

    env = make_env(env_id)
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, np.float32)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    env.close()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="CheetahRun", choices=sorted(DMC_IDS))
    parser.add_argument("--envs", default="1,16", help="comma-separated numbers of vmapped playground environments")
    parser.add_argument("--steps", type=int, default=20, help="timed (vmapped) playground steps per measurement")
    parser.add_argument("--playground-python", default="/tmp/pg-venv/bin/python")
    args = parser.parse_args()

    print(f"dm_control through Gymnasium, {DMC_IDS[args.task]}, 1 env: "
          f"{dm_control_steps_per_s(DMC_IDS[args.task]):,.1f} env steps/s")
    for impl in ("warp", "jax"):
        for n in (int(x) for x in args.envs.split(",")):
            try:
                done = subprocess.run([args.playground_python, "-c", PLAYGROUND_CHILD, args.task, impl, str(n),
                                       str(args.steps)], capture_output=True, text=True, timeout=1800)
            except FileNotFoundError:
                print(f"playground skipped: no Python at {args.playground_python} (see this script's docstring)")
                return
            if done.returncode != 0:
                print(f"playground {args.task} impl={impl} envs={n}: failed: {done.stderr.strip().splitlines()[-1]}")
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"playground {args.task} impl={impl} envs={n}: {result['steps_per_s']:,.1f} env steps/s "
                  f"(compilation {result['compile_s']:.1f} s)")


if __name__ == "__main__":
    sys.exit(main())
