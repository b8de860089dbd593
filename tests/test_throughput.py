"""softac bench's FLOP count: XLA counts both branches of the delayed actor step's lax.cond, so the mean over
the updates as training runs them must take the actor step's FLOPs once per policy_delay updates."""

import copy

import jax

from softac.algos.registry import make_agent
from softac.throughput import UpdateTimer, mean_update_flops, update_flops
from tests.conftest import tiny_config


def test_mean_update_flops_counts_the_actor_step_once_per_policy_delay(tmp_path):
    agent = make_agent(tiny_config(tmp_path, algo="droq", algo_params={"policy_delay": 4}), 3, 1)
    timer = UpdateTimer(agent)
    counted_every_update = update_flops(agent, timer.state, timer.batch, timer.update)
    critic_only = copy.copy(agent)
    critic_only.actor_step = lambda state, batch, key: state
    critic = update_flops(critic_only, timer.state, timer.batch,
                          jax.jit(jax.vmap(critic_only.update_many, in_axes=(0, 0, None))))
    assert 0 < critic < counted_every_update
    assert abs(timer.flops - (critic + (counted_every_update - critic) / 4)) < 1e-6 * counted_every_update


def test_mean_update_flops_is_xlas_count_without_a_policy_delay(tmp_path):
    agent = make_agent(tiny_config(tmp_path, algo="sac"), 3, 1)
    timer = UpdateTimer(agent)
    assert timer.flops == update_flops(agent, timer.state, timer.batch, timer.update)
    assert mean_update_flops(agent, timer.state, timer.batch, timer.update) == timer.flops


def test_the_update_timer_calls_the_update_as_training_does(tmp_path):
    """One call runs the gradient steps of one env step (DroQ: `gradient_steps` of them), the update index
    advances by that many, and the rate counts updates, not calls."""
    agent = make_agent(tiny_config(tmp_path, algo="droq", gradient_steps=3, algo_params={"policy_delay": 3}), 3, 1)
    timer = UpdateTimer(agent)
    assert timer.updates_per_call == 3
    assert timer.batches.obs.shape[:3] == (1, 3, agent.cfg.batch_size)
    assert timer.batch.obs.shape[:3] == (1, 1, agent.cfg.batch_size)  # the FLOP count is of one update
    done = timer.updates_done
    assert timer.updates_per_second(4) > 0
    assert timer.updates_done == done + 6  # at least 4 updates, in whole calls of 3
    single = UpdateTimer(agent, updates_per_call=1)
    assert single.updates_per_call == 1 and single.flops == timer.flops
