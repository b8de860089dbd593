"""The registry: every algorithm softac trains, by the name `--algo` takes. Adding an algorithm is one
subpackage of `softac.algos` (its params, networks, losses and agent) and one entry here; the trainer,
replay buffer, checkpoints, seeds axis, CLI flags, config.json, presets, sweeps, export and the contract
tests (tests/test_algorithm_contract.py) then serve it.

This module imports no JAX: an entry names its agent class by import path (loaded by `make_agent`) and
its hyperparameters by their light dataclass, so the command line can parse and check flags first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from softac.algos.crossq.params import SEARCH_SPACE as CROSSQ_SEARCH_SPACE
from softac.algos.crossq.params import CrossQParams
from softac.algos.droq.params import SEARCH_SPACE as DROQ_SEARCH_SPACE
from softac.algos.droq.params import DroQParams
from softac.algos.redq.params import SEARCH_SPACE as REDQ_SEARCH_SPACE
from softac.algos.redq.params import REDQParams
from softac.algos.sac_discrete.params import SEARCH_SPACE as SAC_DISCRETE_SEARCH_SPACE
from softac.algos.sac_discrete.params import SACDiscreteParams
from softac.algos.sac_v1.params import SEARCH_SPACE as SAC_V1_SEARCH_SPACE
from softac.algos.sac_v1.params import SACV1Params
from softac.algos.simbav2.params import SEARCH_SPACE as SIMBAV2_SEARCH_SPACE
from softac.algos.simbav2.params import SimbaV2Params
from softac.algos.spec import COMMON_DEFAULTS, SOFT_ACTOR_CRITIC_METRICS, AlgorithmSpec
from softac.algos.tqc.params import SEARCH_SPACE as TQC_SEARCH_SPACE
from softac.algos.tqc.params import TQCParams
from softac.errors import SoftacError

if TYPE_CHECKING:
    from softac.algos.base import Agent
    from softac.config import SACConfig
    from softac.envs import ActionSpec

REGISTRY: dict[str, AlgorithmSpec] = {spec.name: spec for spec in (
    AlgorithmSpec("sac", "softac.algos.sac.agent:SAC", discrete=False, metrics=SOFT_ACTOR_CRITIC_METRICS,
                  summary="twin Q targets, learned temperature (Haarnoja et al. 2018b)",
                  # HalfCheetah-v5, 100k steps, 3 seeds: 5,278 +- 338 with PyTorch's initialisation, 4,400 +- 151
                  # with flax's (docs/benchmarks.md, "Initialisation").
                  config_defaults={"network_init": "pytorch"}),
    AlgorithmSpec("sac-v1", "softac.algos.sac_v1.agent:SACV1", discrete=False,
                  metrics=SOFT_ACTOR_CRITIC_METRICS + ("value_loss", "v_mean"),
                  summary="state-value network V and target V, fixed temperature (2018a, Algorithm 1)",
                  params=SACV1Params, search_space=SAC_V1_SEARCH_SPACE),
    AlgorithmSpec("sac-discrete", "softac.algos.sac_discrete.agent:SACDiscrete", discrete=True,
                  metrics=SOFT_ACTOR_CRITIC_METRICS,
                  summary="categorical policy, exact expectations (Christodoulou 2019)", params=SACDiscreteParams, search_space=SAC_DISCRETE_SEARCH_SPACE),
    AlgorithmSpec("crossq", "softac.algos.crossq.agent:CrossQ", discrete=False, metrics=SOFT_ACTOR_CRITIC_METRICS,
                  summary="no target networks, Batch Renormalization, joint forward pass (Bhatt et al. 2024)",
                  # The authors' settings: lr 1e-3, Adam beta1 0.5, 2048-wide critics (policy delay 3: CrossQParams).
                  config_defaults={"learning_rate": 1e-3, "adam_beta1": 0.5, "critic_hidden_sizes": (2048, 2048)},
                  params=CrossQParams, search_space=CROSSQ_SEARCH_SPACE),
    AlgorithmSpec("tqc", "softac.algos.tqc.agent:TQC", discrete=False, metrics=SOFT_ACTOR_CRITIC_METRICS,
                  summary="truncated mixture of quantile critics, learned temperature (Kuznetsov et al. 2020)",
                  # SAC's shared settings as sb3-contrib (lr 3e-4, batch 256, tau 0.005), and its PyTorch
                  # initialisation, as SAC's: HalfCheetah-v5, 100k, 3 seeds: 4,421 +- 446 with it, 4,021 +- 475 with
                  # flax's (suites tqc-init-100k and tqc-100k, docs/benchmarks.md).
                  config_defaults={"network_init": "pytorch"}, params=TQCParams, search_space=TQC_SEARCH_SPACE),
    AlgorithmSpec("droq", "softac.algos.droq.agent:DroQ", discrete=False, metrics=SOFT_ACTOR_CRITIC_METRICS,
                  summary="twin critics with dropout and layer norm, 20 updates per env step (Hiraoka et al. 2022)",
                  # SBX's DroQ: 20 gradient steps per env step, the actor once per env step (policy_delay 20: DroQParams).
                  config_defaults={"gradient_steps": 20}, params=DroQParams, search_space=DROQ_SEARCH_SPACE),
    AlgorithmSpec("redq", "softac.algos.redq.agent:REDQ", discrete=False, metrics=SOFT_ACTOR_CRITIC_METRICS,
                  summary="10 critics, target min over a random 2 of them, 20 updates per env step (Chen et al. 2021)",
                  # The authors' REDQ-SAC: UTD ratio 20, the actor once per env step (N, M, policy_delay: REDQParams).
                  config_defaults={"gradient_steps": 20}, params=REDQParams, search_space=REDQ_SEARCH_SPACE),
    AlgorithmSpec("simbav2", "softac.algos.simbav2.agent:SimbaV2", discrete=False,
                  metrics=SOFT_ACTOR_CRITIC_METRICS + ("reward_divisor",),
                  summary="hyperspherical networks, categorical critic, normalised observations and rewards "
                          "(Lee et al. 2025)",
                  # The authors' settings: lr 1e-4 (decaying to 5e-5: SimbaV2Params), UTD 2, initial alpha 0.01.
                  config_defaults={"learning_rate": 1e-4, "gradient_steps": 2, "initial_alpha": 0.01},
                  params=SimbaV2Params, search_space=SIMBAV2_SEARCH_SPACE),
)}

#: `--algo auto` picks the first registered algorithm for the action space: sac (Box), sac-discrete (Discrete).
AUTO = {False: "sac", True: "sac-discrete"}


def algorithm_names() -> tuple[str, ...]:
    return tuple(REGISTRY)


def get_spec(name: str) -> AlgorithmSpec:
    if name not in REGISTRY:
        raise SoftacError(f"Unknown algorithm {name!r}; choose one of {', '.join(REGISTRY)} (or auto).")
    return REGISTRY[name]


def algorithm_defaults(algo: str) -> dict[str, Any]:
    """The values of the algorithm-dependent shared fields for `algo` (the SAC ones for 'auto')."""
    spec = REGISTRY.get(algo)
    return {**COMMON_DEFAULTS, **(spec.config_defaults if spec is not None else {})}


def owners_of(param_name: str) -> tuple[str, ...]:
    """The algorithms that have a hyperparameter of this name of their own."""
    return tuple(name for name, spec in REGISTRY.items() if param_name in spec.param_names())


def all_param_fields() -> dict[str, list[tuple[str, Any]]]:
    """Every algorithm's own hyperparameter by name: name -> [(algorithm, dataclass field), ...]."""
    import dataclasses

    fields: dict[str, list[tuple[str, Any]]] = {}
    for name, spec in REGISTRY.items():
        if spec.params is not None:
            for f in dataclasses.fields(spec.params):
                fields.setdefault(f.name, []).append((name, f))
    return fields


