"""CrossQ (Bhatt et al., ICLR 2024): `networks` (Batch Renormalization), `losses`, `agent`."""
