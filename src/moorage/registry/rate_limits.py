"""`moorage ratelimit set|list|remove`: the rate limits server admins configure per user, robot,
namespace, or for anonymous clients (see policy/ratelimit.py for the arithmetic)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..auth.authorizer import Authorizer
from ..auth.service import ROBOT_PREFIX
from ..metadata.uow import Database, UnitOfWork
from ..policy.ratelimit import ANONYMOUS_TARGET, InvalidRate, Limits
from .access import NotFound, policy_changed, require_server_admin, valid_namespace

_PREFIXES = {"user:": "user", "namespace:": "namespace", "robot:": "robot"}


def _row(target_kind: str, target: str, limits: dict[str, Any]) -> dict[str, Any]:
    return {"kind": target_kind, "target": target, **Limits.parse(limits).to_dict()}


class RateLimitService:
    """Lists, sets and removes rate limits (server admins); every change is a PolicyChanged
    event, and `changed()` is told after it commits (this process's cache of the limits)."""

    def __init__(self, database: Database, authorizer: Authorizer,
                 changed: Callable[[], None] | None = None) -> None:
        self.database = database
        self.authorizer = authorizer
        self.changed = changed or (lambda: None)

    def list(self, actor: Any) -> list[dict[str, Any]]:
        """Every configured limit, by target kind and name."""
        require_server_admin(self.authorizer, actor, "list rate limits")
        with self.database.read() as uow:
            return [_row(*row) for row in uow.rate_limits.all()]

    def set(self, actor: Any, target: str | None, limits: dict[str, Any]) -> dict[str, Any]:
        """Replace the limits of `target` (a user, `robot$NAME`, a namespace; None: anonymous
        clients, by address); the saved row."""
        require_server_admin(self.authorizer, actor, "set rate limits")
        saved = Limits.parse(limits).to_dict()
        with self.database.write() as uow:
            kind, name = _resolve(uow, target)
            uow.rate_limits.set(kind, name, saved, getattr(actor, "name", None))
            uow.emit(policy_changed(actor, "ratelimit.set", {"kind": kind, "target": name,
                                                             **saved}))
        self.changed()
        return {"kind": kind, "target": name, **saved}

    def remove(self, actor: Any, target: str | None) -> dict[str, Any]:
        """Drop the limits of `target` (None: the anonymous default); NotFound when it has none."""
        require_server_admin(self.authorizer, actor, "remove rate limits")
        with self.database.write() as uow:
            kind, name = _resolve(uow, target, existing=True)
            if not uow.rate_limits.remove(kind, name):
                raise NotFound(f"{kind} {name} has no rate limit")
            uow.emit(policy_changed(actor, "ratelimit.remove", {"kind": kind, "target": name}))
        self.changed()
        return {"kind": kind, "target": name}


def _resolve(uow: UnitOfWork, target: str | None, existing: bool = False) -> tuple[str, str]:
    """(target_kind, target) of a CLI/API target: `robot$NAME`, `user:NAME`, `namespace:NAME`,
    or a bare name that is a user or a namespace (not both); None is the anonymous default."""
    if target is None or target == ANONYMOUS_TARGET:
        return "anonymous", ANONYMOUS_TARGET
    target = target.strip()
    kind: str | None = None
    for prefix, named in _PREFIXES.items():
        if target.startswith(prefix):
            kind, target = named, target[len(prefix):]
    if target.startswith(ROBOT_PREFIX):
        kind, target = "robot", target[len(ROBOT_PREFIX):]
    if not target:
        raise InvalidRate("name a user, a robot (robot$NAME), a namespace, or --anonymous")
    if existing and kind is None:
        # Removing: the row decides, even when its account is gone.
        names = {(k, t) for k, t, _ in uow.rate_limits.all()}
        found = [k for k in ("user", "namespace") if (k, target) in names]
        if len(found) == 1:
            return found[0], target
    is_user = uow.access.get_user(target) is not None
    is_namespace = "/" not in target and uow.access.get_namespace(target) is not None
    if kind is None:
        if is_user and is_namespace:
            raise InvalidRate(f"{target!r} is both a user and a namespace: write user:{target} "
                              f"or namespace:{target}")
        kind = "user" if is_user else "namespace" if is_namespace else None
    if kind == "robot":
        if not existing and uow.access.get_robot(target) is None:
            raise NotFound(f"no robot {ROBOT_PREFIX}{target}")
        return "robot", ROBOT_PREFIX + target
    if kind == "namespace":
        valid_namespace(target)
    if kind is None or (not existing and not (is_user if kind == "user" else is_namespace)):
        raise NotFound(f"no {kind or 'user or namespace'} {target!r}")
    return kind, target
