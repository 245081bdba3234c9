"""ML models as first-class artifacts: recognising ModelPack, KitOps and Docker models on push,
their files and tensors, lineage, search and diff (the `post-push.models` job)."""
