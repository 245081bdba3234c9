"""The OCI Distribution API under /v2/, one module per resource; dispatch.py routes to them."""
