"""Admission policy at pull: a namespace's policy, its checks, and the one PullCheck that runs them.

A policy is a small JSON document (`moorage policy set` writes the whole of it); each rule is a
small object whose `denial(...)` is None or the sentence a 403 carries. `PullPolicyCheck` caches
each namespace's policy for a few seconds (a namespace without one costs that one cached
lookup) and each decision per (repository, digest, policy version), so a GET stays cheap.
Signatures, SBOMs, scan reports and attestations are always served: clients verify first.

An index is denied when any child manifest it lists fails a rule (the registry cannot know which
platform a client will pick, and a client may pull them all): the denial names the child and its
platform. Buildx attestation children (`vnd.docker.reference.type`) are not checked.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..metrics.supply import count_pull_denial
from ..oci.errors import Denied, RegistryError
from ..oci.mediatypes import INDEX_TYPES, MANIFEST_TYPES
from .admission import PullRequest

log = logging.getLogger(__name__)

SEVERITIES = ("low", "medium", "high", "critical")
UNSAFE_MODEL_KINDS = frozenset({"dangerous-import", "malformed-pickle", "bad-safetensors",
                                "bad-gguf"})
COSIGN_TAG = re.compile(r"^sha256-[0-9a-f]{64}\.(sig|att)$")
# Artifact types of content a client needs before it pulls (signatures, attestations, SBOMs,
# scan reports): always served.
PASS_TYPES = ("application/vnd.dev.sigstore", "application/vnd.cncf.notary",
              "application/vnd.in-toto", "application/vnd.dev.cosign", "application/spdx",
              "application/vnd.cyclonedx", "application/vnd.syft", "application/sarif",
              "application/vnd.moorage.scan", "application/vnd.oci.empty")
POLICY_SECONDS = 3.0
DECISION_SECONDS = 5.0
CACHE_ENTRIES = 4096
MAX_INDEX_DEPTH = 4  # nested indexes checked this deep (deeper ones are denied)
ATTESTATION_CHILD = "vnd.docker.reference.type"


class PolicyInvalid(RegistryError):
    default_message = "the pull policy is invalid"


@dataclass(frozen=True, slots=True)
class VulnException:
    """A vulnerability id (or alias) a DenySeverity rule lets through until a date."""

    id: str
    until: str  # ISO date, inclusive
    reason: str

    def active(self, today: dt.date) -> bool:
        return dt.date.fromisoformat(self.until) >= today


@dataclass(frozen=True, slots=True)
class PullPolicy:
    """A namespace's whole pull policy (a rule not set is off)."""

    require_signature: bool = False
    require_provenance: bool = False
    builder: str | None = None  # a glob `builder.id` of the provenance must match
    deny_severity: str | None = None
    deny_secrets: bool = False
    deny_unsafe_models: bool = False
    deny_unscanned: bool = False
    exceptions: tuple[VulnException, ...] = ()
    dry_run: bool = False

    @staticmethod
    def parse(data: dict[str, Any]) -> PullPolicy:
        """The policy of a JSON document; PolicyInvalid with the reason otherwise."""
        severity = data.get("deny_severity")
        if severity is not None and severity not in SEVERITIES:
            raise PolicyInvalid(f"--deny-severity is one of {', '.join(SEVERITIES)}, "
                                f"not {severity!r}")
        builder = data.get("builder")
        if builder is not None and (not isinstance(builder, str) or not builder.strip()):
            raise PolicyInvalid("--builder is a builder id or a glob (e.g. "
                                "'https://github.com/actions/*')")
        if builder is not None and not data.get("require_provenance"):
            raise PolicyInvalid("--builder needs --require-provenance")
        exceptions = []
        for e in data.get("exceptions") or ():
            if not str(e.get("id") or "").strip():
                raise PolicyInvalid("an exception names a vulnerability id or alias")
            try:
                dt.date.fromisoformat(str(e.get("until")))
            except ValueError:
                raise PolicyInvalid(f"exception {e.get('id')}: --until is a date YYYY-MM-DD, "
                                    f"not {e.get('until')!r}") from None
            if not str(e.get("reason") or "").strip():
                raise PolicyInvalid(f"exception {e['id']}: give a --reason")
            exceptions.append(VulnException(str(e["id"]).strip(), str(e["until"]),
                                            str(e["reason"]).strip()))
        return PullPolicy(bool(data.get("require_signature")),
                          bool(data.get("require_provenance")),
                          builder.strip() if builder else None, severity,
                          bool(data.get("deny_secrets")), bool(data.get("deny_unsafe_models")),
                          bool(data.get("deny_unscanned")), tuple(exceptions),
                          bool(data.get("dry_run")))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"require_signature": self.require_signature,
                "require_provenance": self.require_provenance, "builder": self.builder,
                "deny_severity": self.deny_severity, "deny_secrets": self.deny_secrets,
                "deny_unsafe_models": self.deny_unsafe_models,
                "deny_unscanned": self.deny_unscanned, "dry_run": self.dry_run,
                "exceptions": [{"id": e.id, "until": e.until, "reason": e.reason}
                               for e in self.exceptions]}

    def rules(self, verify: Callable[[str, str], Any]) -> list[PullRule]:
        """The checks this policy turns on, cheapest first."""
        out: list[PullRule] = []
        if self.deny_unscanned:
            out.append(DenyUnscanned())
        if self.deny_severity:
            out.append(DenySeverity(self.deny_severity, self.exceptions))
        if self.deny_secrets:
            out.append(DenySecrets())
        if self.deny_unsafe_models:
            out.append(DenyUnsafeModels())
        if self.require_signature:
            out.append(RequireSignature(verify))
        if self.require_provenance:
            out.append(RequireProvenance(verify, self.builder))
        return out


