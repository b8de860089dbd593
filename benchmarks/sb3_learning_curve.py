"""Stable-Baselines3's SAC learning curve with softac's `mujoco-short` settings, to put beside softac's.

Same hyperparameters as the suite (published SAC v2: 256-256 ReLU, Adam 3e-4, batch 256, buffer 1e6,
tau 0.005, gamma 0.99, one gradient step per env step, learned temperature towards -|A|, 5000 uniform
warm-up steps) and the same evaluation (every `--eval-every` env steps, 10 deterministic episodes on a
separate environment). Prints one line per evaluation and writes them to `--out` as CSV.

Not part of softac's dependencies: run it where torch and stable-baselines3 are installed, e.g.

    python -m venv /tmp/cmp && /tmp/cmp/bin/pip install torch stable-baselines3 "gymnasium[mujoco]"
    /tmp/cmp/bin/python benchmarks/sb3_learning_curve.py --env Hopper-v5 --total-steps 100000 --seed 0
"""

from __future__ import annotations

import argparse
import csv
import time

import gymnasium as gym
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.evaluation import evaluate_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--total-steps", type=int, default=100_000)
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default="sb3_learning_curve.csv")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = SAC("MlpPolicy", gym.make(args.env), learning_rate=3e-4, buffer_size=1_000_000, learning_starts=5000,
                batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto",
                policy_kwargs={"net_arch": [256, 256]}, seed=args.seed, verbose=0)
    eval_env = gym.make(args.env)
    eval_env.reset(seed=10_000 + args.seed)
    start = time.time()
    with open(args.out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["env_step", "wall_time", "eval_return_mean", "eval_return_std"])
        while model.num_timesteps < args.total_steps:
            model.learn(args.eval_every, reset_num_timesteps=False)
            mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
            wall = time.time() - start
            writer.writerow([model.num_timesteps, f"{wall:.1f}", f"{mean:.1f}", f"{std:.1f}"])
            f.flush()
            print(f"SB3 {args.env} seed {args.seed}: env step {model.num_timesteps}, {wall / 60:.1f} min, "
                  f"evaluation return {mean:.1f} +- {std:.1f}", flush=True)


if __name__ == "__main__":
    main()
