"""The one place that says yes or no: `Authorizer.require(principal, action, resource)`.

Every access decision (the /v2/ API, the token endpoint's scope intersection, the management
API, the CLI, the lifecycle service) asks an Authorizer. It reads accounts, namespaces and robots and decides;
it never writes and never audits: the edge that asked records a denial, once (web/auth.py).
With authentication off, `OpenAuthorizer` allows everything (a no-op twin, not `None` checks).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from ..metadata.rows import NamespaceRow, RobotRow
from ..metadata.uow import Database
from ..oci.errors import AccessDenied
from .identity import Principal, robot_unusable_reason
from .scopes import ALL_ACTIONS, DELETE, PULL, PUSH, ROLE_ACTIONS, Scope, namespace_of

POLICY_CACHE_SECONDS = 2.0
_VERBS = {PULL: "pulling", PUSH: "pushing", DELETE: "deleting"}
_MIN_ROLE = {PULL: "reader", PUSH: "developer", DELETE: "maintainer"}
_ROBOT_ONLY = {PUSH: "pushes", DELETE: "deletes"}


class Action(StrEnum):
    """What a principal wants to do (the repository ones are the token scopes' action names)."""

    PULL = PULL
    PUSH = PUSH
    DELETE = DELETE
    CATALOG = "catalog"  # list every repository (filtered by PULL)
    VIEW_NAMESPACE = "view-namespace"  # see a namespace's settings and members
    CREATE_NAMESPACE = "create-namespace"  # create it by pushing into it
    ADMIN_NAMESPACE = "admin-namespace"  # members, robots, policies, quota of a namespace
    ADMIN_SERVER = "admin-server"  # accounts, namespaces, audit log, GC, every namespace
    ACCOUNT = "account"  # change an account's own settings (its password)


REPOSITORY_ACTIONS = (Action.PULL, Action.PUSH, Action.DELETE)


@dataclass(frozen=True, slots=True)
class Resource:
    """What an action is on: a repository, a namespace, an account, or the server."""

    kind: str  # repository | namespace | account | server
    name: str = ""

    @property
    def namespace(self) -> str:
        """The namespace a repository or namespace resource lives in."""
        return namespace_of(self.name)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind


SERVER = Resource("server")


def repository(name: str) -> Resource:
    """The resource of a repository name."""
    return Resource("repository", name)


def namespace(name: str) -> Resource:
    """The resource of a namespace name."""
    return Resource("namespace", name)


def account(name: str) -> Resource:
    """The resource of an account (user) name."""
    return Resource("account", name)


class Authorizer:
    """Roles per namespace, public namespaces, robots' permissions, server admins: `allows` to
    filter (catalog, mount candidates, token scopes), `require` to refuse with a reason."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._cache: dict[tuple[str, str], tuple[frozenset[str], float]] = {}

    # -- decisions ----------------------------------------------------------------------------

    def require(self, principal: Principal, action: Action | str, resource: Resource,
                doing: str | None = None) -> None:
        """Return if allowed, else raise AccessDenied with a sentence the caller can act on."""
        action = Action(action)
        if not self.allows(principal, action, resource):
            raise AccessDenied(self.reason(principal, action, resource, doing),
                               action=action.value, resource=str(resource))

    def grant(self, principal: Principal, requested: list[Scope]) -> list[Scope]:
        """What a token may carry: the intersection of what was asked and what is allowed."""
        granted = []
        for scope in requested:
            if scope.type == "repository":
                resource = repository(scope.name)
                actions = frozenset(a for a in scope.actions if a in REPOSITORY_ACTIONS
                                    and self.allows(principal, a, resource))
            elif scope.type == "registry" and scope.name == "catalog":
                actions = scope.actions & frozenset({"*"})
                if not self.allows(principal, Action.CATALOG, SERVER):
                    actions = frozenset()
            else:
                actions = frozenset()
            if actions:
                granted.append(Scope(scope.type, scope.name, actions))
        return granted


    def allows(self, principal: Principal, action: Action | str, resource: Resource) -> bool:
        """Whether `principal` may do `action` on `resource` right now."""
        action = Action(action)
        if action in REPOSITORY_ACTIONS:
            return resource.kind == "repository" and action in self.repository_actions(
                principal, resource.name)
        if action is Action.ADMIN_SERVER:
            return _server_admin(principal)
        if action is Action.CATALOG:
            return not principal.anonymous
        if action is Action.ACCOUNT:
            return _server_admin(principal) or (principal.kind == "user"
                                                and principal.name == resource.name)
        if action is Action.ADMIN_NAMESPACE:
            return _server_admin(principal) or self._role(principal, resource.name) == "admin"
        if action is Action.CREATE_NAMESPACE:
            return _server_admin(principal) or (principal.kind == "user"
                                                and principal.name == resource.name)
        if action is Action.VIEW_NAMESPACE:
            ns = self._namespace(resource.name)
            return ns is not None and (_server_admin(principal) or ns.visibility == "public"
                                       or self._role(principal, resource.name) is not None)
        return False

    def repository_actions(self, principal: Principal, name: str) -> frozenset[str]:
        """Everything `principal` may do on repository `name` (cached for a moment)."""
        who = f"{principal.kind}:{principal.name}:{int(principal.is_admin)}"
        key = (who + _grants_key(principal), name)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        actions = self._compute(principal, name)
        self._cache[key] = (actions, now + POLICY_CACHE_SECONDS)
        if len(self._cache) > 50_000:
            self._cache.clear()
        return actions

    def forget(self) -> None:
        """Drop cached decisions after a permission change in this process."""
        self._cache.clear()

    def _compute(self, principal: Principal, name: str) -> frozenset[str]:
        ns_name = namespace_of(name)
        ns = self._namespace(ns_name)
        actions: set[str] = set()
        if ns is not None and ns.visibility == "public":
            actions.add(PULL)
        if principal.kind == "robot":
            return frozenset(actions | self._robot_permissions(principal).get(ns_name, set()))
        if principal.kind == "oidc":
            return frozenset(actions | dict(principal.grants).get(ns_name, frozenset()))
        if principal.kind not in ("user", "system"):
            return frozenset(actions)
        if _server_admin(principal):
            return ALL_ACTIONS
        if ns is None:
            # A user's personal namespace is theirs to create by pushing to it.
            return frozenset({PULL, PUSH, DELETE}) if ns_name == principal.name else frozenset()
        role = self._role(principal, ns_name)
        if role is not None:
            actions |= ROLE_ACTIONS[role]
        if ns.robot_only_push:
            actions -= {PUSH, DELETE}
        return frozenset(actions)

    def _robot_permissions(self, principal: Principal) -> dict[str, frozenset[str]]:
        # Read fresh (the decision is cached briefly): a robot revoked or expired since its
        # credentials were checked loses its access at once, in every process.
        robot = self._robot(principal.name)
        if robot is None or robot_unusable_reason(robot, principal.name) is not None:
            return {}
        return robot.permissions

    def _role(self, principal: Principal, ns_name: str) -> str | None:
        if principal.kind != "user":
            return None
        user_id = principal.user_id
        with self.database.read() as uow:
            if user_id is None:  # a principal rebuilt from a token's subject alone
                user = uow.access.get_user(principal.name)
                user_id = user.id if user is not None else None
            return uow.access.role_of(ns_name, user_id) if user_id is not None else None

    def _namespace(self, name: str) -> NamespaceRow | None:
        with self.database.read() as uow:
            return uow.access.get_namespace(name)

    def _robot(self, name: str) -> RobotRow | None:
        with self.database.read() as uow:
            return uow.access.get_robot(name.removeprefix("robot$"))

    # -- reasons ------------------------------------------------------------------------------

    def reason(self, principal: Principal, action: Action, resource: Resource,
               doing: str | None = None) -> str:
        """Why `principal` may not `action` on `resource`, in one sentence a user can act on."""
        doing = doing or "do this"
        if action in REPOSITORY_ACTIONS:
            return self._repository_reason(principal, resource.name, action.value)
        if action is Action.ADMIN_SERVER:
            return f"only a server admin may {doing}"
        if action is Action.ADMIN_NAMESPACE:
            return f"only an admin of namespace {resource.name!r} may {doing}"
        if action is Action.ACCOUNT:
            return "you may only change your own password"
        if action is Action.CREATE_NAMESPACE:
            return (f"namespace {resource.name} does not exist: a server admin must create it "
                    f"before {principal.name} can push to it")
        if action is Action.CATALOG:
            return "anonymous callers may not list the catalog: log in first"
        return f"{principal.name} may not see namespace {resource.name}"

    def _repository_reason(self, principal: Principal, name: str, action: str) -> str:
        """A private namespace and one that does not exist get the same answer, so a denial
        never tells an outsider which private namespaces exist."""
        ns_name = namespace_of(name)
        verb = _VERBS.get(action, action)
        if principal.kind == "robot":
            robot = self._robot(principal.name)
            problem = robot_unusable_reason(robot, principal.name) if robot else None
            if problem is not None:
                return problem
            granted = robot.permissions.get(ns_name) if robot else None
            if not granted:
                return (f"{principal.name} has no permissions in namespace {ns_name}: "
                        f"{verb} needs a robot with {action} there")
            return (f"{principal.name} may only {','.join(sorted(granted))} in namespace "
                    f"{ns_name}: {verb} needs a robot with {action} there")
        if principal.kind == "oidc":
            granted = dict(principal.grants).get(ns_name)
            has = f"only {','.join(sorted(granted))}" if granted else "nothing"
            return (f"{principal.name} was granted {has} in namespace {ns_name} by the OIDC "
                    f"rules its token matched: {verb} needs a rule granting {action} there")
        if principal.kind != "user":
            return f"anonymous callers may not {action} {name}: log in first"
        ns = self._namespace(ns_name)
        role = self._role(principal, ns_name) if ns else None
        if ns is None or (ns.visibility != "public" and role is None):
            return (f"{principal.name} is not a member of namespace {ns_name} (private or "
                    f"nonexistent): ask a namespace admin for a role")
        if role is not None and action in ROLE_ACTIONS[role]:
            if ns.robot_only_push and action in _ROBOT_ONLY:
                return f"namespace {ns_name} accepts {_ROBOT_ONLY[action]} from robot accounts only"
            # A decision cached (for seconds) from before a role change.
            return (f"{principal.name} may not {action} {name} yet: its permissions changed "
                    "a moment ago, try again")
        needed = _MIN_ROLE.get(action, "admin")
        has = f"has role {role}" if role is not None else "has no role"
        return f"{principal.name} {has} in namespace {ns_name}: {verb} needs {needed} or above"


class OpenAuthorizer(Authorizer):
    """Authentication is off (`--no-auth`): everything is allowed."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[frozenset[str], float]] = {}

    def allows(self, principal: Principal, action: Action | str, resource: Resource) -> bool:
        """Always."""
        return True

    def reason(self, principal: Principal, action: Action, resource: Resource,
               doing: str | None = None) -> str:
        return "allowed"  # never asked: nothing is denied


def _grants_key(principal: Principal) -> str:
    """The part of a cache key that tells apart OIDC principals granted different things."""
    return "".join(f"|{ns}={','.join(sorted(a))}" for ns, a in sorted(principal.grants))


def _server_admin(principal: Principal) -> bool:
    return principal.is_admin and principal.kind in ("user", "system")
