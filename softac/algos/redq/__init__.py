"""REDQ, Randomized Ensembled Double Q-learning (Chen et al., ICLR 2021): `params`, `losses` (the target over a
random subset of the ensemble, the actor on the ensemble's mean), `agent`."""
