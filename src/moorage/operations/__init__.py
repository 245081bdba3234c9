"""Operating a registry: the integrity check and backup/restore of the embedded default."""
