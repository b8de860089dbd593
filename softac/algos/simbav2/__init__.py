"""SimbaV2 (Lee et al., 2025): `networks` (hyperspherical layers), `losses` (the categorical critic),
`running_stats` (observation and return statistics), `agent`."""
