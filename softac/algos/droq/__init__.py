"""DroQ, Dropout Q-functions (Hiraoka et al., ICLR 2022): `params`, `networks` (critics with dropout and layer
normalisation), `losses`, `agent`."""