@dataclass(frozen=True, slots=True)
class Subject:
    """What the rules look at: the manifest, its namespace, and (read once) its scan report."""

    repository: str
    namespace: str
    digest: str
    report: dict[str, Any] | None

    @property
    def where(self) -> str:
        return f"{self.repository}@{self.digest}"


class PullRule(Protocol):
    """One rule of a pull policy."""

    @property
    def name(self) -> str:
        """The rule's name, as the policy and the audit log spell it."""
        ...

    def denial(self, subject: Subject) -> str | None:
        """None when the manifest may be served; else the sentence naming the rule and fix."""
        ...


def _scanned(subject: Subject) -> dict[str, Any] | None:
    report = subject.report
    return report if report is not None and report.get("status") == "done" else None


@dataclass(frozen=True, slots=True)
class RequireSignature:
    """A signature verified by a key the namespace trusts."""

    verify: Callable[[str, str], Any]
    name: str = "require-signature"

    def denial(self, subject: Subject) -> str | None:
        if self.verify(subject.repository, subject.digest).verified:
            return None
        return (f"{subject.where} is not signed by a key trusted for namespace "
                f"{subject.namespace}: sign it with cosign and a key from `moorage trust list "
                f"{subject.namespace}`, or ask an admin to add yours")


@dataclass(frozen=True, slots=True)
class RequireProvenance:
    """An SLSA provenance attestation (v0.2 or v1) verified by a key the namespace trusts, and
    when `builder` is set, one whose `builder.id` matches that glob."""

    verify: Callable[[str, str], Any]
    builder: str | None = None
    name: str = "require-provenance"

    def denial(self, subject: Subject) -> str | None:
        found = self.verify(subject.repository, subject.digest).provenance()
        ns = subject.namespace
        if not found:
            return (f"{subject.where} has no SLSA provenance attestation verified by a key "
                    f"trusted for namespace {ns}: attest it (`cosign attest --type "
                    f"slsaprovenance`) with a key from `moorage trust list {ns}`, or ask an "
                    f"admin to add yours")
        if self.builder is None or any(fnmatch.fnmatchcase(str(p.get("builder") or ""),
                                                           self.builder) for p in found):
            return None
        builders = ", ".join(sorted({str(p.get("builder")) for p in found}))
        return (f"{subject.where} has verified provenance from builder {builders}, but namespace "
                f"{ns} requires a builder matching {self.builder!r}: build it there and attest "
                f"it, or ask an admin to change the policy")