def resolve_algo(cfg: "SACConfig", spec: "ActionSpec") -> "SACConfig":
    """`cfg` with algo 'auto' replaced by the algorithm of the action space and the algorithm's defaults
    filled in (every field concrete, as config.json records it); SoftacError on a mismatch."""
    algo = AUTO[spec.discrete] if cfg.algo == "auto" else cfg.algo
    algorithm = get_spec(algo)
    if algorithm.discrete != spec.discrete:
        kind = "a Discrete" if spec.discrete else "a continuous (Box)"
        handles = [s.name for s in REGISTRY.values() if s.discrete == spec.discrete]
        raise SoftacError(f"{cfg.env} has {kind} action space, which --algo {algo} does not handle; "
                          f"use --algo {' or '.join(handles)} (or auto).")
    return cfg.replace(algo=algo).with_algorithm_defaults()


def make_agent(cfg: "SACConfig", obs_dim: int, action_dim: int) -> "Agent":
    """The agent of `cfg.algo` (resolved, not 'auto') for these observation and action sizes."""
    return get_spec(cfg.algo).agent_class()(cfg.with_algorithm_defaults(), obs_dim, action_dim)


def metric_names() -> tuple[str, ...]:
    """Every metric some registered algorithm may return, in registry order."""
    names: list[str] = []
    for spec in REGISTRY.values():
        names += [m for m in spec.metrics if m not in names]
    return tuple(names)
