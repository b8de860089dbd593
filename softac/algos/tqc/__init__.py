"""TQC, Truncated Quantile Critics (Kuznetsov et al., ICML 2020): `params`, `networks` (quantile critics),
`losses`, `agent`."""
