"""Tests for softac.replay.ReplayBuffer: ring-buffer storage, per-seed uniform sampling, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from softac.replay import FIELDS, ReplayBuffer

OBS_DIM, ACTION_DIM = 3, 2


def _transition(seed: int, t: int):
    """A recognisable transition: every field encodes (seed, t) through v = 100 * seed + t + 1 (never 0)."""
    v = 100.0 * seed + t + 1.0
    return {
        "obs": np.array([v, v + 0.25, v + 0.5]),
        "action": np.array([v / 1000.0, -v / 1000.0]),
        "reward": v,
        "next_obs": np.array([v + 0.75, v + 1.0, v + 1.25]),
        "terminated": float(t % 2),
    }


def _add(buffer: ReplayBuffer, t: int, seeds=None):
    seeds = range(buffer.num_seeds) if seeds is None else seeds
    ts = [_transition(k, t) for k in seeds]
    buffer.add(*(np.stack([np.asarray(tr[f], np.float32) for tr in ts]) for f in FIELDS))


def _value(seed_and_t):
    """The reward stored for transition t of `seed` (see _transition)."""
    seed, t = seed_and_t
    return 100.0 * seed + t + 1.0


# ------------------------------------------------------------------------------ storage
def test_wrap_around_overwrites_the_oldest():
    buffer = ReplayBuffer(num_seeds=2, capacity=5, obs_dim=OBS_DIM, action_dim=ACTION_DIM)
    for t in range(7):
        _add(buffer, t)
    assert buffer.size == 5
    assert buffer.position == 2
    for k in range(2):
        # Slots 0, 1 now hold t = 5, 6 (t = 0, 1 were overwritten); slots 2, 3, 4 still hold t = 2, 3, 4.
        slot_t = [5, 6, 2, 3, 4]
        for f in FIELDS:
            expected = np.stack([np.asarray(_transition(k, t)[f], np.float32) for t in slot_t])
            np.testing.assert_array_equal(getattr(buffer, f)[k], expected)
        # In ring order starting at the write position: the last five transitions, oldest first.
        ring = np.roll(buffer.reward[k], -buffer.position)
        np.testing.assert_array_equal(ring, [_value((k, t)) for t in range(2, 7)])
        stored = {float(r) for r in buffer.reward[k]}
        assert _value((k, 0)) not in stored and _value((k, 1)) not in stored


def test_size_and_position_before_full():
    buffer = ReplayBuffer(1, 4, OBS_DIM, ACTION_DIM)
    assert (buffer.size, buffer.position) == (0, 0)
    for t in range(3):
        _add(buffer, t)
    assert (buffer.size, buffer.position) == (3, 3)
    _add(buffer, 3)
    assert (buffer.size, buffer.position) == (4, 0)


# ----------------------------------------------------------------------------- sampling
def test_sample_shapes():
    buffer = ReplayBuffer(2, 10, OBS_DIM, ACTION_DIM)
    for t in range(6):
        _add(buffer, t)
    batch = buffer.sample([np.random.default_rng(0), np.random.default_rng(1)], batch_size=4, num_batches=3)
    assert batch.obs.shape == (2, 3, 4, OBS_DIM)
    assert batch.action.shape == (2, 3, 4, ACTION_DIM)
    assert batch.reward.shape == (2, 3, 4)
    assert batch.next_obs.shape == (2, 3, 4, OBS_DIM)
    assert batch.terminated.shape == (2, 3, 4)
    assert batch.obs.dtype == np.float32
    default = buffer.sample([np.random.default_rng(0), np.random.default_rng(1)], batch_size=4)
    assert default.reward.shape == (2, 1, 4)


def test_sample_only_filled_slots_and_own_seed_and_aligned_fields():
    buffer = ReplayBuffer(2, 10, OBS_DIM, ACTION_DIM)
    for t in range(3):
        _add(buffer, t)
    batch = buffer.sample([np.random.default_rng(0), np.random.default_rng(1)], batch_size=64, num_batches=4)
    for k in range(2):
        allowed = {_value((k, t)) for t in range(3)}
        values = batch.reward[k].ravel()
        assert set(values.tolist()) <= allowed  # never an unfilled (zero) slot, never the other seed's data
        assert set(values.tolist()) == allowed  # 256 draws over 3 slots: all of them show up
        # All fields of one sampled row come from the same transition.
        v = batch.reward[k]
        np.testing.assert_array_equal(batch.obs[k][..., 0], v)
        np.testing.assert_array_equal(batch.obs[k][..., 2], v + 0.5)
        np.testing.assert_array_equal(batch.next_obs[k][..., 0], v + 0.75)
        np.testing.assert_allclose(batch.action[k][..., 1], -v / 1000.0, rtol=1e-6)
        t = v - 100.0 * k - 1.0
        np.testing.assert_array_equal(batch.terminated[k], t % 2)


def test_sample_after_wrap_around_comes_from_the_last_capacity_transitions():
    buffer = ReplayBuffer(1, 5, OBS_DIM, ACTION_DIM)
    for t in range(7):
        _add(buffer, t)
    batch = buffer.sample([np.random.default_rng(4)], batch_size=200)
    assert set(batch.reward.ravel().tolist()) == {_value((0, t)) for t in range(2, 7)}


def test_sample_empty_buffer_raises():
    buffer = ReplayBuffer(1, 5, OBS_DIM, ACTION_DIM)
    with pytest.raises(ValueError):
        buffer.sample([np.random.default_rng(0)], batch_size=2)


def test_same_generator_seed_gives_the_same_batch():
    buffer = ReplayBuffer(2, 50, OBS_DIM, ACTION_DIM)
    for t in range(37):
        _add(buffer, t)
    a = buffer.sample([np.random.default_rng(5), np.random.default_rng(6)], batch_size=16, num_batches=2)
    b = buffer.sample([np.random.default_rng(5), np.random.default_rng(6)], batch_size=16, num_batches=2)
    c = buffer.sample([np.random.default_rng(7), np.random.default_rng(6)], batch_size=16, num_batches=2)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.reward[0], c.reward[0])  # seed 0's stream changed ...
    np.testing.assert_array_equal(a.reward[1], c.reward[1])  # ... seed 1's did not


def test_a_seed_alone_samples_the_same_indices_as_beside_others():
    together = ReplayBuffer(2, 20, OBS_DIM, ACTION_DIM)
    alone = ReplayBuffer(1, 20, OBS_DIM, ACTION_DIM)
    for t in range(13):
        _add(together, t)
        _add(alone, t, seeds=[1])  # the same data as seed 1 of `together`
    rngs_together = [np.random.default_rng(3), np.random.default_rng(7)]
    rngs_alone = [np.random.default_rng(7)]
    for _ in range(2):  # two successive calls: the streams stay in step
        bt = together.sample(rngs_together, batch_size=8, num_batches=2)
        ba = alone.sample(rngs_alone, batch_size=8, num_batches=2)
        for f in FIELDS:
            np.testing.assert_array_equal(getattr(bt, f)[1], getattr(ba, f)[0])


def test_sampling_is_roughly_uniform_over_slots():
    buffer = ReplayBuffer(1, 20, OBS_DIM, ACTION_DIM)
    for t in range(8):  # partly filled: uniform over the 8 filled slots only
        _add(buffer, t)
    n = 80_000
    batch = buffer.sample([np.random.default_rng(123)], batch_size=n // 4, num_batches=4)
    values, counts = np.unique(batch.reward.ravel(), return_counts=True)
    np.testing.assert_array_equal(values, [_value((0, t)) for t in range(8)])
    # expected 10000 each, standard deviation ~ 94: a 5% tolerance is > 5 sigma.
    np.testing.assert_allclose(counts / n, 1.0 / 8.0, rtol=0.05)

    for t in range(8, 27):  # now wrapped: uniform over all 20 slots
        _add(buffer, t)
    batch = buffer.sample([np.random.default_rng(321)], batch_size=n)
    values, counts = np.unique(batch.reward.ravel(), return_counts=True)
    np.testing.assert_array_equal(values, [_value((0, t)) for t in range(7, 27)])
    np.testing.assert_allclose(counts / n, 1.0 / 20.0, rtol=0.08)  # sd ~ 62 of 4000: > 5 sigma


# ------------------------------------------------------------------------------ checkpoints
def _assert_same(a: ReplayBuffer, b: ReplayBuffer):
    assert (a.position, a.size, a.capacity, a.num_seeds) == (b.position, b.size, b.capacity, b.num_seeds)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f)[:, : a.size], getattr(b, f)[:, : b.size])


@pytest.mark.parametrize("num_adds", [3, 7, 12])  # before, just after and well after wrap-around
def test_state_dict_round_trip(num_adds):
    original = ReplayBuffer(2, 5, OBS_DIM, ACTION_DIM)
    for t in range(num_adds):
        _add(original, t)
    states = [original.state_dict(k) for k in range(2)]
    assert states[0]["data"]["reward"].shape == (min(num_adds, 5),)
    # The state is a copy: later writes to the buffer do not change it.
    saved = states[0]["data"]["reward"].copy()
    restored = ReplayBuffer(2, 5, OBS_DIM, ACTION_DIM)
    restored.load_state_dicts(states)
    _assert_same(original, restored)

    _add(original, 100)
    np.testing.assert_array_equal(states[0]["data"]["reward"], saved)
    _add(restored, 100)
    _assert_same(original, restored)  # the restored buffer writes the next transition to the same slot
    rngs = lambda: [np.random.default_rng(9), np.random.default_rng(10)]  # noqa: E731
    a, b = original.sample(rngs(), 8, 2), restored.sample(rngs(), 8, 2)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))


def test_state_dict_is_per_seed():
    buffer = ReplayBuffer(2, 5, OBS_DIM, ACTION_DIM)
    for t in range(4):
        _add(buffer, t)
    np.testing.assert_array_equal(buffer.state_dict(1)["data"]["reward"], [_value((1, t)) for t in range(4)])


def test_load_state_dicts_errors():
    a = ReplayBuffer(1, 5, OBS_DIM, ACTION_DIM)
    b = ReplayBuffer(1, 5, OBS_DIM, ACTION_DIM)
    for t in range(3):
        _add(a, t)
    for t in range(4):
        _add(b, t)
    target = ReplayBuffer(2, 5, OBS_DIM, ACTION_DIM)
    with pytest.raises(ValueError):  # different positions
        target.load_state_dicts([a.state_dict(0), b.state_dict(0)])
    with pytest.raises(ValueError):  # one state for two seeds
        target.load_state_dicts([a.state_dict(0)])
    with pytest.raises(ValueError):  # capacity mismatch
        ReplayBuffer(1, 6, OBS_DIM, ACTION_DIM).load_state_dicts([a.state_dict(0)])
    # Nothing was half-restored by the failed calls.
    assert (target.size, target.position) == (0, 0)
    assert not target.reward.any()