@dataclass(frozen=True, slots=True)
class DenySeverity:
    """No vulnerability at or above a level, unless an unexpired exception covers it."""

    level: str
    exceptions: tuple[VulnException, ...] = ()
    name: str = "deny-severity"

    def denial(self, subject: Subject) -> str | None:
        report = _scanned(subject)
        if report is None:
            return None  # DenyUnscanned decides about manifests without a finished scan
        floor = SEVERITIES.index(self.level)
        today = dt.datetime.now(dt.UTC).date()
        excepted = {e.id for e in self.exceptions if e.active(today)}
        for v in report.get("vulnerabilities") or ():
            severity = v.get("severity")
            if severity not in SEVERITIES or SEVERITIES.index(severity) < floor:
                continue
            names = {str(v.get("id")), *(str(a) for a in v.get("aliases") or ())}
            if names & excepted:
                continue
            return (f"{subject.where} has {severity} vulnerability {v.get('id')} in "
                    f"{v.get('package')} {v.get('installed')} and namespace {subject.namespace} "
                    f"denies {self.level} and above: update the package and push again, or ask "
                    f"an admin for an exception (`moorage policy set {subject.namespace} "
                    f"--exception {v.get('id')} --until DATE --reason TEXT`)")
        return None


@dataclass(frozen=True, slots=True)
class DenySecrets:
    """No secret found in any layer."""

    name: str = "deny-secrets"

    def denial(self, subject: Subject) -> str | None:
        report = _scanned(subject)
        secrets = (report or {}).get("secrets") or []
        if not secrets:
            return None
        first = secrets[0]
        return (f"{subject.where} contains a secret ({first.get('rule')} in {first.get('path')}) "
                f"and namespace {subject.namespace} denies secrets: remove it from the image, "
                f"rotate it, and push again")


@dataclass(frozen=True, slots=True)
class DenyUnsafeModels:
    """No model file with a dangerous import or an invalid header."""

    name: str = "deny-unsafe-models"

    def denial(self, subject: Subject) -> str | None:
        report = _scanned(subject)
        for f in (report or {}).get("model_findings") or ():
            if f.get("kind") in UNSAFE_MODEL_KINDS:
                return (f"{subject.where} has an unsafe model file ({f.get('kind')} in "
                        f"{f.get('path')}: {f.get('detail')}) and namespace "
                        f"{subject.namespace} denies unsafe models: convert it to safetensors "
                        f"and push again")
        return None


@dataclass(frozen=True, slots=True)
class DenyUnscanned:
    """A finished scan report."""

    name: str = "deny-unscanned"

    def denial(self, subject: Subject) -> str | None:
        status = (subject.report or {}).get("status")
        if status == "done":
            return None
        state = f"its scan is {status}" if status else "it has no scan report"
        return (f"{subject.where} cannot be pulled yet: {state} and namespace "
                f"{subject.namespace} denies unscanned content; wait for the scan (`moorage "
                f"scan show {subject.where}`) or ask an admin to rescan it")


def always_served(artifact_type: str | None, subject_digest: str | None, reference: str,
                  cosign_tagged: bool) -> bool:
    """Signatures, attestations, SBOMs and scan reports: what clients verify before a pull."""
    if subject_digest is not None or COSIGN_TAG.match(reference) or cosign_tagged:
        return True
    return bool(artifact_type) and str(artifact_type).startswith(PASS_TYPES)


@dataclass
class _Cached:
    value: Any
    until: float


