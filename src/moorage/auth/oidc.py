"""OIDC workload identity: a CI job's ID token, checked against a trusted issuer's keys and
rules, becomes an `oidc:<issuer-host>:<sub>` principal with the namespace permissions of the
rules its claims match (`/token` then issues the registry's normal bearer token).

The checks, in order: size, an asymmetric `alg` (never `none` or HS*), `iss` exactly a
configured issuer, a key of its JWKS (by `kid`) that fits the algorithm, the signature, `aud`
containing the configured audience, `exp`/`nbf`/`iat` (with leeway), the token's age, then the
rules (every claim glob of one rule must match; the grants of all matching rules add up).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt

from ..events.audit import admin_action
from ..events.types import Actor, Login, records
from ..globs import glob_regex
from ..metadata.uow import Database, UnitOfWork
from ..oci.errors import RegistryError, Unauthorized
from .authorizer import SERVER, Action, Authorizer
from .identity import Principal
from .jwks import ASYMMETRIC, JwksCache, JwksError, KeySet, check_jwks_url, parse_jwks
from .scopes import ALL_ACTIONS
from .service import OIDC_USERNAME  # `docker login -u oidc --password-stdin` with the token

log = logging.getLogger("moorage.oidc")

MAX_TOKEN_BYTES = 16 * 1024
MAX_NAME = 160  # principal names are stored in 160-character audit columns
MAX_FIELD = 500
MAX_CLAIM_KEY = 100


class NotFound(RegistryError):
    code, status, default_message = "NAME_UNKNOWN", 404, "no such OIDC issuer or rule"


@dataclass(frozen=True, slots=True)
class Verified:
    """A verified ID token: its issuer row and claims."""

    issuer: dict[str, Any]
    claims: dict[str, Any]


class Refused(Unauthorized):
    """An ID token that is not accepted; `issuer` and `subject` are what it claims."""

    def __init__(self, message: str, issuer: object = None, subject: object = None) -> None:
        super().__init__(f"OIDC token refused: {message}")
        self.reason = message
        self.issuer = str(issuer)[:MAX_FIELD] if isinstance(issuer, str) else None
        self.subject = str(subject)[:MAX_FIELD] if isinstance(subject, str) else None


def issuer_host(issuer: str) -> str:
    """The host (and port, when given) of an issuer URL: the middle of principal names."""
    parts = urlsplit(issuer)
    host = parts.hostname or ""
    return f"{host}:{parts.port}" if parts.port else host


def claim_matches(claims: Mapping[str, Any], key: str, pattern: str) -> bool:
    """Whether claim `key` (a string, number, boolean, or a list holding one) matches the glob."""
    value = claims.get(key)
    values = value if isinstance(value, list) else [value]
    regex = glob_regex(pattern)
    for v in values:
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, int | float):
            v = str(v)
        if isinstance(v, str) and regex.fullmatch(v):
            return True
    return False


def rule_grants(rules: list[dict[str, Any]], claims: Mapping[str, Any]
                ) -> tuple[list[int], dict[str, frozenset[str]]]:
    """(ids of the rules every claim glob of which matches, their namespace grants added up)."""
    matched: list[int] = []
    grants: dict[str, frozenset[str]] = {}
    for rule in rules:
        if all(claim_matches(claims, k, p) for k, p in rule["claims"].items()):
            matched.append(rule["id"])
            for ns, actions in rule["permissions"].items():
                grants[ns] = grants.get(ns, frozenset()) | frozenset(actions)
    return matched, grants


class OidcService:
    """Trusted issuers and rules (server admins, CLI and API alike), and the token exchange."""

    def __init__(self, database: Database, authorizer: Authorizer, jwks: JwksCache,
                 leeway: float = 60.0, max_token_age: float = 3600.0) -> None:
        self.database = database
        self.authorizer = authorizer
        self.jwks = jwks
        self.leeway = leeway
        self.max_token_age = max_token_age

    # -- the exchange ---------------------------------------------------------------------------

    def exchange(self, token: str, remote: str | None, record: bool = False) -> Principal:
        """The principal of a valid ID token that matches a rule; Refused (401) otherwise.
        With `record`, the Login event (success or denied, never the token) is written."""
        try:
            principal, verified, rule_ids = self._principal(token)
        except Refused as exc:
            log.info("OIDC token refused: %s", exc.reason,
                     extra={"issuer": exc.issuer, "subject": exc.subject, "remote": remote})
            if record:
                with self.database.write() as uow:
                    uow.emit(records(Login(
                        actor=Actor(OIDC_USERNAME, None, remote), outcome="denied",
                        detail={"code": exc.code, "reason": exc.message, "method": "oidc",
                                "issuer": exc.issuer, "subject": exc.subject})))
            raise
        if record:
            with self.database.write() as uow:
                uow.emit(records(Login(
                    actor=Actor(principal.name, principal.kind, remote), outcome="success",
                    detail={"method": "oidc", "issuer": verified.issuer["issuer"],
                            "subject": verified.claims["sub"], "rules": rule_ids,
                            "grants": {ns: sorted(a) for ns, a in principal.grants}})))
        return principal

    def _principal(self, token: str) -> tuple[Principal, Verified, list[int]]:
        verified = self.verify(token)
        claims, issuer = verified.claims, verified.issuer
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Refused("the token has no subject (sub)", issuer["issuer"])
        name = f"oidc:{issuer_host(issuer['issuer'])}:{sub}"
        if len(name) > MAX_NAME:
            raise Refused(f"the principal name would be longer than {MAX_NAME} characters",
                          issuer["issuer"], sub)
        with self.database.read() as uow:
            rules = uow.oidc.rules(issuer["id"])
        rule_ids, grants = rule_grants(rules, claims)
        if not rule_ids:
            raise Refused(f"its claims match no rule of issuer {issuer['issuer']}",
                          issuer["issuer"], sub)
        return (Principal("oidc", name, grants=tuple(sorted(grants.items()))), verified,
                rule_ids)

    def verify(self, token: str) -> Verified:
        """Check an ID token's signature, issuer, audience and times; Refused saying why."""
        token = token.strip()
        if len(token) > MAX_TOKEN_BYTES:
            raise Refused(f"the token is larger than {MAX_TOKEN_BYTES} bytes")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Refused("the password is not a JWT (an OIDC ID token)") from None
        iss, sub = unverified.get("iss"), unverified.get("sub")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ASYMMETRIC:
            raise Refused(f"algorithm {str(alg)[:20]!r} is not accepted (only asymmetric "
                          "signatures: RS*, PS*, ES*, EdDSA)", iss, sub)
        if not isinstance(iss, str):
            raise Refused("the token has no issuer (iss)")
        with self.database.read() as uow:
            issuer = uow.oidc.issuer(iss)
        if issuer is None:
            raise Refused(f"unknown issuer {iss[:200]!r}", iss, sub)
        kid = header.get("kid")
        kid = str(kid) if kid is not None else None
        candidates = self._keys(issuer, kid).candidates(kid, alg)
        if not candidates:
            what = f"key id {kid[:100]!r}" if kid is not None else "key"
            raise Refused(f"no {what} of issuer {iss} fits algorithm {alg}", iss, sub)
        claims = self._decode(token, alg, candidates, issuer, sub)
        now = time.time()
        iat = claims["iat"]
        if not isinstance(iat, int | float) or iat > now + self.leeway:
            raise Refused("the token is not yet valid (iat)", iss, sub)
        if now - iat > self.max_token_age + self.leeway:
            raise Refused(f"the token was issued {int(now - iat)} s ago, more than the "
                          f"{self.max_token_age:g} s accepted", iss, sub)
        return Verified(issuer, claims)

    def _keys(self, issuer: dict[str, Any], kid: str | None) -> KeySet:
        try:
            if issuer["jwks"] is not None:
                return self.jwks.document(issuer["jwks"])
            return self.jwks.url(issuer["jwks_url"], kid)
        except JwksError as exc:
            log.warning("OIDC keys of %s unusable: %s", issuer["issuer"], exc)
            raise Refused(f"the keys of issuer {issuer['issuer']} are unavailable",
                          issuer["issuer"]) from None

    def _decode(self, token: str, alg: str, candidates: list[Any], issuer: dict[str, Any],
                sub: object) -> dict[str, Any]:
        return decode_id_token(token, alg, candidates, issuer["issuer"], issuer["audience"],
                               self.leeway, sub)

    # -- administration (server admins) ---------------------------------------------------------

    def _require(self, actor: Principal, doing: str) -> None:
        self.authorizer.require(actor, Action.ADMIN_SERVER, SERVER, doing=doing)

    @staticmethod
    def _emit(uow: UnitOfWork, actor: Principal, action: str, detail: dict[str, Any]) -> None:
        uow.emit(records(admin_action(action=action, outcome="success", actor=actor.name,
                                      actor_kind=actor.kind, remote=None, detail=detail)))

    def add_rule(self, actor: Principal, issuer: str, claims: dict[str, str],
                 permissions: dict[str, list[str]], audience: str | None = None,
                 jwks: str | None = None, jwks_url: str | None = None) -> dict[str, Any]:
        """Add a rule to `issuer` (trusted from now on; created with `audience` and one key
        source when new, those updated when given); the issuer as it is now."""
        self._require(actor, "configure OIDC issuers")
        issuer = _check_text("issuer", issuer)
        if not urlsplit(issuer).hostname:
            raise RegistryError(f"an issuer is a URL with a host (its exact `iss`), got {issuer!r}")
        audience = _check_text("audience", audience) if audience is not None else None
        if jwks is not None and jwks_url is not None:
            raise RegistryError("give the issuer's keys as a JWKS document or a URL, not both")
        try:
            if jwks is not None:
                parse_jwks(jwks)
            if jwks_url is not None:
                check_jwks_url(jwks_url)
        except JwksError as exc:
            raise RegistryError(str(exc)) from None
        clean_claims = _check_claims(claims)
        perms = _check_permissions(permissions)
        with self.database.write() as uow:
            for ns in perms:
                if uow.access.get_namespace(ns) is None:
                    raise NotFound(f"no namespace {ns!r}")
            row = uow.oidc.issuer(issuer)
            if row is None:
                if audience is None or (jwks is None and jwks_url is None):
                    raise RegistryError("a new issuer needs --audience and --jwks-file or "
                                        "--jwks-url")
                issuer_id = uow.oidc.add_issuer(issuer, audience, jwks_url, jwks, actor.name)
                if issuer_id is None:
                    raise RegistryError(f"issuer {issuer!r} was added meanwhile: try again")
                self._emit(uow, actor, "oidc.issuer.add",
                           {"issuer": issuer, "audience": audience, "jwks_url": jwks_url})
            else:
                issuer_id = row["id"]
                values: dict[str, Any] = {}
                if audience is not None:
                    values["audience"] = audience
                if jwks is not None or jwks_url is not None:
                    values.update(jwks=jwks, jwks_url=jwks_url)
                if values:
                    uow.oidc.update_issuer(issuer_id, **values)
                    self._emit(uow, actor, "oidc.issuer.update", {
                        "issuer": issuer, **{k: v for k, v in values.items() if k != "jwks"}})
            rule_id = uow.oidc.add_rule(issuer_id, clean_claims, perms, actor.name)
            self._emit(uow, actor, "oidc.rule.add", {"issuer": issuer, "rule": rule_id,
                                                     "claims": clean_claims,
                                                     "permissions": perms})
        return {**self.get_issuer(actor, issuer_id), "rule": rule_id}

    def list_issuers(self, actor: Principal) -> list[dict[str, Any]]:
        """Every trusted issuer with its rules."""
        self._require(actor, "list OIDC issuers")
        with self.database.read() as uow:
            issuers = uow.oidc.issuers()
            rules = uow.oidc.rules()
        return [_public(i, [r for r in rules if r["issuer_id"] == i["id"]]) for i in issuers]

    def get_issuer(self, actor: Principal, issuer: str | int) -> dict[str, Any]:
        """One issuer (by `iss` or id) with its rules."""
        self._require(actor, "see an OIDC issuer")
        with self.database.read() as uow:
            row = uow.oidc.issuer(issuer)
            if row is None:
                raise NotFound(f"no OIDC issuer {issuer!r}")
            return _public(row, uow.oidc.rules(row["id"]))

    def remove_issuer(self, actor: Principal, issuer: str | int) -> None:
        """Stop trusting an issuer (its rules go with it)."""
        self._require(actor, "remove an OIDC issuer")
        with self.database.write() as uow:
            row = uow.oidc.issuer(issuer)
            if row is None or not uow.oidc.remove_issuer(row["id"]):
                raise NotFound(f"no OIDC issuer {issuer!r}")
            self._emit(uow, actor, "oidc.issuer.remove", {"issuer": row["issuer"]})

    def remove_rule(self, actor: Principal, rule_id: int) -> None:
        """Delete one rule (its issuer stays trusted for its other rules)."""
        self._require(actor, "remove an OIDC rule")
        with self.database.write() as uow:
            rule = uow.oidc.rule(rule_id)
            if rule is None or not uow.oidc.remove_rule(rule_id):
                raise NotFound(f"no OIDC rule {rule_id}")
            self._emit(uow, actor, "oidc.rule.remove", {"rule": rule_id,
                                                        "issuer_id": rule["issuer_id"]})


