"""Supply-chain scanning: the offline vulnerability database and version semantics (SBOMs,
secrets and model files plug in next to them)."""
