"""n-step returns (docs/algorithms.md, "n-step returns"): the targets of both replay buffers against a hand-written
float64 walk over stored episodes (termination, truncation, the newest transition, the ring-buffer wrap, several
environments per seed), n_steps = 1 batches exactly as before, exact resume with n_steps = 3, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softac import SACConfig, SoftacError, resume, train
from softac.algos.base import Batch
from softac.algos.registry import REGISTRY
from softac.checkpoint import _buffer_state
from softac.compiled import replay as device_replay
from softac.replay import FIELDS, STORED_FIELDS, ReplayBuffer
from tests.conftest import tiny_config
from tests.helpers import assert_trees_equal
from tests.test_train import checkpoint_state

OBS_DIM, ACTION_DIM, GAMMA = 2, 1, 0.9


class FixedIndex:
    """Stands in for a seed's numpy Generator: `integers` returns the given slots (every slot once, in order)."""

    def __init__(self, slots):
        self.slots = np.asarray(slots)

    def integers(self, low, high, size):
        assert size == len(self.slots) and np.all((self.slots >= low) & (self.slots < high))
        return self.slots


def episode_stream(length: int, terminated_at=(), truncated_at=(), seed_offset=0.0):
    """Transitions t = 0 .. length-1 of one environment: obs encodes t, rewards are distinct, episode ends where
    told (a termination and a truncation also end the episode: the next transition starts a new one)."""
    rng = np.random.default_rng(int(seed_offset) + 7)
    t = np.arange(length, dtype=np.float64)
    return {"obs": np.stack([t + seed_offset, -t], -1).astype(np.float32),
            "action": rng.uniform(-1, 1, (length, ACTION_DIM)).astype(np.float32),
            "reward": rng.normal(size=length).astype(np.float32),
            "next_obs": np.stack([t + seed_offset + 0.5, -t - 0.5], -1).astype(np.float32),
            "terminated": np.isin(t, terminated_at).astype(np.float32),
            "truncated": np.isin(t, truncated_at).astype(np.float32)}


def reference_target(stream, t: int, newest: int, n: int, gamma: float, stride: int = 1):
    """The n-step target of transition t by a plain loop in float64 over one environment's stream, transitions
    t, t+stride, ...: (R, bootstrap observation, terminated, discount). `newest`: the last index stored."""
    total, k = 0.0, 0
    while True:
        i = t + k * stride
        total += gamma ** k * float(stream["reward"][i])
        k += 1
        if stream["terminated"][i] or stream["truncated"][i] or k == n or i + stride > newest:
            return total, stream["next_obs"][i], float(stream["terminated"][i]), gamma ** k


def filled_buffer(stream, capacity: int, n_steps: int, num_seeds: int = 1) -> ReplayBuffer:
    buffer = ReplayBuffer(num_seeds, capacity, OBS_DIM, ACTION_DIM, n_steps=n_steps, gamma=GAMMA)
    for t in range(len(stream["reward"])):
        buffer.add(*(np.repeat(stream[f][t][None], num_seeds, 0) for f in STORED_FIELDS))
    return buffer


def sample_every_slot(buffer: ReplayBuffer) -> Batch:
    slots = np.arange(buffer.size)
    return buffer.sample([FixedIndex(slots) for _ in range(buffer.num_seeds)], batch_size=buffer.size)


def assert_targets_match(batch: Batch, stream, newest: int, n: int, stride: int = 1, time_of=None):
    """Every row of `batch` (seed 0, batch 0) against reference_target of the transition its obs names."""
    time_of = time_of or (lambda obs: int(round(obs[0])))
    for row in range(batch.reward.shape[-1]):
        t = time_of(np.asarray(batch.obs)[0, 0, row])
        reward, next_obs, terminated, discount = reference_target(stream, t, newest, n, GAMMA, stride)
        np.testing.assert_allclose(np.asarray(batch.reward)[0, 0, row], reward, rtol=1e-6, atol=1e-6, err_msg=t)
        np.testing.assert_array_equal(np.asarray(batch.next_obs)[0, 0, row], next_obs, err_msg=str(t))
        assert float(np.asarray(batch.terminated)[0, 0, row]) == terminated, t
        np.testing.assert_allclose(np.asarray(batch.discount)[0, 0, row], discount, rtol=1e-6, err_msg=t)
        np.testing.assert_array_equal(np.asarray(batch.action)[0, 0, row], stream["action"][t])


