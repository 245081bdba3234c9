"""The jinja2 environment of the UI, built on the first page (never imported for /v2/)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .views import human_size, when

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """One autoescaping environment over the package's templates."""
    import jinja2  # here: jinja2 costs memory only in processes that serve a UI page

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = human_size
    env.filters["when"] = when
    env.filters["short"] = lambda d: str(d).split(":", 1)[-1][:12]
    return env


def render(template: str, **context: Any) -> str:
    """The named template rendered with `context`."""
    return environment().get_template(template).render(**context)
