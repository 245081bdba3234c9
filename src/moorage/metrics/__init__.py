"""Prometheus metrics: per-process instruments shared across workers, registry gauges read from
the database at scrape time, and the exposition /metrics answers."""
