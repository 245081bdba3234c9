"""Moorage's own client: delta push and pull of model directories by content-defined chunks."""
