"""The web UI's handlers: pages for people in a browser (HTML; sessions, not tokens)."""

from .admin import AdminPages
from .pages import Pages
from .sso import SsoPages

__all__ = ["AdminPages", "Pages", "SsoPages"]
