"""The web UI: sessions, view models and templates (rendered by web/ui/, jinja2 loaded lazily)."""
