"""SLSA provenance read from a verified in-toto statement: builder, source, commit, build time."""

from __future__ import annotations

from typing import Any

SLSA = "https://slsa.dev/provenance/"


def provenance_of(statement: dict[str, Any]) -> dict[str, Any]:
    """The builder id, source repository, commit and build times of an SLSA v0.2 or v1
    provenance statement (None where the statement does not say)."""
    predicate = statement.get("predicate") or {}
    kind = str(statement.get("predicateType", ""))
    if kind.endswith("/v1"):
        run = predicate.get("runDetails") or {}
        definition = predicate.get("buildDefinition") or {}
        meta = run.get("metadata") or {}
        source = _first_source(definition.get("resolvedDependencies") or [])
        workflow = (definition.get("externalParameters") or {}).get("workflow") or {}
        return {"predicate_type": kind, "builder": (run.get("builder") or {}).get("id"),
                "source": source[0] or workflow.get("repository"), "commit": source[1],
                "started": meta.get("startedOn"), "finished": meta.get("finishedOn")}
    invocation = (predicate.get("invocation") or {}).get("configSource") or {}
    meta = predicate.get("metadata") or {}
    source = (invocation.get("uri"), (invocation.get("digest") or {}).get("sha1"))
    if not source[0]:
        source = _first_source(predicate.get("materials") or [])
    return {"predicate_type": kind, "builder": (predicate.get("builder") or {}).get("id"),
            "source": source[0], "commit": source[1],
            "started": meta.get("buildStartedOn"), "finished": meta.get("buildFinishedOn")}


def _first_source(entries: list[Any]) -> tuple[str | None, str | None]:
    """The first dependency with a git commit (or any digest): its uri and the commit."""
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        digest = entry.get("digest") or {}
        commit = digest.get("gitCommit") or digest.get("sha1")
        if commit:
            uri = str(entry.get("uri") or "")
            return uri.removeprefix("git+").split("@")[0] or None, commit
    return None, None
