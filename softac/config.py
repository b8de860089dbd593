"""The one source of configuration: `SACConfig`, its validation, and named presets.

CLI flags, presets and the `config.json` saved in every run directory are all views of this
dataclass. Field names follow Stable-Baselines3 where one exists (`learning_rate`, `buffer_size`,
`learning_starts`, `batch_size`, `tau`, `gamma`, `gradient_steps`, `train_every`,
`target_entropy`, `alpha`). Defaults are the published hyperparameters of SAC v2
(Haarnoja et al. 2018b, Table 1), with `learning_starts` = 5000.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Optional

from softac.algos.params import AlgorithmParams
from softac.algos.registry import AUTO, REGISTRY, algorithm_defaults, algorithm_names, all_param_fields, owners_of
from softac.compiled import is_jax_env
from softac.errors import SoftacError
from softac.fields import check as _check
from softac.fields import doc_field as _doc
from softac.fields import is_finite_number as _finite

# Fields that round-2 configs (softac 0.1) held at the top level for every algorithm and that are now
# the hyperparameters of the algorithm that uses them: a saved config.json with them still loads.
LEGACY_TOP_LEVEL_PARAMS = ("policy_delay", "batch_norm_momentum", "renorm_warmup_steps", "value_learning_rate",
                           "target_entropy_scale")


# The 2018a paper's reward scale for most MuJoCo tasks (20 for Humanoid); sac-v1's default temperature is 1/5.
DEFAULT_V1_REWARD_SCALE = 5.0


@dataclass(frozen=True)
class SACConfig:
    """Hyperparameters and run options of one training run (one or several seeds)."""

    env: str = _doc("Gymnasium environment id; 'module:Id' imports module first (an environment your own "
                    "package registers, Gymnasium's form); 'gymnax:<id>' or 'brax:<name>' trains a JAX-native "
                    "environment entirely inside XLA (softac.compiled).", default="Pendulum-v1")
    env_kwargs: Optional[str] = _doc(
        "Keyword arguments of the environment as a JSON object, e.g. '{\"ctrl_cost_weight\": 0.2}' (gym.make(env, "
        "**kwargs)); a dict in Python. Saved in the run directory, so eval and resume recreate the same environment.",
        default=None)
    flatten_obs: bool = _doc("Wrap the environment in Gymnasium's FlattenObservation (makes a Dict or Tuple "
                             "observation space one flat Box).", default=False)
    num_envs: int = _doc("Environments per seed stepped together each loop iteration (vectorised collection); "
                         "gradient_steps stays per env step, so one dispatch carries num_envs x gradient_steps "
                         "updates.", default=1)
    action_repeat: int = _doc("Repeat each agent action this many env steps, rewards summed (stops at termination "
                              "or truncation); total_steps, learning_starts, the eval/log/checkpoint intervals and "
                              "the metrics count env steps, train_every and gradient_steps agent steps.", default=1)
    algo: str = _doc("Algorithm: a name of the registry (softac.algos.registry; `softac train --help` lists each with "
                     "one line), or 'auto': sac for Box actions, sac-discrete for Discrete ones.", default="auto")
    total_steps: int = _doc("Environment steps to train for, per seed.", default=1_000_000)
    seed: int = _doc("Random seed (used when --seeds is not given).", default=0)
    seeds: Optional[tuple[int, ...]] = _doc(
        "Several seeds trained at once in one process (a leading seed axis, one vmapped update).",
        default=None)

    learning_rate: Optional[float] = _doc(
        "Adam learning rate of every network and the temperature (unless overridden below); default the "
        "algorithm's.", default=None)
    adam_beta1: Optional[float] = _doc("Adam's beta1 for every network and the temperature; default the "
                                       "algorithm's.", default=None)
    actor_learning_rate: Optional[float] = _doc("Learning rate of the policy (lambda_pi); default learning_rate.",
                                                default=None)
    critic_learning_rate: Optional[float] = _doc("Learning rate of the Q networks (lambda_Q); default learning_rate.",
                                                 default=None)
    buffer_size: int = _doc("Replay buffer capacity (transitions, per seed).", default=1_000_000)
    learning_starts: int = _doc("Uniform-random actions and no updates for this many env steps.",
                                default=5000)
    batch_size: int = _doc("Minibatch size of one gradient step.", default=256)
    tau: float = _doc("Polyak coefficient of the target critics: target <- tau*online + (1-tau)*target.",
                      default=0.005)
    gamma: float = _doc("Discount factor.", default=0.99)
    n_steps: int = _doc("n-step returns: the critic's target sums up to n discounted rewards of one episode, then "
                        "bootstraps with gamma^n (every algorithm's target, r + gamma (1 - terminated) V(s'), takes "
                        "it; 1: one-step targets).", default=1)
    train_every: int = _doc("Run the gradient steps once every this many env steps.", default=1)
    gradient_steps: Optional[int] = _doc(
        "Gradient steps per training call (fused into one jitted lax.scan); default the algorithm's.", default=None)
    hidden_sizes: tuple[int, ...] = _doc("Hidden layer widths of the actor (and of the critics unless "
                                         "critic_hidden_sizes is set) (ReLU).", default=(256, 256))
    critic_hidden_sizes: Optional[tuple[int, ...]] = _doc(
        "Hidden layer widths of the critics (and sac-v1's value network); default the algorithm's (hidden_sizes "
        "unless it says otherwise).", default=None)
    network_init: Optional[str] = _doc(
        "Weight initialisation: 'flax' (lecun-normal kernels, zero biases: flax's and SBX's default) or 'pytorch' "
        "(kernels and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)): torch.nn.Linear's, what SB3 and CleanRL start "
        "from); default the algorithm's.", default=None)
    alpha: Optional[float] = _doc("Fixed temperature alpha (sac: learned if unset; sac-v1: 1/reward_scale if unset).",
                                  default=None)
    reward_scale: Optional[float] = _doc("The 2018a paper's reward scale, a fixed temperature alpha = 1/reward_scale.",
                                         default=None)
    learn_alpha: Optional[bool] = _doc("Learn the temperature (default: yes for sac unless alpha or reward_scale is "
                                       "set; no for sac-v1, where learning it is a combination the paper did not use).",
                                       default=None)
    initial_alpha: Optional[float] = _doc("Initial temperature when it is learned; default the algorithm's.",
                                          default=None)
    target_entropy: Optional[float] = _doc("Target entropy of the learned temperature; default -|A| (continuous) "
                                           "or target_entropy_scale * log|A| (discrete).", default=None)

    eval_every: int = _doc("Evaluate the deterministic policy every this many env steps (0: only at the end).",
                           default=10_000)
    eval_episodes: int = _doc("Episodes per evaluation.", default=10)
    stop_at_eval_return: Optional[float] = _doc(
        "Stop (with a checkpoint) once every seed's mean evaluation return reaches this (like SB3's "
        "StopTrainingOnRewardThreshold); unset: train for total_steps.", default=None)
    log_every: int = _doc("Write a metrics row every this many env steps.", default=1000)
    checkpoint_every: int = _doc("Save a checkpoint every this many env steps (0: only at the end).",
                                 default=50_000)
    run_root: str = _doc("Directory under which run directories are created.", default="runs")
    run_name: Optional[str] = _doc("Run directory name (default <env>__<algo>__seed<k>__<timestamp>).",
                                   default=None)
    progress: bool = _doc("Show a progress bar.", default=True)
    print_evaluations: bool = _doc("Print one line per seed at every evaluation (env, seed, step, steps/s, "
                                   "evaluation return): a log for long unattended runs.", default=False)
    tensorboard: bool = _doc("Write TensorBoard event files.", default=True)
    video_every: int = _doc("Record one deterministic evaluation episode of every seed as an MP4 in the run "
                            "directory (videos/) every this many env steps (0: never).", default=0)

    algo_params: Optional[dict] = _doc(
        "The algorithm's own hyperparameters by name (softac.algos.<name>.params; each is also a flag of its "
        "own); unset ones take the algorithm's defaults.", default=None)
    def __post_init__(self) -> None:
        if isinstance(self.env_kwargs, dict):  # Python callers pass a dict; the config holds canonical JSON text
            try:
                object.__setattr__(self, "env_kwargs", json.dumps(self.env_kwargs, sort_keys=True))
            except (TypeError, ValueError) as exc:
                raise SoftacError(f"env_kwargs must be JSON-serialisable ({exc}).") from None
        params = self.algo_params
        if isinstance(params, AlgorithmParams):  # the algorithm's dataclass itself: every field given
            params = params.to_dict()
        if params is not None:
            _check(isinstance(params, dict) and all(isinstance(k, str) for k in params),
                   f"algo_params must be a mapping of field names to values, got {params!r}.")
            params = {k: tuple(v) if isinstance(v, list) else v for k, v in sorted(params.items())} or None
        object.__setattr__(self, "algo_params", params)
        validate(self)

    @property
    def env_steps_per_iteration(self) -> int:
        """Env steps one loop iteration takes per seed: num_envs agent steps of action_repeat env steps each."""
        return self.num_envs * self.action_repeat

    @property
    def env_kwargs_dict(self) -> dict[str, Any]:
        """The environment's keyword arguments (`env_kwargs` parsed; {} when unset)."""
        return {} if self.env_kwargs is None else json.loads(self.env_kwargs)

    # ------------------------------------------------------------ settings that depend on the algorithm
    @property
    def algo_config(self) -> Optional[AlgorithmParams]:
        """The algorithm's own hyperparameters (its `params` dataclass, unset fields at their defaults), or None
        for an algorithm without any (and for 'auto')."""
        spec = REGISTRY.get(self.algo)
        if spec is None or spec.params is None:
            return None
        return spec.params(**(self.algo_params or {}))

    def with_algorithm_defaults(self) -> "SACConfig":
        """This config with every algorithm-dependent field left unset (None) filled with the default of
        `algo` (softac.algos.registry; the SAC defaults while algo is 'auto'), and every hyperparameter of
        the algorithm's own recorded in `algo_params`."""
        defaults = algorithm_defaults(self.algo)
        changes: dict[str, Any] = {name: value for name, value in defaults.items()
                                   if getattr(self, name) is None and value is not None}
        own = self.algo_config
        if own is not None and own.to_dict() != self.algo_params:
            changes["algo_params"] = own.to_dict()
        return dataclasses.replace(self, **changes) if changes else self

    def _setting(self, name: str) -> Any:
        value = getattr(self, name)
        return algorithm_defaults(self.algo)[name] if value is None else value

    def get(self, name: str) -> Any:
        """The value of a shared field or of one of the algorithm's own hyperparameters, by name."""
        if name in _FIELD_NAMES:
            return getattr(self, name)
        own = self.algo_config
        if own is None or name not in own.field_names():
            raise SoftacError(f"{self.algo} has no setting {name!r}.")
        return getattr(own, name)

    @property
    def base_learning_rate(self) -> float:
        return self._setting("learning_rate")

    @property
    def alpha_lr(self) -> float:
        return self.base_learning_rate

    @property
    def actor_lr(self) -> float:
        return self.base_learning_rate if self.actor_learning_rate is None else self.actor_learning_rate

    @property
    def critic_lr(self) -> float:
        return self.base_learning_rate if self.critic_learning_rate is None else self.critic_learning_rate

    @property
    def beta1(self) -> float:
        return self._setting("adam_beta1")

    @property
    def critic_sizes(self) -> tuple[int, ...]:
        sizes = self._setting("critic_hidden_sizes")
        return tuple(self.hidden_sizes if sizes is None else sizes)

    @property
    def fixed_alpha(self) -> Optional[float]:
        """The fixed temperature, or None when it is learned (see the fields alpha, reward_scale, learn_alpha)."""
        if self.alpha is not None:
            return self.alpha
        if self.reward_scale is not None:
            return 1.0 / self.reward_scale
        learned = self.learn_alpha if self.learn_alpha is not None else self.algo != "sac-v1"
        if learned:
            return None
        return 1.0 / DEFAULT_V1_REWARD_SCALE if self.algo == "sac-v1" else self._setting("initial_alpha")

    @property
    def seed_list(self) -> tuple[int, ...]:
        """The seeds this run trains: `seeds` if given, else `(seed,)`."""
        return tuple(self.seeds) if self.seeds else (self.seed,)

    def replace(self, **changes: Any) -> "SACConfig":
        """A copy with `changes` applied; a name that is one of an algorithm's own hyperparameters (such as
        crossq's policy_delay) goes into `algo_params`, so flags, presets and sweep grids use plain names."""
        shared = {k: v for k, v in changes.items() if k in _FIELD_NAMES}
        own = {k: v for k, v in changes.items() if k not in _FIELD_NAMES}
        unknown = sorted(k for k in own if k not in all_param_fields())
        if unknown:
            raise SoftacError(f"Unknown config field(s) {', '.join(unknown)}.")
        if own:
            base = shared.get("algo_params", self.algo_params) or {}
            if isinstance(base, AlgorithmParams):
                base = base.to_dict()
            shared["algo_params"] = {**base, **own}
        return dataclasses.replace(self, **shared)

    @classmethod
    def build(cls, **fields: Any) -> "SACConfig":
        """A config from shared fields and the algorithm's own hyperparameters alike, by plain name:
        `SACConfig.build(algo="crossq", policy_delay=2, env="Hopper-v5")`."""
        names = set(_FIELD_NAMES)
        return cls(**{k: v for k, v in fields.items() if k in names}).replace(
            **{k: v for k, v in fields.items() if k not in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SACConfig":
        """The config of a dict such as config.json's. The hyperparameters that round-2 configs kept at the top
        level for every algorithm (LEGACY_TOP_LEVEL_PARAMS) go to the algorithm that owns them, and are
        dropped for the others, which never used them."""
        data = dict(data)
        algo = data.get("algo", "auto")
        own = dict(data.pop("algo_params", None) or {})
        for name in LEGACY_TOP_LEVEL_PARAMS:
            if name in data:
                value = data.pop(name)
                if algo in owners_of(name):
                    own.setdefault(name, value)
        unknown = sorted(set(data) - set(_FIELD_NAMES))
        if unknown:
            raise SoftacError(f"Unknown config field(s) {', '.join(unknown)}.")
        values = {name: tuple(value) if isinstance(value, list) else value for name, value in data.items()}
        return cls(**values, algo_params=own or None)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(SACConfig))


def field_hints() -> dict[str, Any]:
    """The type of every name a flag, preset or sweep grid may set: SACConfig's fields (but algo_params itself)
    and every algorithm's own hyperparameters."""
    import typing

    hints = {k: v for k, v in typing.get_type_hints(SACConfig).items() if k != "algo_params"}
    for spec in REGISTRY.values():
        if spec.params is not None:
            hints.update({k: v for k, v in typing.get_type_hints(spec.params).items() if k not in hints})
    return hints


def algorithm_choices() -> tuple[str, ...]:
    """The values `algo` takes: 'auto' and every registered algorithm."""
    return ("auto",) + algorithm_names()


def _in_words(names: tuple[str, ...]) -> str:
    """('a',) -> 'a'; ('a', 'b', 'c') -> 'a, b and c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _validate_algo_params(cfg: SACConfig) -> None:
    """Every name in algo_params is a hyperparameter of cfg.algo, and their values are valid."""
    if not cfg.algo_params:
        return
    if cfg.algo == "auto":  # checked again once the action space picks the algorithm (registry.resolve_algo)
        for name in cfg.algo_params:
            candidates = [algo for algo in AUTO.values() if name in REGISTRY[algo].param_names()]
            if not candidates:
                owners = owners_of(name) or ("no algorithm",)
                raise SoftacError(f"--{name.replace('_', '-')} is a setting of {_in_words(owners)}; give --algo "
                                  f"{owners[0]} to use it.")
            REGISTRY[candidates[0]].params(**{name: cfg.algo_params[name]}).validate()
        return
    own = REGISTRY[cfg.algo].param_names()
    for name in cfg.algo_params:
        if name not in own:
            owners = owners_of(name)
            if not owners:
                raise SoftacError(f"There is no setting {name!r} of any algorithm.")
            raise SoftacError(f"--{name.replace('_', '-')} is a setting of {_in_words(owners)}, not of {cfg.algo}.")
    cfg.algo_config.validate()


def validate(cfg: SACConfig) -> None:
    """Raise SoftacError, one sentence, for the first invalid value of `cfg`."""
    _check(isinstance(cfg.env, str) and cfg.env != "", "env must be a non-empty environment id.")
    _check(cfg.env_kwargs is None or _is_json_object(cfg.env_kwargs),
           f"env_kwargs must be a JSON object such as '{{\"key\": 1.0}}', got {cfg.env_kwargs!r}.")
    choices = algorithm_choices()
    _check(cfg.algo in choices, f"algo must be one of {', '.join(choices)}, got {cfg.algo!r}.")
    for name in ("total_steps", "buffer_size", "batch_size", "train_every", "eval_episodes", "log_every",
                 "num_envs", "n_steps"):
        value = getattr(cfg, name)
        _check(isinstance(value, int) and not isinstance(value, bool) and value > 0,
               f"{name} must be a positive integer, got {value!r}.")
    for name in ("learning_starts", "eval_every", "checkpoint_every", "video_every"):
        value = getattr(cfg, name)
        _check(isinstance(value, int) and value >= 0, f"{name} must be a non-negative integer, got {value!r}.")
    _check(cfg.gradient_steps is None or (isinstance(cfg.gradient_steps, int) and cfg.gradient_steps > 0),
           f"gradient_steps must be a positive integer, got {cfg.gradient_steps!r}.")
    for name in ("learning_rate", "actor_learning_rate", "critic_learning_rate"):
        value = getattr(cfg, name)
        _check(value is None or (_finite(value) and value > 0),
               f"{name} must be positive, got {value!r}.")
    _check(cfg.batch_size <= cfg.buffer_size,
           f"batch_size ({cfg.batch_size}) cannot be larger than buffer_size ({cfg.buffer_size}).")
    _check(_finite(cfg.tau) and 0 < cfg.tau <= 1, f"tau must be in (0, 1], got {cfg.tau!r}.")
    _check(_finite(cfg.gamma) and 0 <= cfg.gamma < 1, f"gamma must be in [0, 1), got {cfg.gamma!r}.")
    _check(cfg.alpha is None or (_finite(cfg.alpha) and cfg.alpha > 0),
           f"alpha must be positive, got {cfg.alpha!r}.")
    _check(cfg.reward_scale is None or (_finite(cfg.reward_scale) and cfg.reward_scale > 0),
           f"reward_scale must be positive, got {cfg.reward_scale!r}.")
    _check(cfg.alpha is None or cfg.reward_scale is None,
           "Set either alpha or reward_scale (reward_scale = 1/alpha), not both.")
    _check(not (cfg.learn_alpha and (cfg.alpha is not None or cfg.reward_scale is not None)),
           "learn_alpha cannot be combined with a fixed alpha or reward_scale.")
    _check(cfg.initial_alpha is None or (_finite(cfg.initial_alpha) and cfg.initial_alpha > 0),
           f"initial_alpha must be positive, got {cfg.initial_alpha!r}.")
    _check(cfg.stop_at_eval_return is None or _finite(cfg.stop_at_eval_return),
           f"stop_at_eval_return must be a finite number, got {cfg.stop_at_eval_return!r}.")
    _check(cfg.target_entropy is None or _finite(cfg.target_entropy),
           f"target_entropy must be a finite number, got {cfg.target_entropy!r}.")
    _check(len(cfg.hidden_sizes) > 0 and all(isinstance(h, int) and h > 0 for h in cfg.hidden_sizes),
           f"hidden_sizes must be positive integers, got {cfg.hidden_sizes!r}.")
    _check(cfg.critic_hidden_sizes is None or (
        len(cfg.critic_hidden_sizes) > 0 and all(isinstance(h, int) and h > 0 for h in cfg.critic_hidden_sizes)),
           f"critic_hidden_sizes must be positive integers, got {cfg.critic_hidden_sizes!r}.")
    _check(cfg.network_init in (None, "flax", "pytorch"),
           f"network_init must be 'flax' or 'pytorch', got {cfg.network_init!r}.")
    _check(cfg.adam_beta1 is None or (_finite(cfg.adam_beta1) and 0 <= cfg.adam_beta1 < 1),
           f"adam_beta1 must be in [0, 1), got {cfg.adam_beta1!r}.")
    _check(isinstance(cfg.action_repeat, int) and not isinstance(cfg.action_repeat, bool) and cfg.action_repeat >= 1,
           f"action_repeat must be an integer >= 1 (env steps per agent action), got {cfg.action_repeat!r}.")
    _check(cfg.action_repeat == 1 or not is_jax_env(cfg.env),
           f"action_repeat {cfg.action_repeat} needs a Gymnasium environment; {cfg.env} trains inside XLA, where "
           "actions are not repeated.")
    _check(cfg.total_steps % cfg.num_envs == 0,
           f"total_steps ({cfg.total_steps}) must be a multiple of num_envs ({cfg.num_envs}): every loop iteration "
           "steps all num_envs environments.")
    _check(cfg.total_steps % cfg.env_steps_per_iteration == 0,
           f"total_steps ({cfg.total_steps}) must be a multiple of num_envs x action_repeat "
           f"({cfg.env_steps_per_iteration}): every loop iteration takes that many env steps.")
    if cfg.seeds is not None:
        _check(len(cfg.seeds) > 0, "seeds must list at least one seed.")
        _check(len(set(cfg.seeds)) == len(cfg.seeds), f"seeds must be distinct, got {cfg.seeds!r}.")
        _check(all(isinstance(s, int) and s >= 0 for s in cfg.seeds), "seeds must be non-negative integers.")
    _check(isinstance(cfg.seed, int) and cfg.seed >= 0, f"seed must be a non-negative integer, got {cfg.seed!r}.")
    _check(cfg.run_name is None or _is_plain_name(cfg.run_name),
           f"run_name must be a directory name, not a path (no '/', not empty, '.' or '..'), got {cfg.run_name!r}.")
    _validate_algo_params(cfg)


def _is_json_object(text: Any) -> bool:
    """True for a string holding a JSON object (the form of env_kwargs)."""
    try:
        return isinstance(text, str) and isinstance(json.loads(text), dict)
    except ValueError:
        return False


def _is_plain_name(name: Any) -> bool:
    """True for a single path component: no separator, not empty, not '.' or '..', no NUL."""
    import os

    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name
            and (os.altsep is None or os.altsep not in name))


# Named sets of hyperparameters. A preset changes only what differs from the published defaults.
PRESETS: dict[str, dict[str, Any]] = {
    # The published SAC v2 hyperparameters (Haarnoja et al. 2018b, Table 1) — the defaults.
    "paper": {},
    # Pendulum-v1: short episodes, an easy task; a higher learning rate and a short warm-up
    # (as in the RL Zoo's tuned SAC) learn it in a few thousand steps.
    "pendulum": {"env": "Pendulum-v1", "learning_rate": 1e-3, "learning_starts": 1000,
                 "total_steps": 8000, "eval_every": 2000, "log_every": 500, "checkpoint_every": 0},
    # gymnax's Pendulum-v1 trained inside XLA (softac.compiled), chosen for wall time to a deterministic
    # evaluation of -200: small networks, 4 gradient steps of 64 per env step, lr 2e-3, 500 warm-up steps,
    # evaluations every 250 steps. 5 seeds crossed -200 at 1,250-1,750 env steps; `--stop-at-eval-return -200` took
    # 12.7 s (seed 0) and 20.2 s (5 seeds) from the command's start on 2 CPU cores (README, "Training inside XLA").
    "pendulum-fast": {"env": "gymnax:Pendulum-v1", "hidden_sizes": (64, 64), "learning_rate": 2e-3,
                      "learning_starts": 500, "gradient_steps": 4, "batch_size": 64, "buffer_size": 10_000,
                      "total_steps": 5000, "eval_every": 250, "log_every": 250, "checkpoint_every": 0},
    # CartPole-v1 with discrete SAC: the published network and optimiser, a short warm-up, and the
    # target entropy at half of the uniform policy's (target_entropy_scale 0.5, the default).
    "cartpole": {"env": "CartPole-v1", "learning_starts": 1000, "total_steps": 50_000, "eval_every": 5000,
                 "log_every": 1000, "checkpoint_every": 0},
    # MuJoCo locomotion with the published hyperparameters.
    "halfcheetah": {"env": "HalfCheetah-v5"},
    "hopper": {"env": "Hopper-v5"},
    "walker2d": {"env": "Walker2d-v5"},
    "ant": {"env": "Ant-v5"},
    "humanoid": {"env": "Humanoid-v5"},
    # SAC v1 (2018a, Algorithm 1) with the paper's hyperparameters: lr 3e-4 for V, Q and pi, 256-256
    # ReLU, batch 256, tau 0.005, buffer 1e6, one gradient step per env step, and the reward scale of
    # each task (5 for most MuJoCo tasks, 20 for Humanoid).
    "v1-halfcheetah": {"algo": "sac-v1", "env": "HalfCheetah-v5", "reward_scale": 5.0},
    "v1-hopper": {"algo": "sac-v1", "env": "Hopper-v5", "reward_scale": 5.0},
    "v1-walker2d": {"algo": "sac-v1", "env": "Walker2d-v5", "reward_scale": 5.0},
    "v1-ant": {"algo": "sac-v1", "env": "Ant-v5", "reward_scale": 5.0},
    "v1-humanoid": {"algo": "sac-v1", "env": "Humanoid-v5", "reward_scale": 20.0},
    # Pendulum's rewards reach -16 per step; a temperature of 0.1 (reward scale 10) learned it steadily
    # (-185 at 10k steps, seed 0), where 0.2 (scale 5) reached -197 at 6k but fell back to -266 at 10k.
    "v1-pendulum": {"algo": "sac-v1", "env": "Pendulum-v1", "learning_rate": 1e-3, "learning_starts": 1000,
                    "reward_scale": 10.0, "total_steps": 10_000, "eval_every": 2000, "log_every": 500,
                    "checkpoint_every": 0},
}


def preset(name: str) -> SACConfig:
    """The config of preset `name` (see PRESETS)."""
    if name not in PRESETS:
        raise SoftacError(f"Unknown preset {name!r}; choose one of {', '.join(sorted(PRESETS))}.")
    return SACConfig.build(**PRESETS[name])


# A preset file: a TOML file whose [config] table sets config fields by plain name, as `softac train
# --preset-file FILE` reads it and `softac tune` writes its best trial (best.toml).
PRESET_FILE_SKIPS = ("seed", "seeds", "run_root", "run_name", "progress", "print_evaluations", "checkpoint_every",
                     "algo_params")


def read_toml(path: Any, what: str) -> dict:
    """The TOML file at `path` as a dict; one sentence naming `what` it is if it cannot be read or parsed."""
    import tomllib
    from pathlib import Path

    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise SoftacError(f"Cannot read {what} {path} ({exc.strerror or exc}).") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SoftacError(f"{what[0].upper()}{what[1:]} {path} is not valid TOML ({exc}).") from None


def preset_from_file(path: Any) -> SACConfig:
    """The config of a preset file (its [config] table applied to the defaults); one sentence if it is not one."""
    data = read_toml(path, "the preset file")
    table = data.get("config")
    if not isinstance(table, dict):
        raise SoftacError(f"The preset file {path} has no [config] table of config fields.")
    values = {str(k).replace("-", "_"): tuple(v) if isinstance(v, list) else v for k, v in table.items()}
    try:
        return SACConfig.build(**values)
    except SoftacError as exc:
        raise SoftacError(f"The preset file {path}: {exc}") from None
    except TypeError as exc:  # a value of the wrong kind that the dataclass itself refuses
        raise SoftacError(f"The preset file {path}: {exc}.") from None


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a TOML basic string


def preset_file_text(cfg: SACConfig, comments: tuple[str, ...] = ()) -> str:
    """`cfg` as a preset file: its env and algo and every field that differs from the defaults (the algorithm's
    own by plain name), without the fields of one run (seeds, run directories, progress output)."""
    defaults = SACConfig()
    lines = [f"# {line}" for line in comments] + ["[config]"]
    for f in dataclasses.fields(SACConfig):
        value = getattr(cfg, f.name)
        if f.name in PRESET_FILE_SKIPS or value is None or (value == getattr(defaults, f.name)
                                                            and f.name not in ("env", "algo")):
            continue
        lines.append(f"{f.name} = {_toml_value(value)}")
    own = cfg.algo_params or {}
    if isinstance(own, AlgorithmParams):
        own = own.to_dict()
    lines += [f"{name} = {_toml_value(value)}" for name, value in own.items() if value is not None]
    return "\n".join(lines) + "\n"
