"""The one test harness: servers (servers.py, balancer.py), PostgreSQL + SeaweedFS (backends.py),
HTTP plumbing (http.py) and OCI registry-client helpers (oci.py).

`tests/` is on sys.path (tests/conftest.py sits there without an __init__.py), so every test
imports these as `support.<module>`.
"""
