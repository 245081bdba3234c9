"""Supply-chain scanning: layers read as streams, package catalogers, SBOMs (issue 11)."""
