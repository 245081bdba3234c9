"""View models of the UI pages: plain data from manifests, configs and referrers (no I/O)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from ..policy.immutability import matching_rule

INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
_SEMVER = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+.]?(.*))?$")
_KINDS = (  # (substring of an artifact or media type, referrer kind), first match wins
    ("cosign.artifact.sig", "signature"), ("notary.signature", "signature"),
    ("sigstore.bundle", "signature"), ("cyclonedx", "sbom"), ("spdx", "sbom"),
    ("in-toto", "attestation"), ("dsse", "attestation"), ("provenance", "attestation"),
    ("vuln", "scan report"), ("sarif", "scan report"), ("scan", "scan report"),
)


def human_size(n: int | None) -> str:
    """Bytes as a short human figure (1.5 MiB)."""
    if n is None:
        return "—"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def when(ts: float | None) -> str:
    """A Unix time as RFC 3339 in UTC (seconds), or a dash."""
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def semver_key(tag: str) -> tuple[Any, ...]:
    """Sort key: semantic versions first, newest first, releases before pre-releases; other
    tags after them by name."""
    m = _SEMVER.match(tag)
    if not m:
        return (1, tag)
    major, minor, patch, rest = m.groups()
    return (0, -int(major), -int(minor or 0), -int(patch or 0), 0 if not rest else 1, rest or "")


def _parse(raw: bytes | None) -> dict[str, Any]:
    try:
        doc = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def is_index(doc: dict[str, Any], media_type: str | None = None) -> bool:
    """Whether a manifest document is an index (a list of platform manifests)."""
    return media_type in INDEX_TYPES or doc.get("mediaType") in INDEX_TYPES or (
        "manifests" in doc and "layers" not in doc)


def platform_of(desc: dict[str, Any]) -> str | None:
    """`os/arch[/variant]` of an index entry, None without a platform."""
    p = desc.get("platform")
    if not isinstance(p, dict):
        return None
    parts = [str(p.get("os", "?")), str(p.get("architecture", "?"))]
    if p.get("variant"):
        parts.append(str(p["variant"]))
    return "/".join(parts)


def image_size(doc: dict[str, Any]) -> int:
    """Bytes of an image: its config and layers."""
    descs = [doc.get("config") or {}, *(doc.get("layers") or [])]
    return sum(int(d.get("size", 0)) for d in descs if isinstance(d, dict))


def total_size(doc: dict[str, Any], children: dict[str, bytes]) -> int:
    """Bytes of an image, or of every image of an index (children as stored)."""
    if not is_index(doc):
        return image_size(doc)
    total = 0
    for m in doc.get("manifests") or []:
        if isinstance(m, dict):
            total += int(m.get("size", 0)) + image_size(_parse(children.get(str(m.get("digest")))))
    return total


def platforms(doc: dict[str, Any], config: dict[str, Any] | None = None) -> list[str]:
    """The platforms of an index's entries, or of an image (from its config when known)."""
    if is_index(doc):
        return [p for p in (platform_of(m) for m in doc.get("manifests") or []
                            if isinstance(m, dict)) if p]
    if config and config.get("architecture"):
        return [f"{config.get('os', '?')}/{config['architecture']}"]
    return []


def tag_rows(tags: list[dict[str, Any]], children: dict[str, bytes], pulls: dict[str, float],
             rules: list[tuple[str, str]], sort: str) -> list[dict[str, Any]]:
    """The rows of a repository's tag table, sorted by `semver` or push time (newest first)."""
    rows = []
    for t in tags:
        doc = _parse(t["content"])
        rows.append({
            "name": t["name"], "digest": t["digest"], "pushed_at": t["pushed_at"],
            "size": total_size(doc, children), "platforms": platforms(doc),
            "index": is_index(doc, t["media_type"]),
            "last_pull": max([p for p in (pulls.get(t["name"]), pulls.get(t["digest"]))
                              if p is not None], default=None),
            "immutable": matching_rule(t["name"], rules),
        })
    if sort == "semver":
        rows.sort(key=lambda r: semver_key(r["name"]))
    else:
        rows.sort(key=lambda r: -r["pushed_at"])
    return rows


def referrer_kind(desc: dict[str, Any]) -> str:
    """signature, sbom, attestation, scan report or artifact, from a referrer's types."""
    types = f"{desc.get('artifactType', '')} {desc.get('mediaType', '')}".lower()
    return next((kind for needle, kind in _KINDS if needle in types), "artifact")


def config_summary(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the manifest page shows of an image config: platform, entrypoint, env, labels,
    history."""
    if not config:
        return None
    raw = config.get("config")
    inner: dict[str, Any] = raw if isinstance(raw, dict) else {}
    history = [h for h in config.get("history") or [] if isinstance(h, dict)]
    return {
        "platform": "/".join(str(config[k]) for k in ("os", "architecture") if config.get(k)),
        "created": config.get("created"),
        "entrypoint": inner.get("Entrypoint"), "cmd": inner.get("Cmd"),
        "workdir": inner.get("WorkingDir"), "user": inner.get("User"),
        "env": [str(e) for e in inner.get("Env") or []],
        "labels": {str(k): str(v) for k, v in (inner.get("Labels") or {}).items()},
        "history": [{"created_by": str(h.get("created_by", "")), "created": h.get("created"),
                     "empty": bool(h.get("empty_layer"))} for h in history],
    }


def pull_commands(host: str, repository: str, tag: str | None, digest: str) -> dict[str, str]:
    """Pull commands for docker, podman and oras (by tag when there is one, else digest)."""
    ref = f"{host}/{repository}:{tag}" if tag else f"{host}/{repository}@{digest}"
    return {"docker": f"docker pull {ref}", "podman": f"podman pull {ref}",
            "oras": f"oras pull {ref}"}


def insights_view(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """An insights report with each layer's share of the largest layer (for its bar), or None."""
    if report is None:
        return None
    layers = [dict(x) for x in report.get("layers") or [] if isinstance(x, dict)]
    widest = max([int(x.get("uncompressed") or 0) for x in layers], default=0) or 1
    for x in layers:
        x["bar"] = round(100 * int(x.get("uncompressed") or 0) / widest)
    wasted = [(label, report[key]) for key, label in (
        ("deleted", "Deleted by a later layer"), ("overwritten", "Overwritten by a later layer"),
        ("duplicates", "Duplicated (same path and size)"))
        if isinstance(report.get(key), dict)]
    return {**report, "layers": layers, "widest": widest, "wasted_sets": wasted}
