"""DroQ (Hiraoka et al., ICLR 2022) and REDQ (Chen et al., ICLR 2021): the parts that differ from SAC v2.

REDQ's target (the minimum over a random subset of the target ensemble) against float64 numpy given the same
subset, the subsets themselves (distinct, new every update, covering every critic), the actor on the ensemble's
mean; DroQ's critics (dropout: same key, same output; other key, other output; Dense -> Dropout -> LayerNorm ->
ReLU against numpy); the actor once per policy_delay updates, after the last; the hyperparameters' one-sentence
errors in Python and on the command line. docs/algorithms.md, "DroQ (Hiraoka et al., ICLR 2022)" and
"REDQ (Chen et al., ICLR 2021)". The contract tests (tests/test_algorithm_contract.py) cover the rest.
"""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softac import SACConfig, SoftacError
from softac.algos.droq.networks import DropoutCritic
from softac.algos.redq import losses as redq_losses
from softac.algos.registry import make_agent
from tests.helpers import ACTION_DIM, BATCH, OBS_DIM, assert_trees_equal, make_batch


def agent_of(algo: str, **changes):
    cfg = SACConfig.build(algo=algo, hidden_sizes=(16, 16), batch_size=BATCH, **changes)
    return make_agent(cfg, OBS_DIM, ACTION_DIM)


def numpy_mlp(layers: list[dict], x: np.ndarray, hidden=lambda h, i: np.maximum(h, 0.0)) -> np.ndarray:
    """float64 forward of Dense layers [{'kernel', 'bias'}, ...]; `hidden(h, i)` after the i-th hidden Dense."""
    for i, layer in enumerate(layers):
        x = x @ np.asarray(layer["kernel"], np.float64) + np.asarray(layer["bias"], np.float64)
        if i < len(layers) - 1:
            x = hidden(x, i)
    return x


def member(tree: dict, i: int) -> dict:
    return jax.tree_util.tree_map(lambda leaf: np.asarray(leaf[i], np.float64), tree)


# ----------------------------------------------------------------------------------------------- REDQ
def numpy_redq_q(critic_params: dict, i: int, obs, action) -> np.ndarray:
    """Q_i(s, a) of critic i of REDQ's ensemble in float64: [B]."""
    mlp = member(critic_params["VmapCritic_0"]["MLP_0"], i)
    layers = [mlp[f"Dense_{k}"] for k in range(len(mlp))]
    x = np.concatenate([np.asarray(obs, np.float64), np.asarray(action, np.float64)], axis=-1)
    return numpy_mlp(layers, x)[..., 0]


def test_redq_target_is_the_minimum_over_the_drawn_subset_of_target_critics():
    agent = agent_of("redq", target_subset_size=3)
    state = agent.init(jax.random.PRNGKey(0))
    # Targets apart from the online critics (as after training), so a wrong parameter set would show.
    target_params = jax.tree_util.tree_map(lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(1), p.shape),
                                           state.target_critic_params)
    batch = make_batch(0)
    rng = np.random.default_rng(0)
    next_action = jnp.asarray(rng.uniform(-1, 1, size=(BATCH, ACTION_DIM)), jnp.float32)
    next_log_prob = jnp.asarray(rng.normal(size=BATCH), jnp.float32)
    alpha = jnp.float32(0.3)
    all_q = np.stack([numpy_redq_q(target_params, i, batch.next_obs, next_action) for i in range(10)])
    for key in range(4):
        indices = redq_losses.critic_subset(jax.random.PRNGKey(key), 10, 3)
        got = agent.subset_target(target_params, indices, batch, next_action, next_log_prob, alpha)
        subset = np.asarray(indices)
        expected = np.asarray(batch.reward, np.float64) + 0.99 * (1 - np.asarray(batch.terminated, np.float64)) * (
            all_q[subset].min(axis=0) - 0.3 * np.asarray(next_log_prob, np.float64))
        np.testing.assert_allclose(np.asarray(got, np.float64), expected, rtol=1e-5, atol=1e-5)
        # The rows are the drawn critics, in the drawn order, and the minimum over the subset is not the ensemble's.
        rows = agent.subset_q_values(target_params, indices, batch.next_obs, next_action)
        np.testing.assert_allclose(np.asarray(rows, np.float64), all_q[subset], rtol=1e-5, atol=1e-5)
    assert not np.allclose(all_q[subset].min(axis=0), all_q.min(axis=0))


