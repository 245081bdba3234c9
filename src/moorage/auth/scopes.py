"""Docker token scopes (`repository:<name>:pull,push`) and the actions each role grants."""

from __future__ import annotations

from dataclasses import dataclass

PULL, PUSH, DELETE = "pull", "push", "delete"
ALL_ACTIONS = frozenset({PULL, PUSH, DELETE})
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "admin": ALL_ACTIONS,
    "maintainer": ALL_ACTIONS,
    "developer": frozenset({PULL, PUSH}),
    "reader": frozenset({PULL}),
}
ROLES = tuple(ROLE_ACTIONS)


@dataclass(frozen=True, slots=True)
class Scope:
    """One requested or granted resource with its actions."""

    type: str
    name: str
    actions: frozenset[str]

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"

    def claim(self) -> dict[str, object]:
        """The JWT `access` entry."""
        return {"type": self.type, "name": self.name, "actions": sorted(self.actions)}


def parse_scope(raw: str) -> Scope | None:
    """Parse `type:name:actions`; None for anything malformed (it is then simply not granted)."""
    parts = raw.split(":")
    if len(parts) < 3:
        return None
    kind, actions = parts[0], parts[-1]
    name = ":".join(parts[1:-1])
    if kind not in ("repository", "registry") or not name or len(name) > 255:
        return None
    wanted = frozenset(a for a in actions.split(",") if a)
    if "*" in wanted:
        wanted = ALL_ACTIONS if kind == "repository" else frozenset({"*"})
    return Scope(kind, name, wanted)


def parse_scopes(values: list[str]) -> list[Scope]:
    """Scopes from every `scope=` parameter (each may hold several, space-separated)."""
    out: list[Scope] = []
    for value in values:
        for raw in value.split():
            scope = parse_scope(raw)
            if scope is not None:
                out.append(scope)
    return out


def namespace_of(repository: str) -> str:
    """The namespace is the first path component of a repository name."""
    return repository.split("/", 1)[0]