def decode_id_token(token: str, alg: str, candidates: list[Any], iss: str, audience: str,
                    leeway: float, sub: object = None) -> dict[str, Any]:
    """The claims of a JWT signed by one of `candidates` (Jwk) for `audience` from `iss`, its
    exp/nbf/iat checked with `leeway`; Refused saying what is wrong."""
    for i, candidate in enumerate(candidates):
        try:
            claims: dict[str, Any] = jwt.decode(
                token, candidate.key, algorithms=[alg], audience=audience, issuer=iss,
                leeway=leeway, options={"require": ["exp", "iat", "iss", "aud", "sub"]})
            return claims
        except jwt.InvalidSignatureError:
            if i + 1 == len(candidates):
                raise Refused("bad signature", iss, sub) from None
        except jwt.ExpiredSignatureError:
            raise Refused("the token has expired (exp)", iss, sub) from None
        except jwt.ImmatureSignatureError:
            raise Refused("the token is not yet valid (nbf/iat)", iss, sub) from None
        except jwt.InvalidAudienceError:
            raise Refused(f"the token's audience (aud) does not include {audience!r}",
                          iss, sub) from None
        except jwt.MissingRequiredClaimError as exc:
            raise Refused(f"the token has no {exc.claim} claim", iss, sub) from None
        except jwt.PyJWTError as exc:
            raise Refused(f"invalid token: {str(exc)[:200]}", iss, sub) from None
    raise Refused("bad signature", iss, sub)  # unreachable: candidates is never empty


