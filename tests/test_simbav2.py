"""SimbaV2 (softac.algos.simbav2): the categorical projection against a direct float64 computation, the weight
projection onto the unit sphere, the running observation and return statistics against a direct computation
(and both loops feeding them), the learning-rate schedule's length, the numpy export of the actor with its
observation normalisation, bad hyperparameters, and a learning test on Pendulum-v1."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softac.algos.base import Batch
from softac.algos.registry import make_agent
from softac.algos.simbav2 import losses, running_stats
from softac.algos.simbav2.agent import updates_in_training
from softac.algos.simbav2.networks import project_weights
from softac.checkpoint import load_checkpoint
from softac.config import SACConfig
from softac.errors import SoftacError
from softac.evaluate import read_run_config
from softac.logger import read_metrics
from softac.numpy_policy import NumpyPolicy
from softac.callbacks import Callback
from softac.train import resume, train
from tests.conftest import SMALL_NETWORKS, tiny_config
from tests.helpers import assert_trees_equal

OBS_DIM, ACTION_DIM = 3, 2


def small_agent(**changes):
    cfg = SACConfig.build(env="Pendulum-v1", algo="simbav2", total_steps=1000, learning_starts=100,
                          **{**SMALL_NETWORKS["simbav2"], **changes})
    return make_agent(cfg, OBS_DIM, ACTION_DIM)


def random_batch(seed: int, size: int = 16) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(obs=jnp.asarray(rng.normal(1.0, 2.0, (size, OBS_DIM)), jnp.float32),
                 action=jnp.asarray(rng.uniform(-1, 1, (size, ACTION_DIM)), jnp.float32),
                 reward=jnp.asarray(rng.normal(size=size), jnp.float32),
                 next_obs=jnp.asarray(rng.normal(1.0, 2.0, (size, OBS_DIM)), jnp.float32),
                 terminated=jnp.asarray(rng.uniform(size=size) < 0.3, jnp.float32))


# ------------------------------------------------------------------------------ categorical projection
def projection_by_loops(probs, reward, terminated, entropy_term, discount, atoms):
    """Float64, atom by atom: move z_j to clip(r + discount (1 - d)(z_j - e), v_min, v_max) and split p_j between
    the atoms below and above it in proportion to closeness (all of it when it lands on an atom)."""
    batch, num_bins = probs.shape
    v_min, v_max = atoms[0], atoms[-1]
    dz = (v_max - v_min) / (num_bins - 1)
    out = np.zeros((batch, num_bins))
    for b in range(batch):
        for j in range(num_bins):
            moved = reward[b] + discount[b] * (1.0 - terminated[b]) * (atoms[j] - entropy_term[b])
            moved = min(max(moved, v_min), v_max)
            position = (moved - v_min) / dz
            low, high = int(math.floor(position)), int(math.ceil(position))
            if low == high:
                out[b, low] += probs[b, j]
            else:
                out[b, low] += probs[b, j] * (high - position)
                out[b, high] += probs[b, j] * (position - low)
    return out


@pytest.mark.parametrize("per_transition_discount", [False, True])
def test_the_categorical_projection_matches_a_direct_computation(per_transition_discount):
    rng = np.random.default_rng(0)
    batch, num_bins = 12, 11
    atoms = np.linspace(-5.0, 5.0, num_bins)
    logits = rng.normal(size=(batch, num_bins))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    reward = rng.normal(0.0, 3.0, batch)
    reward[0], reward[1] = 20.0, -20.0  # every atom clipped at the top, at the bottom
    reward[2] = 0.5  # with discount 1, no entropy term: lands exactly on atoms
    terminated = (rng.uniform(size=batch) < 0.3).astype(np.float64)
    terminated[2] = 0.0
    entropy_term = rng.normal(0.0, 0.5, batch)
    entropy_term[2] = 0.0
    discount = rng.uniform(0.9, 1.0, batch) if per_transition_discount else np.ones(batch)
    discount[2] = 1.0
    got = losses.categorical_projection(
        jnp.asarray(probs, jnp.float32), jnp.asarray(reward, jnp.float32), jnp.asarray(terminated, jnp.float32),
        jnp.asarray(entropy_term, jnp.float32),
        jnp.asarray(discount, jnp.float32) if per_transition_discount else 1.0,
        losses.support(num_bins, -5.0, 5.0))
    want = projection_by_loops(probs, reward, terminated, entropy_term, discount, atoms)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, atol=2e-6)
    np.testing.assert_allclose(np.asarray(got).sum(-1), 1.0, atol=1e-5)
    assert np.asarray(got)[0, -1] == pytest.approx(1.0) and np.asarray(got)[1, 0] == pytest.approx(1.0)


def test_the_target_distribution_is_the_critic_with_the_lowest_expected_value():
    rng = np.random.default_rng(1)
    atoms = losses.support(7, -1.0, 1.0)
    logits = jnp.asarray(rng.normal(size=(2, 5, 7)), jnp.float32)
    got = np.asarray(losses.min_q_distribution(logits, atoms))
    probs = np.asarray(jax.nn.softmax(logits, axis=-1), np.float64)
    q = (probs * np.asarray(atoms, np.float64)).sum(-1)  # [2, 5]
    np.testing.assert_allclose(got, probs[np.argmin(q, axis=0), np.arange(5)], atol=1e-6)


def test_the_critic_loss_and_expected_value_match_a_direct_float64_computation():
    rng = np.random.default_rng(2)
    atoms = losses.support(101, -5.0, 5.0)
    logits = jnp.asarray(3 * rng.normal(size=(2, 8, 101)), jnp.float32)
    target = rng.random((8, 101))
    target /= target.sum(-1, keepdims=True)
    loss, info = losses.categorical_critic_loss(logits, jnp.asarray(target, jnp.float32), atoms)
    z = np.asarray(logits, np.float64)
    log_probs = z - z.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    expected_loss = (-(target[None] * log_probs).sum(-1)).mean(-1).sum()  # sum over critics of E_B[-sum_k m log p]
    np.testing.assert_allclose(float(loss), expected_loss, rtol=1e-5)
    q = (np.exp(log_probs) * np.asarray(atoms, np.float64)).sum(-1)
    np.testing.assert_allclose(np.asarray(losses.expected_value(logits, atoms)), q, atol=1e-5)
    np.testing.assert_allclose(float(info["q_mean"]), q.mean(), atol=1e-5)
    # the gradients: d loss / d logits = (softmax - m) / B per critic; d Q / d logits = p (z - Q)
    grad = jax.grad(lambda z: losses.categorical_critic_loss(z, jnp.asarray(target, jnp.float32), atoms)[0])(logits)
    probs = np.exp(log_probs)
    np.testing.assert_allclose(np.asarray(grad), (probs * target.sum(-1, keepdims=True) - target[None]) / 8, atol=1e-6)
    q_grad = jax.grad(lambda z: jnp.sum(losses.expected_value(z, atoms)))(logits)
    np.testing.assert_allclose(np.asarray(q_grad), probs * (np.asarray(atoms, np.float64) - q[..., None]), atol=1e-5)


# ------------------------------------------------------------------------------ weight projection
def hyper_dense_kernels(params) -> dict:
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf, np.float64) for path, leaf in flat
            if "HyperDense" in jax.tree_util.keystr(path) and jax.tree_util.keystr(path).endswith("['kernel']")}


def test_after_an_update_every_projected_weight_vector_has_unit_norm():
    agent = small_agent(critic_num_blocks=2)
    state = agent.init(jax.random.PRNGKey(0))
    new_state, _ = jax.jit(agent.update)(state, random_batch(0))
    for name, params, before in (("actor", new_state.actor_params, state.actor_params),
                                 ("critic", new_state.critic_params, state.critic_params)):
        kernels, old = hyper_dense_kernels(params), hyper_dense_kernels(before)
        # actor: embedder, 2 per block, 2 per head; critics: embedder, 2 per block, 2 in the head
        assert len(kernels) == (1 + 2 + 4 if name == "actor" else 1 + 4 + 2), sorted(kernels)
        for path, kernel in kernels.items():
            # W [in, out] (critics [N, in, out]): each output unit's weight vector, over the input axis, has norm 1.
            np.testing.assert_allclose(np.linalg.norm(kernel, axis=-2), 1.0, atol=1e-5, err_msg=f"{name}{path}")
            assert not np.allclose(kernel, old[path]), f"{name}{path} did not change"
    assert all(k.ndim == 3 and k.shape[0] == 2 for k in hyper_dense_kernels(new_state.critic_params).values())  # twins
    # Scalers and biases are not projected.
    params = {"HyperDense_0": {"kernel": jnp.full((3, 2), 2.0)}, "Scaler_0": {"scaler": jnp.full((2,), 2.0)}}
    projected = project_weights(params)
    np.testing.assert_allclose(projected["HyperDense_0"]["kernel"], 1.0 / math.sqrt(3), rtol=1e-6)
    np.testing.assert_array_equal(projected["Scaler_0"]["scaler"], params["Scaler_0"]["scaler"])


# ------------------------------------------------------------------------------ running statistics
def pooled_moments(values: np.ndarray):
    """Mean and variance of the prior (mean 0, var 1, weight COUNT_EPS) pooled with `values` [n, ...]."""
    eps, n = running_stats.COUNT_EPS, values.shape[0]
    mean = values.sum(0) / (eps + n)
    var = (eps * (1.0 + mean ** 2) + ((values - mean) ** 2).sum(0)) / (eps + n)
    return mean, var, eps + n


def test_the_running_statistics_match_a_direct_computation():
    agent = small_agent(num_envs=2, gamma=0.9, return_bound=2.0)
    state = agent.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(3)
    steps, envs = 9, 2
    obs = rng.normal(2.0, 3.0, (steps, envs, OBS_DIM))
    reward = rng.normal(1.0, 2.0, (steps, envs))
    terminated, truncated = np.zeros((steps, envs)), np.zeros((steps, envs))
    terminated[3, 0] = 1.0  # env 0's episode ends at step 3
    truncated[5, 1] = 1.0  # env 1's is cut off at step 5
    observe = jax.jit(agent.observe)
    for t in range(steps):
        state = observe(state, *(jnp.asarray(x[t], jnp.float32) for x in (obs, reward, terminated, truncated)))

    mean, var, count = pooled_moments(obs.reshape(-1, OBS_DIM))
    np.testing.assert_allclose(state.obs_stats["mean"], mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state.obs_stats["var"], var, rtol=1e-5)
    np.testing.assert_allclose(state.obs_stats["count"], count, rtol=1e-6)

    returns, g = np.zeros((steps, envs)), np.zeros(envs)
    for t in range(steps):
        done = np.maximum(terminated[t], truncated[t])
        g = 0.9 * (1.0 - done) * g + reward[t]
        returns[t] = g
    mean, var, count = pooled_moments(returns.reshape(-1))
    stats = state.return_stats
    np.testing.assert_allclose(stats["discounted_return"], returns[-1], rtol=1e-5)
    np.testing.assert_allclose(stats["moments"]["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(stats["moments"]["var"], var, rtol=1e-5)
    np.testing.assert_allclose(stats["max_abs_return"], np.abs(returns).max(), rtol=1e-6)
    want_scale = max(math.sqrt(var + running_stats.RETURN_EPS), np.abs(returns).max() / 2.0)
    np.testing.assert_allclose(running_stats.reward_scale(stats, 2.0), want_scale, rtol=1e-5)

    # The update scales the batch's rewards by it.
    _, metrics = jax.jit(agent.update)(state, random_batch(0))
    np.testing.assert_allclose(metrics["reward_divisor"], want_scale, rtol=1e-5)


def test_switched_off_normalisation_leaves_the_statistics_alone():
    agent = small_agent(normalize_observations=False, normalize_rewards=False)
    state = agent.init(jax.random.PRNGKey(0))
    after = agent.observe(state, jnp.ones((1, OBS_DIM)), jnp.ones(1), jnp.zeros(1), jnp.zeros(1))
    np.testing.assert_array_equal(after.obs_stats["count"], state.obs_stats["count"])
    np.testing.assert_array_equal(after.return_stats["max_abs_return"], 0.0)
    _, metrics = agent.update(state, random_batch(0))
    assert float(metrics["reward_divisor"]) == 1.0


@pytest.mark.parametrize("env, num_envs", [("Pendulum-v1", 1), ("Pendulum-v1", 2), ("gymnax:Pendulum-v1", 1)])
def test_both_loops_feed_the_statistics_once_per_env_step(tmp_path, env, num_envs):
    """250 env steps (a time limit of 200 inside): the statistics hold every observation acted on, reset ones
    included (the buffer's observations after the first step's, then the current ones), and every step's
    return."""
    if env.startswith("gymnax"):
        pytest.importorskip("gymnax")
    cfg = tiny_config(tmp_path, env=env, algo="simbav2", total_steps=250, learning_starts=100, checkpoint_every=0,
                      eval_every=0, buffer_size=1000, num_envs=num_envs)
    run_dir = train(cfg)[0]
    cfg = read_run_config(run_dir)
    agent = make_agent(cfg, 3, 1)
    state, buffer, loop = load_checkpoint(run_dir, agent.init(jax.random.PRNGKey(0)), agent.policy_fields)
    np.testing.assert_allclose(state.obs_stats["count"], running_stats.COUNT_EPS + 250, rtol=1e-6)
    np.testing.assert_allclose(state.return_stats["moments"]["count"], running_stats.COUNT_EPS + 250, rtol=1e-6)
    assert np.asarray(state.return_stats["discounted_return"]).shape == (num_envs,)
    current = np.asarray(loop["obs"], np.float64).reshape(-1, 3)
    observed = np.concatenate([np.asarray(buffer["data"]["obs"], np.float64)[num_envs:250], current])
    mean, var, _ = pooled_moments(observed)
    np.testing.assert_allclose(state.obs_stats["mean"], mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state.obs_stats["var"], var, rtol=1e-4)
    assert loop["updates_done"] == updates_in_training(cfg) == 2 * 150  # the schedule's length is the training's


class StopAtStep(Callback):
    def on_log(self, step, rows):
        return step >= 150


def test_the_compiled_loop_resumes_exactly_with_the_statistics(tmp_path):
    pytest.importorskip("gymnax")
    cfg = dict(env="gymnax:Pendulum-v1", algo="simbav2", total_steps=300, learning_starts=100, eval_every=0,
               log_every=50, buffer_size=1000)
    straight = train(tiny_config(tmp_path, run_name="straight", **cfg))[0]
    stopped = train(tiny_config(tmp_path, run_name="stopped", **cfg), callbacks=[StopAtStep()])[0]
    resumed = resume([stopped])[0]
    agent = make_agent(read_run_config(straight), 3, 1)
    template = agent.init(jax.random.PRNGKey(0))
    expected, _, _ = load_checkpoint(straight, template, agent.policy_fields)
    got, _, loop = load_checkpoint(resumed, template, agent.policy_fields)
    assert loop["step"] == 300
    assert_trees_equal(got, expected)


# ------------------------------------------------------------------------------ export
def test_the_numpy_policy_equals_the_live_policy_with_its_observation_statistics():
    agent = small_agent(actor_num_blocks=2, actor_hidden_dim=24)
    state = agent.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    for _ in range(5):  # statistics far from (0, 1)
        state = agent.observe(state, jnp.asarray(rng.normal(4.0, 0.5, (1, OBS_DIM)), jnp.float32), jnp.ones(1),
                              jnp.zeros(1), jnp.zeros(1))
    update = jax.jit(agent.update)
    for seed in range(3):
        state, _ = update(state, random_batch(seed))
    policy = agent.policy_of(state)
    layers = agent.policy_layers(jax.device_get(policy))
    assert [layer["kind"] for layer in layers] == ["batch_norm", "shift_l2", "dense", "l2_normalize", "lerp", "lerp",
                                                   "dense"]
    numpy_policy = NumpyPolicy(layers, "squashed_gaussian", OBS_DIM, action_low=-np.ones(ACTION_DIM),
                               action_high=np.ones(ACTION_DIM))
    obs = rng.normal(4.0, 2.0, (500, OBS_DIM)).astype(np.float32)
    live_mean, _ = agent.actor.apply(agent.actor_variables(policy), jnp.asarray(obs))
    np.testing.assert_allclose(numpy_policy.actor_output(obs)[:, :ACTION_DIM], live_mean, atol=1e-5)
    live = np.asarray(jax.jit(agent.deterministic_action)(policy, jnp.asarray(obs)))
    np.testing.assert_allclose(numpy_policy(obs), live, atol=1e-5)
    # Without the statistics the actions differ: the export does use them.
    assert not np.allclose(numpy_policy(obs), NumpyPolicy(layers[1:], "squashed_gaussian", OBS_DIM,
                                                          action_low=-np.ones(ACTION_DIM),
                                                          action_high=np.ones(ACTION_DIM))(obs), atol=1e-3)


def test_the_numpy_policy_round_trips_through_its_file(tmp_path):
    agent = small_agent()
    policy = jax.device_get(agent.policy_of(agent.init(jax.random.PRNGKey(1))))
    numpy_policy = NumpyPolicy(agent.policy_layers(policy), "squashed_gaussian", OBS_DIM,
                               action_low=-np.ones(ACTION_DIM), action_high=np.ones(ACTION_DIM))
    numpy_policy.save(tmp_path / "p.npz")
    obs = np.random.default_rng(2).normal(size=(10, OBS_DIM)).astype(np.float32)
    np.testing.assert_array_equal(NumpyPolicy.load(tmp_path / "p.npz")(obs), numpy_policy(obs))


# ------------------------------------------------------------------------------ defaults and bad input
def test_the_defaults_are_the_authors():
    cfg = SACConfig.build(env="Pendulum-v1", algo="simbav2").with_algorithm_defaults()
    params = cfg.algo_config
    assert (params.actor_num_blocks, params.actor_hidden_dim, params.critic_num_blocks, params.critic_hidden_dim) \
        == (1, 128, 2, 512)
    assert (params.num_bins, params.v_min, params.v_max, params.shift_constant) == (101, -5.0, 5.0, 3.0)
    assert params.final_learning_rate == 5e-5 and params.return_bound == 5.0 and params.clipped_double_q
    assert (cfg.learning_rate, cfg.gradient_steps, cfg.initial_alpha) == (1e-4, 2, 0.01)
    agent = make_agent(cfg, OBS_DIM, ACTION_DIM)
    assert agent.target_entropy == -ACTION_DIM / 2


@pytest.mark.parametrize("changes, words", [
    ({"num_bins": 1}, "num_bins must be an integer of at least 2"),
    ({"v_min": 5.0, "v_max": 5.0}, "v_min must be below v_max"),
    ({"critic_hidden_dim": 0}, "critic_hidden_dim must be a positive integer"),
    ({"actor_num_blocks": -1}, "actor_num_blocks must be a positive integer"),
    ({"final_learning_rate": -1e-4}, "final_learning_rate must be a positive number"),
    ({"return_bound": 0.0}, "return_bound must be a positive number"),
    ({"shift_constant": float("nan")}, "shift_constant must be a positive number"),
])
def test_bad_hyperparameters_are_one_sentence(changes, words):
    with pytest.raises(SoftacError) as info:
        SACConfig.build(env="Pendulum-v1", algo="simbav2", **changes)
    message = str(info.value)
    assert words in message and message.count(". ") == 0 and message.endswith("."), message


def test_a_simbav2_hyperparameter_is_refused_for_another_algorithm():
    with pytest.raises(SoftacError):
        SACConfig.build(env="Pendulum-v1", algo="sac", num_bins=51)


# ------------------------------------------------------------------------------ learning
@pytest.mark.slow
def test_simbav2_learns_pendulum(tmp_path):
    """Two seeds, at most 8,000 env steps (critics one block of 128, batch 128): mean deterministic return >= -250.
    Training stops at the first evaluation where both seeds reach -250, as the TQC and CartPole tests do."""
    cfg = SACConfig.build(env="Pendulum-v1", algo="simbav2", seeds=(0, 1), total_steps=8000, learning_starts=1000,
                          batch_size=128, critic_hidden_dim=128, critic_num_blocks=1, eval_every=2000,
                          eval_episodes=10, log_every=1000, checkpoint_every=0, run_root=str(tmp_path / "runs"),
                          progress=False, tensorboard=False, stop_at_eval_return=-250.0)
    run_dirs = train(cfg)
    finals = [[row["eval_return_mean"] for row in read_metrics(d) if row.get("eval_return_mean") is not None][-1]
              for d in run_dirs]
    assert np.mean(finals) >= -250, finals
