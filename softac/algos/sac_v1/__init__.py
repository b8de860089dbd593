"""SAC with a state-value network (Haarnoja et al. 2018a, Algorithm 1): `losses`, `agent`."""