def _public(issuer: dict[str, Any], rules: list[dict[str, Any]]) -> dict[str, Any]:
    """An issuer as admins see it: its key source, not the key material."""
    keys = None
    if issuer["jwks"] is not None:
        try:
            keys = len(parse_jwks(issuer["jwks"]).keys)
        except JwksError:
            keys = 0
    return {"id": issuer["id"], "issuer": issuer["issuer"], "audience": issuer["audience"],
            "jwks_url": issuer["jwks_url"], "jwks_keys": keys,
            "created_at": issuer["created_at"], "created_by": issuer["created_by"],
            "rules": [{"id": r["id"], "claims": r["claims"], "permissions": r["permissions"],
                       "created_at": r["created_at"], "created_by": r["created_by"]}
                      for r in rules]}


def _check_text(what: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_FIELD:
        raise RegistryError(f"{what} must be a non-empty string of at most {MAX_FIELD} characters")
    return value.strip()


def _check_claims(claims: object) -> dict[str, str]:
    if not isinstance(claims, dict) or not claims:
        raise RegistryError("a rule needs at least one claim glob (KEY=GLOB; `sub=**` trusts "
                            "every subject of the issuer)")
    out: dict[str, str] = {}
    for key, pattern in claims.items():
        if not isinstance(key, str) or not key or len(key) > MAX_CLAIM_KEY:
            raise RegistryError(f"a claim name is 1-{MAX_CLAIM_KEY} characters")
        if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_FIELD:
            raise RegistryError(f"the glob of claim {key!r} is 1-{MAX_FIELD} characters")
        out[key] = pattern
    return out


def _check_permissions(permissions: object) -> dict[str, list[str]]:
    if not isinstance(permissions, dict) or not permissions:
        raise RegistryError("a rule needs at least one namespace permission (NS=pull,push)")
    out: dict[str, list[str]] = {}
    for ns, actions in permissions.items():
        if not isinstance(ns, str) or not ns or "/" in ns:
            raise RegistryError("a rule's namespace is one path component")
        wanted = set(actions) if isinstance(actions, list) else set()
        if not wanted or not all(isinstance(a, str) for a in wanted) \
                or not wanted <= ALL_ACTIONS:
            raise RegistryError(f"actions must be among {sorted(ALL_ACTIONS)}")
        out[ns] = sorted(wanted)
    return out
