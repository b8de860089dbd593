"""An environment module that fails on import, as dm_control does on a MuJoCo it does not support: softac must stop
with one sentence naming the module and the error (tests/test_env_loading.py)."""

import gymnasium as gym

gym.register(id="FakeRaisesOnImport-v0", entry_point="tests.fake_env_module_that_raises:Never")

raise AttributeError("module 'mujoco' has no attribute 'flex_vertedge' (a stand-in for dm_control on mujoco 4)")
