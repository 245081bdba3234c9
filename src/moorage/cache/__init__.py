"""The pull-through cache: namespaces mapped to an upstream registry (service.py), and the
decorators of the manifest, blob, upload and referrer services that fill them (proxy.py)."""
