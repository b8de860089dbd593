"""SAC for discrete actions (Christodoulou 2019): `losses`, `agent`."""