def test_redq_subsets_are_distinct_indices_and_cover_every_critic_uniformly():
    keys = jax.random.split(jax.random.PRNGKey(0), 5000)
    subsets = np.asarray(jax.vmap(lambda k: redq_losses.critic_subset(k, 10, 2))(keys))
    assert subsets.shape == (5000, 2) and subsets.dtype == np.int32
    assert np.all(subsets[:, 0] != subsets[:, 1])  # without replacement
    assert subsets.min() >= 0 and subsets.max() <= 9
    counts = np.bincount(subsets.ravel(), minlength=10)
    np.testing.assert_allclose(counts / 5000, 0.2, atol=0.03)  # each critic in 2 of 10 subsets
    pairs = {tuple(sorted(s)) for s in subsets}
    assert len(pairs) == 45  # every pair of distinct critics is drawn
    full = np.asarray(redq_losses.critic_subset(jax.random.PRNGKey(1), 10, 10))
    assert sorted(full) == list(range(10))  # M = N: a permutation


def test_redq_updates_draw_a_new_subset_from_the_state_key():
    agent = agent_of("redq")
    state = agent.init(jax.random.PRNGKey(0))
    update = jax.jit(agent.update)
    subsets = []
    for g in range(40):
        state, _ = update(state, make_batch(g))
        subsets.append(tuple(np.asarray(state.target_subset)))
    assert all(len(set(s)) == 2 for s in subsets)
    assert len(set(subsets)) > 10  # a new draw each update
    assert set(np.ravel(subsets)) == set(range(10))
    # Determined by the state (its key): the same state and batch give the same subset.
    again, _ = update(agent.init(jax.random.PRNGKey(0)), make_batch(0))
    first, _ = update(agent.init(jax.random.PRNGKey(0)), make_batch(0))
    np.testing.assert_array_equal(np.asarray(again.target_subset), np.asarray(first.target_subset))


def test_redq_actor_loss_is_on_the_mean_of_every_critic():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(10, BATCH))
    log_prob = rng.normal(size=BATCH)
    loss, info = redq_losses.ensemble_mean_actor_loss(jnp.asarray(q, jnp.float32), jnp.asarray(log_prob, jnp.float32),
                                                      jnp.float32(0.2))
    np.testing.assert_allclose(float(loss), np.mean(0.2 * log_prob - q.mean(axis=0)), rtol=1e-5)
    np.testing.assert_allclose(float(info["entropy"]), -log_prob.mean(), rtol=1e-5)


def test_redq_ensemble_is_one_vmapped_module_of_n_critics():
    agent = agent_of("redq", n_critics=5)
    state = agent.init(jax.random.PRNGKey(0))
    kernels = [leaf for leaf in jax.tree_util.tree_leaves(state.critic_params)]
    assert all(leaf.shape[0] == 5 for leaf in kernels)
    q = agent.q_values(state.critic_params, make_batch(0).obs, make_batch(0).action)
    assert q.shape == (5, BATCH) and len(np.unique(np.asarray(q)[:, 0])) == 5  # independent initialisations


# ----------------------------------------------------------------------------------------------- DroQ
def test_droq_dropout_differs_between_keys_and_repeats_with_the_same_key():
    agent = agent_of("droq", dropout_rate=0.1)
    state = agent.init(jax.random.PRNGKey(0))
    batch = make_batch(0)
    q_values = jax.jit(agent.q_values)
    first = np.asarray(q_values(state.critic_params, batch.obs, batch.action, jax.random.PRNGKey(1)))
    same = np.asarray(q_values(state.critic_params, batch.obs, batch.action, jax.random.PRNGKey(1)))
    other = np.asarray(q_values(state.critic_params, batch.obs, batch.action, jax.random.PRNGKey(2)))
    assert first.shape == (2, BATCH)
    np.testing.assert_array_equal(first, same)
    assert np.abs(first - other).max() > 1e-4
    # The two critics draw masks of their own: with equal parameters they still differ.
    twins = jax.tree_util.tree_map(lambda p: jnp.stack([p[0], p[0]]), state.critic_params)
    twin_q = np.asarray(q_values(twins, batch.obs, batch.action, jax.random.PRNGKey(1)))
    assert np.abs(twin_q[0] - twin_q[1]).max() > 1e-4


