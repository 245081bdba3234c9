"""Secret scanning of layer files: hand-written rules for keys and tokens, and for the
credential files tools leave behind (.env, .npmrc, .pypirc, .docker/config.json, .netrc).

A finding carries the path, the rule, the line and a redacted fingerprint (the rule, the first
four characters and a SHA-256 prefix of the value): the secret itself never leaves this module,
so it cannot reach a report, a log, an event or an exception message.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass

MAX_FILE_BYTES = 1 << 20  # text files larger than this are not read (default of the setting)
SNIFF_BYTES = 8192  # a NUL in the first bytes marks a binary file
SHOWN = 4  # leading characters of a value a fingerprint shows
# Extensions of files that are never text: not worth reading.
BINARY_SUFFIXES = (".so", ".a", ".o", ".pyc", ".png", ".jpg", ".jpeg", ".gif", ".ico", ".gz",
                   ".xz", ".bz2", ".zst", ".zip", ".jar", ".whl", ".mo", ".woff", ".woff2",
                   ".ttf", ".otf", ".wasm", ".db", ".sqlite", ".pdf")


@dataclass(frozen=True, slots=True)
class SecretFinding:
    """One secret found: where, by which rule, and a fingerprint that does not reveal it."""

    path: str
    rule: str
    line: int
    fingerprint: str
    layer: str = ""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready values."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Rule:
    """A pattern whose first group is the secret value."""

    name: str
    pattern: re.Pattern[bytes]
    literals: tuple[bytes, ...] = ()  # one of these is in every match (empty: always run)

    def applies(self, data: bytes) -> bool:
        """Whether the pattern can match: a substring check at C speed before the regex."""
        return not self.literals or any(literal in data for literal in self.literals)


def _rule(name: str, pattern: bytes, *literals: bytes) -> Rule:
    return Rule(name, re.compile(pattern), literals)


_B64 = rb"[A-Za-z0-9+/=]"
RULES: tuple[Rule, ...] = (
    _rule("private-key", rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY"
                         rb"(?: BLOCK)?-----\s*(?:[A-Za-z-]+: [^\n]*\n\s*)*(" + _B64 + rb"{20,})",
          b"PRIVATE KEY"),
    _rule("aws-access-key-id", rb"\b((?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b",
          b"AKIA", b"ASIA", b"ABIA", b"ACCA"),
    _rule("aws-secret-access-key", rb"(?i)aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?"
                                   rb"([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
          b"ecret", b"ECRET"),
    _rule("gcp-service-account", rb"\"private_key_id\"\s*:\s*\"([0-9a-f]{40})\"",
          b"private_key_id"),
    _rule("azure-storage-key", rb"AccountKey=([A-Za-z0-9+/=]{86,88})", b"AccountKey="),
    _rule("github-token", rb"\b((?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,255})\b",
          b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_"),
    _rule("github-token", rb"\b(github_pat_[A-Za-z0-9_]{60,255})\b", b"github_pat_"),
    _rule("gitlab-token", rb"\b(glpat-[A-Za-z0-9_-]{20,})", b"glpat-"),
    _rule("slack-token", rb"\b(xox[bpars]-[A-Za-z0-9-]{10,})", b"xox"),
    _rule("slack-webhook", rb"(https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/"
                           rb"[A-Za-z0-9]{20,})", b"hooks.slack.com"),
    _rule("stripe-secret-key", rb"\b((?:sk|rk)_live_[A-Za-z0-9]{20,})", b"_live_"),
    _rule("huggingface-token", rb"\b(hf_[A-Za-z0-9]{30,})\b", b"hf_"),
    _rule("wandb-api-key", rb"WANDB_API_KEY[\"']?\s*[:=]\s*[\"']?([0-9a-f]{40})\b",
          b"WANDB_API_KEY"),
    _rule("openai-api-key", rb"\b(sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,})", b"sk-"),
)
# Rules of credential files, by file name.
_NPMRC = (_rule("npmrc-auth-token", rb"(?m)_authToken\s*=\s*[\"']?([^\s\"']+)"),
          _rule("npmrc-auth", rb"(?m)^\s*(?:\S*:)?_(?:auth|password)\s*=\s*[\"']?([^\s\"']+)"))
_PYPIRC = (_rule("pypirc-password", rb"(?mi)^\s*password\s*[=:]\s*(\S+)"),)
_DOCKER = (_rule("docker-config-auth", rb"\"auth\"\s*:\s*\"(" + _B64 + rb"{8,})\""),)
_NETRC = (_rule("netrc-password", rb"\bpassword\s+(\S+)"),)
_ENV = (_rule("dotenv-secret", rb"(?mi)^\s*(?:export\s+)?[A-Z0-9_]*(?:SECRET|TOKEN|PASSWORD|"
                               rb"PASSWD|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|CREDENTIALS?)"
                               rb"[A-Z0-9_]*\s*=\s*[\"']?([^\s\"'#]{6,})"),)
_WANDB_HOST = re.compile(rb"machine\s+api\.wandb\.ai")
_HEX40 = re.compile(rb"[0-9a-f]{40}")


def wants(path: str, size: int, cap: int = MAX_FILE_BYTES) -> bool:
    """Whether a file is read for secrets: within the cap, not binary by its name."""
    return 0 < size <= cap and not path.endswith(BINARY_SUFFIXES)


def _file_rules(path: str) -> tuple[Rule, ...]:
    base = posixpath.basename(path)
    if base == ".npmrc":
        return _NPMRC
    if base == ".pypirc":
        return _PYPIRC
    if base == "config.json" and path.endswith(".docker/config.json"):
        return _DOCKER
    if base in (".netrc", "_netrc"):
        return _NETRC
    if base == ".env" or base.startswith(".env.") or base.endswith(".env"):
        return _ENV
    return ()


def _placeholder(value: bytes) -> bool:
    if value[:1] in (b"$", b"<", b"{", b"%") or b"EXAMPLE" in value:
        return True
    return len(set(value)) <= 2  # xxxx, ****, 0000


def fingerprint(rule: str, value: bytes) -> str:
    """`rule:abcd…:sha256:<12 hex>`: enough to tell two findings apart, nothing to use."""
    head = value[:SHOWN].decode("ascii", "replace")
    return f"{rule}:{head}…:sha256:{hashlib.sha256(value).hexdigest()[:12]}"


def _matches(path: str, data: bytes) -> Iterator[tuple[str, int, bytes]]:
    """(rule, offset, value): the specific token rules first, the credential-file rules after
    (a value both find is reported once, by the specific rule)."""
    for rule in RULES:
        if rule.applies(data):
            for m in rule.pattern.finditer(data):
                yield rule.name, m.start(1), m.group(1)
    if posixpath.basename(path) in (".netrc", "_netrc") and _WANDB_HOST.search(data):
        for m in _HEX40.finditer(data):
            yield "wandb-api-key", m.start(), m.group(0)
    for rule in _file_rules(path):
        for m in rule.pattern.finditer(data):
            yield rule.name, m.start(1), m.group(1)


def scan_text(path: str, data: bytes) -> list[SecretFinding]:
    """The secrets in one file's bytes (nothing for a binary file: a NUL near the start)."""
    if b"\0" in data[:SNIFF_BYTES]:
        return []
    seen: set[bytes] = set()
    found = []
    for rule, start, value in _matches(path, data):
        if _placeholder(value) or value in seen:
            continue
        seen.add(value)
        fp = fingerprint(rule, value)
        found.append(SecretFinding(path, rule, data.count(b"\n", 0, start) + 1, fp))
    found.sort(key=lambda f: (f.line, f.rule))
    return found


class SecretScanner:
    """A layer reader Scanner: keeps at most `cap` bytes of one text file, stops at a NUL."""

    def __init__(self, path: str, cap: int = MAX_FILE_BYTES) -> None:
        self.path = path
        self.cap = cap
        self._buf = bytearray()
        self._binary = False

    def feed(self, data: bytes) -> bool:
        """Take the next piece; False once the file is known binary or the cap is reached."""
        if len(self._buf) < SNIFF_BYTES and b"\0" in data[:SNIFF_BYTES - len(self._buf)]:
            self._binary = True
            self._buf.clear()
            return False
        self._buf += data[:self.cap - len(self._buf)]
        return len(self._buf) < self.cap

    def result(self) -> list[SecretFinding]:
        """The secrets found (the bytes are dropped)."""
        data, self._buf = bytes(self._buf), bytearray()
        return [] if self._binary else scan_text(self.path, data)