# ------------------------------------------------------------------------------ targets of the host buffer
@pytest.mark.parametrize("n", [2, 3, 5])
def test_n_step_targets_stop_at_a_termination_a_truncation_and_the_newest_transition(n):
    stream = episode_stream(16, terminated_at=(4,), truncated_at=(9,))
    buffer = filled_buffer(stream, capacity=32, n_steps=n)
    batch = sample_every_slot(buffer)
    assert_targets_match(batch, stream, newest=15, n=n)
    # Spot checks of the edges by hand (n = 3): t = 3 sums r3 + g r4 and stops at the termination at 4.
    if n == 3:
        r = stream["reward"].astype(np.float64)
        np.testing.assert_allclose(batch.reward[0, 0, 3], r[3] + GAMMA * r[4], rtol=1e-6)
        assert batch.terminated[0, 0, 3] == 1.0 and batch.discount[0, 0, 3] == np.float32(GAMMA ** 2)
        # t = 8 stops at the truncation at 9 and bootstraps from 9's true final observation (terminated 0).
        np.testing.assert_array_equal(batch.next_obs[0, 0, 8], stream["next_obs"][9])
        assert batch.terminated[0, 0, 8] == 0.0
        # t = 10 starts the next episode: r10 + g r11 + g^2 r12, never a reward of the episode before.
        np.testing.assert_allclose(batch.reward[0, 0, 10], r[10] + GAMMA * r[11] + GAMMA ** 2 * r[12], rtol=1e-6)
    # The newest transition bootstraps from its own next_obs after one step; the one before after two.
    assert batch.discount[0, 0, 15] == np.float32(GAMMA) and batch.discount[0, 0, 14] == np.float32(GAMMA ** 2)
    np.testing.assert_array_equal(batch.next_obs[0, 0, 15], stream["next_obs"][15])


def test_the_walk_never_wraps_into_overwritten_data_or_reads_past_the_write_position():
    # 23 transitions through a ring of 7: slots hold t = 21, 22, 16, ..., 20; position 2 (next to overwrite t = 16).
    stream = episode_stream(23, terminated_at=(18,), truncated_at=(5, 12))
    buffer = filled_buffer(stream, capacity=7, n_steps=4)
    assert (buffer.position, buffer.size) == (2, 7)
    batch = sample_every_slot(buffer)
    times = [int(round(o[0])) for o in batch.obs[0, 0]]
    assert times == [21, 22, 16, 17, 18, 19, 20]
    assert_targets_match(batch, stream, newest=22, n=4)
    # The newest (t = 22, slot 1) stops there instead of wrapping to slot 2 (t = 16, older data).
    assert batch.discount[0, 0, 1] == np.float32(GAMMA)
    # t = 20 (slot 6) wraps around the end of the array to slots 0, 1 (t = 21, 22): the ring's order.
    r = stream["reward"].astype(np.float64)
    np.testing.assert_allclose(batch.reward[0, 0, 6], r[20] + GAMMA * r[21] + GAMMA ** 2 * r[22], rtol=1e-6)