@dataclass
class PullPolicyCheck:
    """The PullCheck of namespace pull policies (see the module doc). `audit(pull, rule,
    message)` records a dry-run (or real) denial as an event."""

    verify: Callable[[str, str], Any]
    audit: Callable[[PullRequest, str, str, bool], None]
    policy_seconds: float = POLICY_SECONDS
    decision_seconds: float = DECISION_SECONDS
    clock: Callable[[], float] = time.monotonic
    _policies: dict[str, _Cached] = field(default_factory=dict)
    _decisions: OrderedDict[tuple[str, str, int], _Cached] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def policy(self, uow: Any, namespace: str) -> tuple[PullPolicy, int] | None:
        """The namespace's policy and version, cached for `policy_seconds`."""
        now = self.clock()
        hit = self._policies.get(namespace)
        if hit is not None and hit.until > now:
            return hit.value
        row = uow.pull_policies.get(namespace)
        value = (PullPolicy.parse(row[0]), row[1]) if row else None
        with self._lock:
            if len(self._policies) >= CACHE_ENTRIES:
                self._policies.clear()
            self._policies[namespace] = _Cached(value, now + self.policy_seconds)
        return value

    def forget(self, namespace: str) -> None:
        """Drop the cached policy of a namespace (this process changed it)."""
        self._policies.pop(namespace, None)

    def check(self, uow: Any, pull: PullRequest) -> None:
        found = self.policy(uow, pull.namespace)
        if found is None:
            return
        policy, version = found
        rules = policy.rules(self.verify)
        if not rules:
            return
        decision, fresh = self._decision(uow, pull, rules, version, 0)
        if decision is not None and fresh:
            self.audit(pull, decision[0], decision[1], policy.dry_run)
            log.info("pull %s", "would be denied (dry run)" if policy.dry_run else "denied",
                     extra={"repository": pull.repository, "digest": pull.digest,
                            "rule": decision[0], "reason": decision[1]})
        if decision is not None:
            count_pull_denial(decision[0], policy.dry_run)
        if decision is not None and not policy.dry_run:
            raise Denied(decision[1], detail={"rule": decision[0], "digest": pull.digest})

    def _decision(self, uow: Any, pull: PullRequest, rules: Sequence[PullRule], version: int,
                  depth: int) -> tuple[tuple[str, str] | None, bool]:
        """The (rule, message) denying this manifest, or None; and whether it was decided now
        (not cached)."""
        key = (pull.repository, pull.digest, version)
        now = self.clock()
        hit = self._decisions.get(key)
        if hit is not None and hit.until > now:
            return hit.value, False
        decision = self._decide(uow, pull, rules, version, depth)
        with self._lock:
            self._decisions[key] = _Cached(decision, now + self.decision_seconds)
            while len(self._decisions) > CACHE_ENTRIES:
                self._decisions.popitem(last=False)
        return decision, True

    def _decide(self, uow: Any, pull: PullRequest, rules: Sequence[PullRule], version: int,
                depth: int) -> tuple[str, str] | None:
        artifact_type, subject_digest = uow.pull_policies.manifest_kind(pull.repository,
                                                                        pull.digest)
        cosign_tagged = (not COSIGN_TAG.match(pull.reference)
                         and uow.pull_policies.cosign_tagged(pull.repository, pull.digest))
        if always_served(artifact_type, subject_digest, pull.reference, cosign_tagged):
            return None
        if pull.media_type in INDEX_TYPES:
            return self._decide_index(uow, pull, rules, version, depth)
        subject = Subject(pull.repository, pull.namespace, pull.digest,
                          uow.scans.get(pull.repository, pull.digest))
        for rule in rules:
            message = rule.denial(subject)
            if message is not None:
                return rule.name, message
        return None

    def _decide_index(self, uow: Any, pull: PullRequest, rules: Sequence[PullRule],
                      version: int, depth: int) -> tuple[str, str] | None:
        """The first child of an index that a rule denies, as the index's denial."""
        where = f"{pull.repository}@{pull.digest}"
        if depth >= MAX_INDEX_DEPTH:
            return "index-depth", (f"{where} nests indexes more than {MAX_INDEX_DEPTH} deep, "
                                   f"too deep to check against the pull policy: flatten it")
        for child in _children(uow.pull_policies.content(pull.repository, pull.digest)):
            child_pull = PullRequest(pull.repository, pull.namespace, child["digest"],
                                     child["digest"], child["mediaType"], pull.actor)
            found, _ = self._decision(uow, child_pull, rules, version, depth + 1)
            if found is not None:
                return found[0], (f"{where} is an index and its child {child['digest']} "
                                  f"({_platform(child)}) is denied: {found[1]}")
        return None


def _children(content: bytes | None) -> list[dict[str, Any]]:
    """The child manifests of an index a policy applies to (attestation children skipped)."""
    try:
        doc = json.loads(content or b"{}")
    except ValueError:
        return []
    out = []
    for child in doc.get("manifests") or ():
        if (not isinstance(child, dict) or child.get("mediaType") not in MANIFEST_TYPES
                or not isinstance(child.get("digest"), str)):
            continue
        if ATTESTATION_CHILD in (child.get("annotations") or {}):
            continue
        out.append(child)
    return out


def _platform(child: dict[str, Any]) -> str:
    """`os/arch[/variant]` of an index entry, or `no platform`."""
    p = child.get("platform") or {}
    parts = [str(p[k]) for k in ("os", "architecture", "variant") if p.get(k)]
    return "/".join(parts) or "no platform"
