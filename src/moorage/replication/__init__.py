"""Replication between registries: rules (push to / pull from an upstream), the
`replication.run` job that copies what they match, and the post-push processor of `--on-push`."""