def numpy_layer_norm(h: np.ndarray, scale: np.ndarray, bias: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    mean = h.mean(axis=-1, keepdims=True)
    var = h.var(axis=-1, keepdims=True)
    return (h - mean) / np.sqrt(var + eps) * scale + bias


@pytest.mark.parametrize("layer_norm", [True, False])
def test_droq_critic_is_dense_dropout_layer_norm_relu(layer_norm):
    """Without dropout (rate 0) the critic is Dense -> LayerNorm -> ReLU per hidden layer, against float64 numpy;
    with layer_norm false there is no LayerNorm."""
    agent = agent_of("droq", dropout_rate=0.0, layer_norm=layer_norm)
    state = agent.init(jax.random.PRNGKey(0))
    batch = make_batch(0)
    got = np.asarray(agent.q_values(state.critic_params, batch.obs, batch.action, jax.random.PRNGKey(1)), np.float64)
    x = np.concatenate([np.asarray(batch.obs, np.float64), np.asarray(batch.action, np.float64)], axis=-1)
    for i in range(2):
        critic = member(state.critic_params["VmapDropoutCritic_0"], i)
        assert ("LayerNorm_0" in critic and "LayerNorm_1" in critic) == layer_norm
        layers = [critic[f"Dense_{k}"] for k in range(3)]

        def hidden(h, k, critic=critic):
            if layer_norm:
                h = numpy_layer_norm(h, critic[f"LayerNorm_{k}"]["scale"], critic[f"LayerNorm_{k}"]["bias"])
            return np.maximum(h, 0.0)

        np.testing.assert_allclose(got[i], numpy_mlp(layers, x, hidden)[..., 0], rtol=1e-4, atol=1e-5)


def test_droq_dropout_comes_before_the_layer_norm():
    """Dropout before LayerNorm: the layer's output is normalised (mean beta, unit variance before the scale) even
    with dropout on; dropout after it would leave zeros in a normalised vector and break that."""
    agent = agent_of("droq", dropout_rate=0.5)
    state = agent.init(jax.random.PRNGKey(0))
    batch = make_batch(0)
    one_critic = DropoutCritic((16, 16), dropout_rate=0.5, layer_norm=True)  # the ensemble's member, alone
    params = jax.tree_util.tree_map(lambda p: p[0], state.critic_params["VmapDropoutCritic_0"])
    _, inter = one_critic.apply({"params": params}, batch.obs, batch.action, rngs={"dropout": jax.random.PRNGKey(3)},
                                capture_intermediates=True)
    normed = np.asarray(inter["intermediates"]["LayerNorm_0"]["__call__"][0], np.float64)
    dropped = np.asarray(inter["intermediates"]["Dropout_0"]["__call__"][0], np.float64)
    assert np.mean(dropped == 0.0) > 0.3  # about half the units dropped ...
    np.testing.assert_allclose(normed.mean(axis=-1), 0.0, atol=1e-4)  # ... and then normalised (scale 1, bias 0)
    np.testing.assert_allclose(normed.std(axis=-1), 1.0, atol=1e-2)


# ------------------------------------------------------------------------------------------ policy delay
@pytest.mark.parametrize("algo", ["droq", "redq"])
def test_the_actor_steps_once_per_policy_delay_updates_after_the_last(algo):
    agent = agent_of(algo, policy_delay=5)
    state = agent.init(jax.random.PRNGKey(0))
    batches = make_batch(0, leading=(5,))
    four, _ = jax.jit(agent.update_many)(state, jax.tree_util.tree_map(lambda x: x[:4], batches))
    assert_trees_equal(four.actor_params, state.actor_params)  # u = 0..3: critics only
    assert float(four.log_alpha) == float(state.log_alpha)
    five, metrics = jax.jit(agent.update_many)(state, batches)
    assert not np.allclose(np.asarray(five.actor_params["MLP_0"]["Dense_0"]["kernel"]),
                           np.asarray(state.actor_params["MLP_0"]["Dense_0"]["kernel"]))  # u = 4: the actor steps
    assert float(five.log_alpha) != float(state.log_alpha)
    assert float(five.actor_info["actor_loss"]) != 0.0
    # Numbered from first_update_index: updates 5..9 of a run step the actor on the last (9) only.
    later, _ = jax.jit(agent.update_many)(state, jax.tree_util.tree_map(lambda x: x[:4], batches), jnp.int32(5))
    assert_trees_equal(later.actor_params, state.actor_params)


def test_both_train_20_gradient_steps_per_env_step_by_default():
    for algo in ("droq", "redq"):
        cfg = SACConfig(algo=algo).with_algorithm_defaults()
        assert cfg.gradient_steps == 20 and cfg.algo_config.policy_delay == 20
    assert SACConfig(algo="redq").algo_config.n_critics == 10
    assert SACConfig(algo="redq").algo_config.target_subset_size == 2
    assert SACConfig(algo="droq").algo_config.dropout_rate == 0.01 and SACConfig(algo="droq").algo_config.layer_norm


# ----------------------------------------------------------------------------------------------- input
@pytest.mark.parametrize("changes, message", [
    (dict(algo="redq", target_subset_size=12), "target_subset_size (12) cannot be larger than n_critics (10)."),
    (dict(algo="redq", n_critics=1), "target_subset_size (2) cannot be larger than n_critics (1)."),
    (dict(algo="redq", n_critics=0), "n_critics must be a positive integer, got 0."),
    (dict(algo="redq", target_subset_size=0), "target_subset_size must be a positive integer, got 0."),
    (dict(algo="redq", policy_delay=0), "policy_delay must be a positive integer, got 0."),
    (dict(algo="droq", dropout_rate=1.0), "dropout_rate must be in [0, 1), got 1.0."),
    (dict(algo="droq", dropout_rate=-0.1), "dropout_rate must be in [0, 1), got -0.1."),
    (dict(algo="droq", policy_delay=2.5), "policy_delay must be a positive integer, got 2.5."),
    (dict(algo="sac", n_critics=4), "--n-critics is a setting of tqc and redq, not of sac."),
    (dict(algo="droq", target_subset_size=2), "--target-subset-size is a setting of redq, not of droq."),
])
def test_bad_hyperparameters_are_one_sentence(changes, message):
    with pytest.raises(SoftacError) as info:
        SACConfig.build(**changes)
    assert str(info.value) == message


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "softac.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("flags, message", [
    (["--algo", "redq", "--target-subset-size", "12"], "target_subset_size (12) cannot be larger than n_critics (10)."),
    (["--algo", "droq", "--dropout-rate", "1"], "dropout_rate must be in [0, 1), got 1.0."),
])
def test_cli_refuses_bad_hyperparameters_with_one_line(tmp_path, flags, message):
    result = run_cli("train", *flags, "--env", "Pendulum-v1", "--total-steps", "10", cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.startswith("softac: error:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert lines == [f"softac: error: {message}"]
    assert not (tmp_path / "runs").exists()


def test_cli_help_of_redq_and_droq_lists_their_flags(tmp_path):
    redq = " ".join(run_cli("train", "--algo", "redq", "--help", cwd=tmp_path).stdout.split())
    assert "--n-critics INT Number N of critics in the ensemble (the authors' 10). (default: 10)" in redq
    assert "--target-subset-size INT" in redq and "--policy-delay INT" in redq
    assert "(default: 20)" in redq.split("--policy-delay INT")[-1][:200]
    assert "--dropout-rate" not in redq.split("options:")[1]
    droq = " ".join(run_cli("train", "--algo", "droq", "--help", cwd=tmp_path).stdout.split())
    assert "--dropout-rate FLOAT" in droq and "--layer-norm, --no-layer-norm" in droq
    assert "--n-critics" not in droq.split("options:")[1]
