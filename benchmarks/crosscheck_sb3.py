"""softac's SAC update against Stable-Baselines3's, step for step, from the same starting point.

Both libraries start from the same parameters (softac's initialisation copied into SB3's torch
networks), see the same minibatches and the same Gaussian noise (SB3's `Normal.rsample` is fed the
eps softac draws from its update key), and take `--steps` gradient steps: SB3 through its own
`SAC.train()`, softac through `SAC.update`. The script prints, per step, both critic, actor and
temperature losses, and at the end the largest difference of every parameter group beside how far
the parameters moved. Agreement to float32 rounding means the two updates are the same algorithm
(loss scaling, order of critic / actor / temperature / target steps, which alpha each uses, Adam,
Polyak); what remains different between the two libraries in training is then the initialisation
(printed last) and the random streams.

Not part of softac's dependencies: run it where softac, `stable-baselines3` and torch are installed:

    python -m venv /tmp/cmp && /tmp/cmp/bin/pip install torch stable-baselines3 -e .
    /tmp/cmp/bin/python benchmarks/crosscheck_sb3.py --steps 20
"""

from __future__ import annotations

import argparse
import math

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import torch as th
import torch.distributions.normal as torch_normal
from stable_baselines3 import SAC as SB3SAC
from stable_baselines3.common.logger import configure as configure_sb3_logger
from stable_baselines3.common.distributions import DiagGaussianDistribution, SquashedDiagGaussianDistribution
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from softac import preset
from softac.algos.base import Batch
from softac.algos.sac.agent import SAC


def dense_layers(params: dict, index: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(kernel [in, out], bias [out])] of an MLP's Dense layers in order; `index` picks one member of
    an ensemble (leading axis)."""
    mlp = params["MLP_0"] if "MLP_0" in params else params
    layers = []
    for name in sorted(mlp, key=lambda n: int(n.split("_")[1])):
        kernel, bias = np.asarray(mlp[name]["kernel"]), np.asarray(mlp[name]["bias"])
        layers.append((kernel, bias) if index is None else (kernel[index], bias[index]))
    return layers


def torch_linears(module: th.nn.Module) -> list[th.nn.Linear]:
    return [m for m in module.modules() if isinstance(m, th.nn.Linear)]


def load_linear(linear: th.nn.Linear, kernel: np.ndarray, bias: np.ndarray) -> None:
    with th.no_grad():
        linear.weight.copy_(th.as_tensor(kernel.T.copy()))
        linear.bias.copy_(th.as_tensor(bias.copy()))


def critic_member(critic_params: dict, index: int) -> list[tuple[np.ndarray, np.ndarray]]:
    (ensemble,) = critic_params.values()
    return dense_layers(ensemble, index)


def copy_softac_into_sb3(state, model: SB3SAC, action_dim: int) -> None:
    """softac's actor (one Dense head of 2A outputs: mean then log_std) and twin critics into SB3's
    actor (latent_pi, mu, log_std) and critic / critic_target (qf0, qf1)."""
    actor = dense_layers(state.actor_params)
    hidden, (head_kernel, head_bias) = actor[:-1], actor[-1]
    for linear, (kernel, bias) in zip(torch_linears(model.actor.latent_pi), hidden):
        load_linear(linear, kernel, bias)
    load_linear(model.actor.mu, head_kernel[:, :action_dim], head_bias[:action_dim])
    load_linear(model.actor.log_std, head_kernel[:, action_dim:], head_bias[action_dim:])
    for net, params in ((model.critic, state.critic_params), (model.critic_target, state.target_critic_params)):
        for i, q_net in enumerate(net.q_networks):
            for linear, (kernel, bias) in zip(torch_linears(q_net), critic_member(params, i)):
                load_linear(linear, kernel, bias)


def as_numpy(tensor: th.Tensor) -> np.ndarray:
    return tensor.detach().numpy().copy()  # a copy: .numpy() shares memory with the live parameter


def sb3_actor_as_softac(model: SB3SAC) -> list[tuple[np.ndarray, np.ndarray]]:
    layers = [(as_numpy(m.weight).T, as_numpy(m.bias)) for m in torch_linears(model.actor.latent_pi)]
    head_kernel = np.concatenate([as_numpy(model.actor.mu.weight).T, as_numpy(model.actor.log_std.weight).T], 1)
    head_bias = np.concatenate([as_numpy(model.actor.mu.bias), as_numpy(model.actor.log_std.bias)])
    return layers + [(head_kernel, head_bias)]


def sb3_critic_as_softac(net: th.nn.Module, index: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(as_numpy(m.weight).T, as_numpy(m.bias)) for m in torch_linears(net.q_networks[index])]


def exact_squashed_log_prob(self, actions: th.Tensor, gaussian_actions: th.Tensor) -> th.Tensor:
    """SB3's squashed-Gaussian log-prob with softac's exact log|det| 2(log 2 - u - softplus(-2u)) in place
    of SB3's log(1 - tanh(u)^2 + 1e-6)."""
    u = gaussian_actions
    log_det = 2.0 * (math.log(2.0) - u - th.nn.functional.softplus(-2.0 * u))
    return DiagGaussianDistribution.log_prob(self, u) - th.sum(log_det, dim=1)


def max_difference(a: list, b: list) -> float:
    return max(float(np.max(np.abs(x - y))) for pa, pb in zip(a, b) for x, y in zip(pa, pb))


