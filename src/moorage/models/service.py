"""The model index read back: search, the model card (files, lineage), files and tensors, and
the diff of two models — each filtered to the repositories the caller may pull."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..auth.authorizer import Action, Authorizer
from ..auth.authorizer import repository as repo_resource
from ..auth.identity import Principal
from ..oci.errors import ManifestUnknown
from .params import format_count
from .query import parse_query

if TYPE_CHECKING:
    from ..metadata.uow import Database

PAGE = 500
SUMMARY = ("repository", "digest", "kind", "name", "family", "version", "architecture",
           "params", "precision", "quantization", "format", "license", "metrics",
           "training_run", "base_digest", "parse_error")


class ModelUnknown(ManifestUnknown):
    """No indexed model by that reference (not a model, or not indexed yet)."""


def split_reference(ref: str) -> tuple[str, str | None, str | None]:
    """`REPO@DIGEST`, `REPO:TAG` or `REPO` (tag latest) as (repository, digest, tag)."""
    if "@" in ref:
        repo, _, digest = ref.partition("@")
        return repo, digest, None
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        return ref[:colon], None, ref[colon + 1:]
    return ref, None, "latest"


class ModelService:
    """Reads of the model index for one caller at a time."""

    def __init__(self, database: Database, authorizer: Authorizer) -> None:
        self.database = database
        self.authorizer = authorizer

    def _visible(self, principal: Principal, repository: str) -> bool:
        return self.authorizer.allows(principal, Action.PULL, repo_resource(repository))

    def search(self, query: str, principal: Principal, limit: int = 1000
               ) -> list[dict[str, Any]]:
        """The models matching `query` (QueryInvalid if it does not parse) that `principal`
        may pull, oldest first, at most `limit`."""
        terms = parse_query(query)
        from .query import matches

        found: list[dict[str, Any]] = []
        after = 0
        while len(found) < limit:
            with self.database.read() as uow:
                page = uow.models.page(after, PAGE)
            found += [_summary(m) for m in page
                      if matches(terms, m) and self._visible(principal, m["repository"])]
            if len(page) < PAGE:
                break
            after = page[-1]["id"]
        return found[:limit]

    def resolve(self, ref: str, principal: Principal) -> dict[str, Any]:
        """The indexed model `ref` names; DENIED unless the caller may pull it,
        MANIFEST_UNKNOWN when it is not an indexed model."""
        repository, digest, tag = split_reference(ref)
        return self.model(repository, digest, tag, principal)

    def model(self, repository: str, digest: str | None, tag: str | None,
              principal: Principal) -> dict[str, Any]:
        """The indexed model `repository@digest` (or `:tag`) as the caller may see it."""
        self.authorizer.require(principal, Action.PULL, repo_resource(repository),
                                doing="read its models")
        with self.database.read() as uow:
            if digest is None:
                row = uow.manifests.get(repository, None, tag, False)
                digest = row.digest if row is not None else None
            model = uow.models.get(repository, digest) if digest else None
        if model is None:
            shown = f"{repository}@{digest}" if digest else f"{repository}:{tag}"
            raise ModelUnknown(f"{shown} is not an indexed model (not a model, or its "
                               "post-push.models job has not run yet)",
                               detail={"repository": repository, "reference": digest or tag})
        return model

    def card(self, ref: str, principal: Principal) -> dict[str, Any]:
        """The model card: fields, metrics, files and lineage."""
        repository, digest, tag = split_reference(ref)
        return self.card_of(repository, digest, tag, principal)

    def card_of(self, repository: str, digest: str | None, tag: str | None,
                principal: Principal) -> dict[str, Any]:
        """The card of `repository@digest` (or `:tag`)."""
        model = self.model(repository, digest, tag, principal)
        with self.database.read() as uow:
            files = uow.models.files(model["id"], False)
            model_tags = uow.models.tags_of(repository, model["digest"])
            bases = uow.models.with_digest(model["base_digest"]) if model["base_digest"] else []
            children = uow.models.fine_tunes_of(model["digest"])
            refs = {(m["repository"], m["digest"]): uow.models.tags_of(m["repository"],
                                                                     m["digest"])
                    for m in bases + children}
        card = _summary(model)
        card.update(tags=model_tags, params_text=format_count(model["params"]),
                    annotations=model["annotations"], details=model["details"], files=files,
                    dataset_digest=model["dataset_digest"])

        def named(m: dict[str, Any]) -> dict[str, Any]:
            return {"repository": m["repository"], "digest": m["digest"], "name": m["name"],
                    "tags": refs[(m["repository"], m["digest"])]}

        runs = ([{"id": model["training_run"], "url": model["training_run_url"]}]
                if model["training_run"] or model["training_run_url"] else [])
        card["lineage"] = {
            "base": ({"digest": model["base_digest"], "name": model["base_name"],
                      "models": [named(m) for m in bases
                                 if self._visible(principal, m["repository"])]}
                     if model["base_digest"] or model["base_name"] else None),
            "runs": runs,
            "fine_tunes": [named(m) for m in children
                           if self._visible(principal, m["repository"])],
        }
        return card

    def files(self, ref: str, principal: Principal, tensors: bool = False
              ) -> dict[str, Any]:
        """The files of a model (path, size, layer, offset) and, if asked, their tensors."""
        repository, digest, tag = split_reference(ref)
        return self.files_of(repository, digest, tag, principal, tensors)

    def files_of(self, repository: str, digest: str | None, tag: str | None,
                 principal: Principal, tensors: bool = False) -> dict[str, Any]:
        """The files of `repository@digest` (or `:tag`)."""
        model = self.model(repository, digest, tag, principal)
        with self.database.read() as uow:
            files = uow.models.files(model["id"], tensors)
        return {"repository": repository, "digest": model["digest"], "files": files}

    def diff(self, a: str, b: str, principal: Principal) -> dict[str, Any]:
        """What changed from model `a` to model `b`: files by path (added, removed, changed
        by layer/offset/size) and tensors by name (added, removed, changed in dtype, shape or
        length, or in a file whose bytes differ; unchanged when the layer is the same)."""
        old, new = self.files(a, principal, True), self.files(b, principal, True)
        old_files = {f["path"]: f for f in old["files"]}
        new_files = {f["path"]: f for f in new["files"]}

        def where(f: dict[str, Any]) -> tuple[Any, ...]:
            return (f["layer_digest"], f["layer_offset"], f["size"])

        files = {
            "added": sorted(set(new_files) - set(old_files)),
            "removed": sorted(set(old_files) - set(new_files)),
            "changed": sorted(p for p in set(old_files) & set(new_files)
                              if where(old_files[p]) != where(new_files[p])),
        }
        files["unchanged"] = sorted(set(old_files) & set(new_files) - set(files["changed"]))
        old_t = {t["name"]: (f, t) for f in old["files"] for t in f.get("tensors", [])}
        new_t = {t["name"]: (f, t) for f in new["files"] for t in f.get("tensors", [])}
        changed, unchanged = [], 0
        for name in sorted(set(old_t) & set(new_t)):
            (of, ot), (nf, nt) = old_t[name], new_t[name]
            spec_old = (ot["dtype"], ot["shape"], ot["length"])
            spec_new = (nt["dtype"], nt["shape"], nt["length"])
            if spec_old != spec_new:
                changed.append({"name": name, "reason": "spec", "from": list(spec_old),
                                "to": list(spec_new)})
            elif of["layer_digest"] != nf["layer_digest"]:
                changed.append({"name": name, "reason": "data", "file": nf["path"]})
            else:
                unchanged += 1
        return {"from": {"repository": old["repository"], "digest": old["digest"]},
                "to": {"repository": new["repository"], "digest": new["digest"]},
                "files": files,
                "tensors": {"added": sorted(set(new_t) - set(old_t)),
                            "removed": sorted(set(old_t) - set(new_t)),
                            "changed": changed, "unchanged": unchanged}}


def _summary(model: dict[str, Any]) -> dict[str, Any]:
    return {k: model[k] for k in SUMMARY}
