"""Exact dynamic programming for maximum-entropy RL on finite MDPs.

The tabular counterpart of Soft Actor-Critic: soft policy evaluation (Lemma 1), soft policy
improvement (Lemma 2), soft policy iteration and soft value iteration, exactly and with numpy
only (docs/algorithms.md, "Soft policy evaluation and improvement (finite MDPs)").

Modules
-------
* :mod:`softac.tabular.solvers` -- the soft DP math: entropy, soft value, soft Bellman backup,
  soft policy evaluation (iterative and exact), soft policy improvement, soft / ordinary value
  iteration, soft policy iteration.
* :mod:`softac.tabular.fixed_point` -- the one convergence loop the iterative solvers share.
* :mod:`softac.tabular.mdps` -- finite MDPs: random, from gymnasium toy-text tables, by name.
* :mod:`softac.tabular.report` -- the soft policy iteration table and plot (``softac tabular``).
* :mod:`softac.tabular.validation` -- argument checks.

Conventions
-----------
* ``P`` has shape ``[S, A, S]`` with ``P[s, a, s'] = Pr(s' | s, a)``; each
  ``P[s, a, :]`` sums to 1.  ``R`` has shape ``[S, A]`` (expected reward).
  Policies and Q-functions have shape ``[S, A]``; values and entropies ``[S]``.
* ``alpha > 0`` is the temperature, ``gamma`` in ``[0, 1)`` the discount.
  Everything is float64.
* Entropies use ``0 * log 0 = 0``, so deterministic policies are allowed.
* Malformed input raises :class:`softac.errors.SoftacError` with one sentence.
* Gymnasium toy-text MDPs get one extra absorbing terminal state; see :mod:`softac.tabular.mdps`
  for what that means for soft values.
"""

from __future__ import annotations

from softac.tabular.fixed_point import FixedPoint, iterate_to_fixed_point
from softac.tabular.mdps import mdp_from_gymnasium, named_mdp, random_mdp
from softac.tabular.report import soft_policy_iteration_report
from softac.tabular.solvers import (
    entropy,
    optimal_value_iteration,
    soft_bellman_backup,
    soft_policy_evaluation,
    soft_policy_evaluation_exact,
    soft_policy_improvement,
    soft_policy_iteration,
    soft_value,
    soft_value_iteration,
)

__all__ = [
    "FixedPoint",
    "entropy",
    "iterate_to_fixed_point",
    "mdp_from_gymnasium",
    "named_mdp",
    "optimal_value_iteration",
    "random_mdp",
    "soft_bellman_backup",
    "soft_policy_evaluation",
    "soft_policy_evaluation_exact",
    "soft_policy_improvement",
    "soft_policy_iteration",
    "soft_policy_iteration_report",
    "soft_value",
    "soft_value_iteration",
]
