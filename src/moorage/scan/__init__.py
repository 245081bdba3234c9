"""Supply-chain scanning: layers read as streams, package catalogers and SBOMs, the offline
vulnerability database and version semantics (secrets and model files plug in next to them)."""