def test_several_environments_per_seed_each_follow_their_own_sequence():
    # num_envs = 3: every env step stores the three environments' transitions side by side.
    streams = [episode_stream(9, terminated_at=(2,), seed_offset=0.0),
               episode_stream(9, truncated_at=(5,), seed_offset=100.0),
               episode_stream(9, seed_offset=200.0)]
    buffer = ReplayBuffer(1, 20, OBS_DIM, ACTION_DIM, n_steps=3, gamma=GAMMA, num_envs=3)
    for t in range(9):
        buffer.add_many(*(np.stack([s[f][t] for s in streams])[None] for f in STORED_FIELDS))
    assert buffer.size == 20  # 27 stored, the oldest 7 overwritten: env steps 2 .. 8, the first only in part
    batch = sample_every_slot(buffer)
    for j, stream in enumerate(streams):
        rows = [r for r in range(20) if int(round(batch.obs[0, 0, r, 0])) // 100 == j]
        sub = Batch(*(np.asarray(x)[:, :, rows] for x in batch))
        assert_targets_match(sub, stream, newest=8, n=3, time_of=lambda obs: int(round(obs[0])) % 100)


def test_n_steps_one_gives_the_batches_of_the_one_step_buffer_exactly():
    stream = episode_stream(30, terminated_at=(4,), truncated_at=(9,))
    buffer = filled_buffer(stream, capacity=16, n_steps=1, num_seeds=2)
    rngs = [np.random.default_rng(s) for s in (0, 1)]
    copies = [np.random.default_rng(s) for s in (0, 1)]
    batch = buffer.sample(rngs, batch_size=8, num_batches=3)
    assert batch.discount is None
    # The sampling of softac before n-step returns, written out.
    index = np.stack([rng.integers(0, buffer.size, size=24) for rng in copies])
    for f in FIELDS:
        array = getattr(buffer, f)
        expected = array[np.arange(2)[:, None], index].reshape((2, 3, 8) + array.shape[2:])
        np.testing.assert_array_equal(getattr(batch, f), expected)


# ------------------------------------------------------------------------------ the compiled loop's buffer
def device_buffer_of(host: ReplayBuffer) -> device_replay.DeviceBuffer:
    states = [host.state_dict(k) for k in range(host.num_seeds)]
    return device_replay.from_state_dicts(states, host.capacity, OBS_DIM, ACTION_DIM)


def test_the_device_buffer_builds_the_host_buffers_targets():
    stream = episode_stream(23, terminated_at=(18,), truncated_at=(5, 12))
    host = filled_buffer(stream, capacity=7, n_steps=4)
    device = device_buffer_of(host)
    batch = jax.jit(device_replay.sample, static_argnums=(2, 3, 4, 5))(device, jax.random.PRNGKey(0)[None], 64, 1,
                                                                      4, GAMMA)
    assert_targets_match(jax.tree_util.tree_map(np.asarray, batch), stream, newest=22, n=4)
    one_step = device_replay.sample(device, jax.random.PRNGKey(0)[None], 8, 2)
    assert one_step.discount is None and one_step.reward.shape == (1, 2, 8)


def test_the_device_buffer_stores_truncated_and_fills_it_through_add():
    buffer = device_replay.empty_buffer(2, 4, OBS_DIM, ACTION_DIM)
    for t in range(5):
        row = lambda value, *tail: jnp.full((2,) + tail, value, jnp.float32)  # noqa: E731
        buffer = device_replay.add(buffer, row(t, OBS_DIM), row(0.0, ACTION_DIM), row(t), row(t, OBS_DIM),
                                   row(0.0), row(float(t == 3)))
    np.testing.assert_array_equal(np.asarray(buffer.truncated[0]), [0, 0, 0, 1])  # slot 0 holds t = 4 now
    assert set(device_replay.state_dict(buffer, 0)["data"]) == set(STORED_FIELDS)


# ------------------------------------------------------------------------------ checkpoints and resume
def test_a_checkpoint_without_truncated_loads_as_no_time_limit_ends():
    stream = episode_stream(6, truncated_at=(2,))
    host = filled_buffer(stream, capacity=8, n_steps=1)
    old = host.state_dict(0)
    del old["data"]["truncated"]
    arrays = {**old["data"], "position": np.int64(old["position"]), "size": np.int64(old["size"]),
              "capacity": np.int64(old["capacity"])}
    state = _buffer_state(arrays)  # what the checkpoint reader makes of such a replay.npz
    np.testing.assert_array_equal(state["data"]["truncated"], np.zeros(6))
    restored = ReplayBuffer(1, 8, OBS_DIM, ACTION_DIM)
    restored.load_state_dicts([old])
    np.testing.assert_array_equal(restored.truncated, 0.0)
    np.testing.assert_array_equal(restored.reward, host.reward)
    device = device_replay.from_state_dicts([old], 8, OBS_DIM, ACTION_DIM)
    np.testing.assert_array_equal(np.asarray(device.truncated), 0.0)


def test_resume_with_n_steps_3_equals_the_uninterrupted_run(tmp_path):
    # Stop at k = 250 (after the time limit at 200 and the updates from 100), resume to n = 400.
    cfg = tiny_config(tmp_path, n_steps=3, total_steps=400, eval_every=0)
    straight = train(cfg.replace(run_name="straight"))[0]
    stopped = train(cfg.replace(run_name="stopped", total_steps=250))[0]
    resume([stopped], total_steps=400)
    a_state, a_buffer, a_loop = checkpoint_state(straight)
    b_state, b_buffer, b_loop = checkpoint_state(stopped)
    assert_trees_equal(a_state, b_state)
    assert set(a_buffer["data"]) == set(STORED_FIELDS)
    for field in STORED_FIELDS:
        np.testing.assert_array_equal(a_buffer["data"][field], b_buffer["data"][field])
    np.testing.assert_array_equal(a_buffer["data"]["truncated"].nonzero()[0], [199, 399])  # Pendulum's time limit
    assert a_loop["step"] == b_loop["step"] == 400
    # n = 3 trained other parameters than one-step targets would have.
    one_step = train(cfg.replace(run_name="one-step", n_steps=1))[0]
    assert not np.array_equal(jax.tree_util.tree_leaves(checkpoint_state(one_step)[0].critic_params)[0],
                              jax.tree_util.tree_leaves(a_state.critic_params)[0])
    assert json.loads((straight / "config.json").read_text())["n_steps"] == 3


def test_compiled_resume_with_n_steps_3_equals_the_uninterrupted_run(tmp_path):
    from tests.test_compiled import PENDULUM, checkpoint_of

    cfg = tiny_config(tmp_path, env=PENDULUM, n_steps=3, total_steps=400, eval_every=0, log_every=100)
    straight = train(cfg.replace(run_name="straight"))[0]
    stopped = train(cfg.replace(run_name="stopped", total_steps=250))[0]
    resume([stopped], total_steps=400)
    a_state, a_buffer, _ = checkpoint_of(straight)
    b_state, b_buffer, _ = checkpoint_of(stopped)
    assert_trees_equal(a_state, b_state)
    for field in STORED_FIELDS:
        np.testing.assert_array_equal(a_buffer["data"][field], b_buffer["data"][field])
    np.testing.assert_array_equal(a_buffer["data"]["truncated"].nonzero()[0], [199, 399])


# ------------------------------------------------------------------------------ the agents and the loop
@pytest.mark.parametrize("algo", sorted(REGISTRY))
def test_every_algorithm_bootstraps_with_the_batchs_discount(algo):
    from tests.test_algorithm_contract import agent_and_dims, random_batches

    agent, obs_dim, action_dim = agent_and_dims(algo)
    state = agent.init(jax.random.PRNGKey(0))
    batch = random_batches(algo, obs_dim, action_dim, leading=())
    update = jax.jit(agent.update)
    _, one_step = update(state, batch)
    gamma = agent.cfg.gamma
    _, same = update(state, batch._replace(discount=jnp.full(batch.reward.shape, gamma, jnp.float32)))
    _, three = update(state, batch._replace(discount=jnp.full(batch.reward.shape, gamma ** 3, jnp.float32)))
    np.testing.assert_allclose(float(same["critic_loss"]), float(one_step["critic_loss"]), rtol=1e-5)
    assert float(three["critic_loss"]) != pytest.approx(float(one_step["critic_loss"]), rel=1e-4)


def test_the_gymnasium_loop_gives_its_buffer_n_steps_gamma_and_num_envs():
    from softac.envs import make_config_env
    from softac.train import _build

    cfg = SACConfig.build(env="Pendulum-v1", n_steps=3, gamma=0.95, num_envs=2, buffer_size=100, batch_size=8)
    _, _, buffer = _build(cfg, make_config_env(cfg))
    assert (buffer.n_steps, buffer.gamma, buffer.num_envs) == (3, 0.95, 2)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("value", [0, -2, True, 1.5])
def test_n_steps_must_be_a_positive_integer(value):
    with pytest.raises(SoftacError) as error:
        SACConfig(n_steps=value)
    assert str(error.value) == f"n_steps must be a positive integer, got {value!r}."


def test_the_cli_refuses_n_steps_0_with_one_sentence_and_creates_nothing(tmp_path):
    result = subprocess.run([sys.executable, "-m", "softac.cli", "train", "--n-steps", "0", "--run-root", "runs",
                             "--no-progress"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("softac: error:")]
    assert lines == ["softac: error: n_steps must be a positive integer, got 0."], result.stderr
    assert list(tmp_path.iterdir()) == []
