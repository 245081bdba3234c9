"""The Authorizer on the embedded default (SQLite), no HTTP: namespaces and robots are made
through AdminService as the CLI makes them, accounts through the store with a hash made once, and
every decision is asked of the Authorizer."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from moorage.auth.admin import AdminService
from moorage.auth.authorizer import (
    SERVER,
    Action,
    Authorizer,
    OpenAuthorizer,
    account,
    namespace,
    repository,
)
from moorage.auth.identity import ANONYMOUS, CLI, SYSTEM, Principal
from moorage.auth.scopes import Scope, parse_scopes
from moorage.auth.service import AuthService
from moorage.events.audit import AuditLog
from moorage.metadata.engine import make_engine, sqlite_url
from moorage.metadata.migrate import upgrade
from moorage.metadata.uow import Database
from moorage.oci.errors import AccessDenied, Unauthorized

REPO_ACTIONS = (Action.PULL, Action.PUSH, Action.DELETE)
ROLE_ACTIONS = {
    "admin": {"pull", "push", "delete"},
    "maintainer": {"pull", "push", "delete"},
    "developer": {"pull", "push"},
    "reader": {"pull"},
}
PASSWORD = "correct-horse-1"
# Production parameters cost ~1 s a hash on a loaded box, and nothing here verifies a password:
# one cheap argon2id hash (its parameters travel in it, so it still verifies) serves every account.
PASSWORD_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)


class Env:
    """A migrated SQLite database with the services the CLI uses on it."""

    def __init__(self, data_dir: Path) -> None:
        engine = make_engine(sqlite_url(data_dir), 2)
        upgrade(engine)
        self.engine = engine
        self.database = Database(engine)
        self.authorizer = Authorizer(self.database)
        self.auth = AuthService(self.database)
        self.admin = AdminService(self.database, self.auth, AuditLog(self.database),
                                  self.authorizer)

    def namespace(self, name: str):  # type: ignore[no-untyped-def]
        with self.database.read() as uow:
            return uow.access.get_namespace(name)

    def user(self, name: str, admin: bool = False) -> Principal:
        # AdminService.add_user (checks, hashing, audit) is tested through the CLI in tests/auth.
        with self.database.write() as uow:
            assert uow.access.create_user(name, PASSWORD_HASH, admin)
        self.authorizer.forget()
        return self.auth.principal_from_claims("user", name)

    def robot(self, name: str, permissions: dict[str, list[str]],
              expires_in: float | None = None) -> Principal:
        created = self.admin.add_robot(CLI, name, permissions, expires_in)
        return self.auth.principal_from_claims("robot", created["name"])

    def may(self, who: Principal, repo: str) -> set[str]:
        return {a.value for a in REPO_ACTIONS if self.authorizer.allows(who, a, repository(repo))}

    def reason(self, who: Principal, action: Action, resource, doing: str | None = None) -> str:
        with pytest.raises(AccessDenied) as caught:
            self.authorizer.require(who, action, resource, doing)
        assert caught.value.status == 403 and caught.value.code == "DENIED"
        assert caught.value.action == action.value
        return caught.value.message


@pytest.fixture
def env(tmp_path: Path) -> Env:
    e = Env(tmp_path)
    yield e
    e.engine.dispose()


@pytest.mark.parametrize("role", list(ROLE_ACTIONS))
def test_each_role_grants_its_actions_in_a_private_namespace(env: Env, role: str):
    env.admin.add_namespace(CLI, "team")
    who = env.user("member")
    env.admin.set_member(CLI, "team", "member", role)
    assert env.may(who, "team/app") == ROLE_ACTIONS[role]
    for action in REPO_ACTIONS:
        if action.value not in ROLE_ACTIONS[role]:
            needed = {"push": "developer", "delete": "maintainer"}[action.value]
            verb = {"push": "pushing", "delete": "deleting"}[action.value]
            assert env.reason(who, action, repository("team/app")) == (
                f"member has role {role} in namespace team: {verb} needs {needed} or above")


def test_private_and_missing_namespaces_refuse_outsiders_alike(env: Env):
    env.admin.add_namespace(CLI, "team")
    outsider = env.user("outsider")
    for ns in ("team", "nowhere"):
        assert env.may(outsider, f"{ns}/app") == set()
        assert env.reason(outsider, Action.PULL, repository(f"{ns}/app")) == (
            f"outsider is not a member of namespace {ns} (private or nonexistent): ask a "
            "namespace admin for a role")
    assert env.may(ANONYMOUS, "team/app") == set()
    assert env.reason(ANONYMOUS, Action.PULL, repository("team/app")) == (
        "anonymous callers may not pull team/app: log in first")


def test_public_namespace_lets_anyone_pull_and_nobody_else_push(env: Env):
    env.admin.add_namespace(CLI, "pub", "public")
    outsider = env.user("outsider")
    assert env.may(ANONYMOUS, "pub/app") == {"pull"}
    assert env.may(outsider, "pub/app") == {"pull"}
    assert env.reason(outsider, Action.PUSH, repository("pub/app")) == (
        "outsider has no role in namespace pub: pushing needs developer or above")
    assert env.authorizer.allows(outsider, Action.VIEW_NAMESPACE, namespace("pub"))


def test_robot_only_push_refuses_people_and_admits_robots(env: Env):
    env.admin.add_namespace(CLI, "ci")
    env.admin.set_member(CLI, "ci", env.user("dev").name, "maintainer")
    env.admin.update_namespace(CLI, "ci", robot_only_push=True)
    dev = env.auth.principal_from_claims("user", "dev")
    assert env.may(dev, "ci/app") == {"pull"}
    assert env.reason(dev, Action.PUSH, repository("ci/app")) == (
        "namespace ci accepts pushes from robot accounts only")
    assert env.reason(dev, Action.DELETE, repository("ci/app")) == (
        "namespace ci accepts deletes from robot accounts only")
    bot = env.robot("builder", {"ci": ["pull", "push"]})
    assert env.may(bot, "ci/app") == {"pull", "push"}


def test_robot_permissions_are_per_namespace_and_explained(env: Env):
    env.admin.add_namespace(CLI, "team")
    env.admin.add_namespace(CLI, "other")
    bot = env.robot("reader", {"team": ["pull"]})
    assert env.may(bot, "team/app") == {"pull"}
    assert env.may(bot, "other/app") == set()
    assert env.reason(bot, Action.PUSH, repository("team/app")) == (
        "robot$reader may only pull in namespace team: pushing needs a robot with push there")
    assert env.reason(bot, Action.PULL, repository("other/app")) == (
        "robot$reader has no permissions in namespace other: pulling needs a robot with pull "
        "there")
    # robots administer nothing, whatever they may push
    assert not env.authorizer.allows(bot, Action.ADMIN_NAMESPACE, namespace("team"))
    assert not env.authorizer.allows(bot, Action.ADMIN_SERVER, SERVER)


def test_a_revoked_robot_loses_its_access_at_once(env: Env):
    env.admin.add_namespace(CLI, "team")
    bot = env.robot("gone", {"team": ["pull", "push"]})
    assert env.may(bot, "team/app") == {"pull", "push"}
    env.admin.revoke_robot(CLI, "robot$gone")  # forgets cached decisions, as the API does
    # the principal checked before the revocation (a cached login) no longer gets anything
    assert env.may(bot, "team/app") == set()
    assert env.reason(bot, Action.PULL, repository("team/app")) == (
        "robot$gone was revoked: ask a namespace admin for a new robot account")
    with pytest.raises(Unauthorized, match="was revoked"):
        env.auth.principal_from_claims("robot", "robot$gone")


def test_an_expired_robot_has_no_access(env: Env):
    env.admin.add_namespace(CLI, "team")
    bot = env.robot("brief", {"team": ["pull"]}, expires_in=0.5)
    assert env.may(bot, "team/app") == {"pull"}
    time.sleep(0.6)
    env.authorizer.forget()
    assert env.may(bot, "team/app") == set()
    assert env.reason(bot, Action.PULL, repository("team/app")).startswith(
        "robot$brief expired at ")
    with pytest.raises(Unauthorized, match="expired at"):
        env.auth.principal_from_claims("robot", "robot$brief")


def test_a_server_admin_may_do_everything_and_others_are_told_who_may(env: Env):
    env.admin.add_namespace(CLI, "team")
    root = env.user("root", admin=True)
    plain = env.user("plain")
    assert env.may(root, "team/app") == {"pull", "push", "delete"}
    assert env.may(root, "nowhere/app") == {"pull", "push", "delete"}
    for resource, action in ((SERVER, Action.ADMIN_SERVER), (namespace("team"),
                             Action.ADMIN_NAMESPACE), (account("plain"), Action.ACCOUNT)):
        assert env.authorizer.allows(root, action, resource)
        assert env.authorizer.allows(CLI, action, resource)  # the CLI acts as a server admin
        assert env.authorizer.allows(SYSTEM, action, resource)  # and so does the schedule
    assert env.reason(plain, Action.ADMIN_SERVER, SERVER) == "only a server admin may do this"
    assert env.reason(plain, Action.ADMIN_SERVER, SERVER, "run garbage collection") == (
        "only a server admin may run garbage collection")
    with pytest.raises(AccessDenied, match="only a server admin may do this"):
        env.admin.add_user(plain, "sneaky", PASSWORD)


def test_only_namespace_admins_administer_a_namespace(env: Env):
    env.admin.add_namespace(CLI, "team")
    for role in ROLE_ACTIONS:
        env.admin.set_member(CLI, "team", env.user(role).name, role)
    boss = env.auth.principal_from_claims("user", "admin")
    assert env.authorizer.allows(boss, Action.ADMIN_NAMESPACE, namespace("team"))
    env.admin.set_member(boss, "team", "reader", "developer")  # through AdminService too
    maintainer = env.auth.principal_from_claims("user", "maintainer")
    assert env.reason(maintainer, Action.ADMIN_NAMESPACE, namespace("team"),
                      "change its policies") == (
        "only an admin of namespace 'team' may change its policies")
    with pytest.raises(AccessDenied, match="only an admin of namespace 'team' may do this"):
        env.admin.set_member(maintainer, "team", "reader", "admin")


def test_role_changes_apply_after_forget(env: Env):
    env.admin.add_namespace(CLI, "team")
    who = env.user("later")
    assert env.may(who, "team/app") == set()  # now cached for a moment
    env.admin.set_member(CLI, "team", "later", "developer")  # AdminService forgets the cache
    assert env.may(who, "team/app") == {"pull", "push"}


def test_a_personal_namespace_is_its_owners_to_create(env: Env):
    alice = env.user("alice")
    bob = env.user("bob")
    assert env.may(alice, "alice/app") == {"pull", "push", "delete"}
    assert env.may(bob, "alice/app") == set()
    assert env.authorizer.allows(alice, Action.CREATE_NAMESPACE, namespace("alice"))
    assert env.reason(bob, Action.CREATE_NAMESPACE, namespace("alice")) == (
        "namespace alice does not exist: a server admin must create it before bob can push to "
        "it")
    # a principal rebuilt from a token's subject alone is looked up
    assert env.auth.ensure_namespace(Principal("user", "alice"), "alice/app", env.authorizer)
    assert env.namespace("alice").visibility == "private"
    assert env.may(alice, "alice/app") == {"pull", "push", "delete"}
    assert env.authorizer.allows(alice, Action.ADMIN_NAMESPACE, namespace("alice"))
    assert env.may(bob, "alice/app") == set()
    with pytest.raises(AccessDenied, match="a server admin must create it before bob"):
        env.auth.ensure_namespace(bob, "bobs-team/app", env.authorizer)
    assert env.namespace("bobs-team") is None


def test_namespaces_are_visible_to_members_and_when_public(env: Env):
    env.admin.add_namespace(CLI, "team")
    env.admin.add_namespace(CLI, "pub", "public")
    member, outsider = env.user("member"), env.user("outsider")
    env.admin.set_member(CLI, "team", "member", "reader")
    assert env.authorizer.allows(member, Action.VIEW_NAMESPACE, namespace("team"))
    assert not env.authorizer.allows(outsider, Action.VIEW_NAMESPACE, namespace("team"))
    assert [n["name"] for n in env.admin.list_namespaces(outsider)] == ["pub"]
    assert {n["name"] for n in env.admin.list_namespaces(member)} == {"pub", "team"}


def test_accounts_change_only_their_own_password(env: Env):
    alice, _bob = env.user("alice"), env.user("bob")
    env.admin.set_password(alice, "alice", "another-secret-1")
    with pytest.raises(AccessDenied, match="you may only change your own password"):
        env.admin.set_password(alice, "bob", "another-secret-1")


def test_token_scopes_are_the_intersection_with_what_is_allowed(env: Env):
    env.admin.add_namespace(CLI, "team")
    reader = env.user("reader")
    env.admin.set_member(CLI, "team", "reader", "reader")
    asked = parse_scopes(["repository:team/app:pull,push repository:secret/x:pull",
                          "registry:catalog:*"])
    assert env.authorizer.grant(reader, asked) == [
        Scope("repository", "team/app", frozenset({"pull"})),
        Scope("registry", "catalog", frozenset({"*"})),
    ]
    assert env.authorizer.grant(ANONYMOUS, asked) == []
    assert env.authorizer.grant(reader, [Scope("repository", "team/app",
                                               frozenset({"pull", "bogus"}))]) == [
        Scope("repository", "team/app", frozenset({"pull"}))]


def test_the_open_authorizer_allows_everything():
    open_ = OpenAuthorizer()
    bot = Principal("robot", "robot$x")
    for who in (ANONYMOUS, bot):
        for action in Action:
            for resource in (repository("any/thing"), namespace("any"), SERVER):
                assert open_.allows(who, action, resource)
                open_.require(who, action, resource)  # does not raise
    asked = parse_scopes(["repository:a/b:pull,push,delete registry:catalog:*"])
    assert open_.grant(ANONYMOUS, asked) == asked