def random_batches(rng: np.random.Generator, steps: int, batch_size: int, obs_dim: int, action_dim: int) -> list[Batch]:
    return [Batch(obs=rng.normal(size=(batch_size, obs_dim)).astype(np.float32),
                  action=rng.uniform(-1, 1, size=(batch_size, action_dim)).astype(np.float32),
                  reward=rng.normal(size=batch_size).astype(np.float32),
                  next_obs=rng.normal(size=(batch_size, obs_dim)).astype(np.float32),
                  terminated=(rng.uniform(size=batch_size) < 0.1).astype(np.float32)) for _ in range(steps)]


def update_noise(key: jax.Array, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, jax.Array]:
    """The eps softac's `SAC.update` draws from its state key: (for the actor step, for a', next key)."""
    next_state_key, next_key, actor_key = jax.random.split(key, 3)
    return (np.asarray(jax.random.normal(actor_key, shape)), np.asarray(jax.random.normal(next_key, shape)),
            next_state_key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sb3-exact-log-prob", action="store_true",
                        help="give SB3 the exact log-prob of the squashed Gaussian (SB3 adds 1e-6 inside the log)")
    args = parser.parse_args()
    if args.sb3_exact_log_prob:
        SquashedDiagGaussianDistribution.log_prob = exact_squashed_log_prob

    env = gym.make(args.env)
    obs_dim, action_dim = env.observation_space.shape[0], env.action_space.shape[0]
    cfg = preset("halfcheetah").replace(env=args.env)
    agent = SAC(cfg.with_algorithm_defaults(), obs_dim, action_dim)
    state = agent.init(jax.random.PRNGKey(args.seed))
    start_actor, start_critic = dense_layers(state.actor_params), [critic_member(state.critic_params, i) for i in range(2)]

    model = SB3SAC("MlpPolicy", env, learning_rate=cfg.learning_rate, buffer_size=1000, learning_starts=0,
                   batch_size=cfg.batch_size, tau=cfg.tau, gamma=cfg.gamma, ent_coef="auto",
                   policy_kwargs={"net_arch": list(cfg.hidden_sizes)}, seed=args.seed, verbose=0)
    sb3_init_actor = sb3_actor_as_softac(model)
    copy_softac_into_sb3(state, model, action_dim)
    model.set_logger(configure_sb3_logger(None, []))

    batches = random_batches(np.random.default_rng(args.seed), args.steps, cfg.batch_size, obs_dim, action_dim)
    update = jax.jit(agent.update)
    key = state.key
    noise = []  # SB3 draws the actor-step eps first, then the a' eps
    for _ in range(args.steps):
        actor_eps, next_eps, key = update_noise(key, (cfg.batch_size, action_dim))
        noise += [actor_eps, next_eps]
    feed = iter(noise)

    def standard_normal(shape, dtype, device):
        return th.as_tensor(next(feed).copy(), dtype=dtype, device=device).reshape(shape)

    torch_normal._standard_normal = standard_normal
    losses_sb3 = []
    for batch in batches:
        samples = ReplayBufferSamples(observations=th.as_tensor(batch.obs), actions=th.as_tensor(batch.action),
                                      next_observations=th.as_tensor(batch.next_obs),
                                      dones=th.as_tensor(batch.terminated)[:, None],
                                      rewards=th.as_tensor(batch.reward)[:, None])
        model.replay_buffer.sample = lambda *_, samples=samples, **__: samples
        model.train(gradient_steps=1, batch_size=cfg.batch_size)
        values = model.logger.name_to_value
        losses_sb3.append((values["train/critic_loss"], values["train/actor_loss"], values["train/ent_coef_loss"]))

    print(f"{args.env}, {args.steps} gradient steps, batch {cfg.batch_size}, lr {cfg.learning_rate}, tau {cfg.tau}; "
          f"SB3 log-prob: {'exact (patched)' if args.sb3_exact_log_prob else 'as shipped, log(1 - tanh(u)^2 + 1e-6)'}")
    print(f"{'step':>4}  {'critic loss softac / SB3':>28}  {'actor loss softac / SB3':>28}  {'alpha loss softac / SB3':>30}")
    for step, batch in enumerate(batches):
        state, info = update(state, Batch(*map(jnp.asarray, batch)))
        c, a, t = losses_sb3[step]
        print(f"{step:>4}  {float(info['critic_loss']):>13.6f} {c:>13.6f}  {float(info['actor_loss']):>13.6f} {a:>13.6f}"
              f"  {float(info['alpha_loss']):>14.8f} {t:>14.8f}")

    rows = [("actor", dense_layers(state.actor_params), sb3_actor_as_softac(model), start_actor)]
    for i in range(2):
        rows.append((f"critic {i}", critic_member(state.critic_params, i), sb3_critic_as_softac(model.critic, i), start_critic[i]))
        rows.append((f"target critic {i}", critic_member(state.target_critic_params, i),
                     sb3_critic_as_softac(model.critic_target, i), start_critic[i]))
    print(f"\n{'parameters':<16} {'max |softac - SB3|':>19} {'max |moved|':>12}")
    for name, ours, theirs, start in rows:
        print(f"{name:<16} {max_difference(ours, theirs):>19.3e} {max_difference(ours, start):>12.3e}")
    print(f"{'log alpha':<16} {abs(float(state.log_alpha) - model.log_ent_coef.item()):>19.3e} "
          f"{abs(float(state.log_alpha)):>12.3e}")

    print("\nInitialisation (the one difference left): std of each actor layer's weights")
    print("  softac (flax lecun_normal, zero bias):  " + ", ".join(f"{k.std():.4f}" for k, _ in start_actor))
    print("  SB3 (torch U(-1/sqrt(fan_in), +), bias too): " + ", ".join(f"{k.std():.4f}" for k, _ in sb3_init_actor))


if __name__ == "__main__":
    main()
