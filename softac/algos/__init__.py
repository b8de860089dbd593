"""The algorithms softac trains, one subpackage each (sac, sac_v1, sac_discrete, crossq): its losses
(one pure function per equation) and its agent. `softac.algos.registry` names them; `softac.algos.base`
holds what they share. Equations: docs/algorithms.md."""
