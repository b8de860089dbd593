"""SAC with twin Q targets and a learned temperature (Haarnoja et al. 2018b): `losses`, `agent`."""
