"""An environment module that imports, registers an id, and whose environment raises while it is constructed:
softac must stop with one sentence naming the module and the error (tests/test_env_loading.py)."""

import gymnasium as gym


class FailsToConstruct(gym.Env):
    def __init__(self):
        raise AttributeError("'MjModel' object has no attribute 'flex_vertedge'")


if "FakeFailsToConstruct-v0" not in gym.registry:
    gym.register(id="FakeFailsToConstruct-v0", entry_point="tests.fake_env_module_that_fails_to_construct:FailsToConstruct")
