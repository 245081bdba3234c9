"""Advice rules: each a small function over the analysed layers with a threshold, saying in one
concrete sentence what is wasted where and what would save it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .analysis import LayerFacts

KB, MB, GB = 1000, 1000**2, 1000**3
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".h5",
                   ".pb", ".tflite", ".npz", ".pkl", ".msgpack")

Advice = dict[str, Any]


def human(n: int) -> str:
    """Decimal, human-readable bytes: `512 B`, `2.1 GB`, `600 MB`."""
    if n < KB:
        return f"{n} B"
    for unit, scale in (("TB", 1000 * GB), ("GB", GB), ("MB", MB), ("kB", KB)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{n} B"  # unreachable


def _advice(rule: str, layer: int, size: int, message: str, paths: Iterable[str]) -> Advice:
    return {"rule": rule, "layer": layer, "bytes": size, "message": message,
            "paths": list(paths)}


def _category(rule: str, name: str, layers: list[LayerFacts], threshold: int,
              say: Callable[[LayerFacts, int, str], str]) -> list[Advice]:
    out = []
    for f in layers:
        cat = f.categories.get(name)
        if cat is not None and cat.bytes >= threshold:
            out.append(_advice(rule, f.index, cat.bytes, say(f, cat.bytes, cat.root),
                               [cat.root]))
    return out


def cuda_dev(layers: list[LayerFacts], threshold: int = 100 * MB) -> list[Advice]:
    """CUDA toolkit headers and static libraries (a devel base image shipped to run)."""
    return _category("cuda_dev", "cuda_dev", layers, threshold, lambda f, n, root: (
        f"{human(n)} of CUDA toolkit headers/static libs in layer {f.index} "
        f"({root}/include, *.a): a runtime base image would save it"))


def pip_cache(layers: list[LayerFacts], threshold: int = 10 * MB) -> list[Advice]:
    """pip's download/wheel cache left in a layer."""
    return _category("pip_cache", "pip_cache", layers, threshold, lambda f, n, root: (
        f"pip cache left in layer {f.index} ({root}): {human(n)}; "
        "pip install --no-cache-dir (or a cache mount) would save it"))


def npm_cache(layers: list[LayerFacts], threshold: int = 10 * MB) -> list[Advice]:
    """npm's cache left in a layer."""
    return _category("npm_cache", "npm_cache", layers, threshold, lambda f, n, root: (
        f"npm cache left in layer {f.index} ({root}): {human(n)}; "
        "npm cache clean --force in the same RUN (or a cache mount) would save it"))


def apt_lists(layers: list[LayerFacts], threshold: int = 5 * MB) -> list[Advice]:
    """apt's package lists left in a layer."""
    return _category("apt_lists", "apt_lists", layers, threshold, lambda f, n, root: (
        f"apt lists left in layer {f.index} ({root}): {human(n)}; "
        "rm -rf /var/lib/apt/lists/* in the same RUN as apt-get install would save it"))


def apt_cache(layers: list[LayerFacts], threshold: int = 5 * MB) -> list[Advice]:
    """Downloaded .deb files left in apt's cache."""
    return _category("apt_cache", "apt_cache", layers, threshold, lambda f, n, root: (
        f"apt package cache left in layer {f.index} ({root}): {human(n)}; "
        "apt-get clean in the same RUN would save it"))


def conda_pkgs(layers: list[LayerFacts], threshold: int = 50 * MB) -> list[Advice]:
    """conda's package cache (tarballs and extracted packages) left in a layer."""
    return _category("conda_pkgs", "conda_pkgs", layers, threshold, lambda f, n, root: (
        f"conda package cache left in layer {f.index} ({root}): {human(n)}; "
        "conda clean -afy in the same RUN would save it"))


def pycache(layers: list[LayerFacts], threshold: int = 20 * MB) -> list[Advice]:
    """Compiled bytecode in site-packages (rebuilt on first import if missing)."""
    return _category("pycache", "pycache", layers, threshold, lambda f, n, root: (
        f"__pycache__/*.pyc in site-packages in layer {f.index} ({root}): {human(n)}; "
        "pip install --no-compile (or PYTHONDONTWRITEBYTECODE=1) would save it, "
        "at some start-up cost"))


def site_tests_docs(layers: list[LayerFacts], threshold: int = 10 * MB) -> list[Advice]:
    """Test suites and docs that packages ship inside site-packages."""
    return _category("site_tests_docs", "site_tests_docs", layers, threshold,
                     lambda f, n, root: (
                         f"test/docs dirs in site-packages in layer {f.index} (e.g. {root}): "
                         f"{human(n)}; deleting them in the RUN that installs the packages "
                         "would save it"))


def _hidden(rule: str, kind: str, verb: str, layers: list[LayerFacts], threshold: int
            ) -> list[Advice]:
    out = []
    for f in layers:
        hidden = f.deleted if kind == "deleted" else f.overwritten
        if hidden.bytes < threshold:
            continue
        by = ("layers " if len(hidden.by) > 1 else "layer ") + ", ".join(
            str(i) for i in sorted(hidden.by))
        size, path = hidden.largest
        out.append(_advice(rule, f.index, hidden.bytes, (
            f"{human(hidden.bytes)} of files in layer {f.index} are {verb} by {by} "
            f"but still shipped (largest: {path}, {human(size)}); remove them in the "
            "RUN that created them (or copy only what is needed from a build stage)"), [path]))
    return out


def deleted_later(layers: list[LayerFacts], threshold: int = 10 * MB) -> list[Advice]:
    """Files a later layer deletes (whiteouts): their bytes are pulled all the same."""
    return _hidden("deleted_later", "deleted", "deleted", layers, threshold)


def overwritten_later(layers: list[LayerFacts], threshold: int = 10 * MB) -> list[Advice]:
    """Files a later layer replaces: the lower copy is pulled all the same."""
    return _hidden("overwritten_later", "overwritten", "overwritten", layers, threshold)


def huge_files(largest: list[dict[str, Any]], threshold: int = 1 * GB) -> list[Advice]:
    """Single files so large they are better shipped on their own (model weights above all)."""
    out = []
    for item in largest:
        if item["size"] < threshold:
            break  # largest first
        path, size, layer = item["path"], item["size"], item["layer"]
        if path.lower().endswith(WEIGHT_SUFFIXES):
            text = (f"{human(size)} file in layer {layer} ({path}) looks like model weights "
                    "baked into the image: shipping them as an OCI artifact (pulled or mounted "
                    "on their own) would keep the image small and the weights shared")
        else:
            text = (f"{human(size)} single file in layer {layer} ({path}): shipping it as an "
                    "OCI artifact or a volume would keep it out of every pull of the image")
        out.append(_advice("huge_file", layer, size, text, [path]))
    return out


LAYER_RULES: tuple[Callable[[list[LayerFacts]], list[Advice]], ...] = (
    cuda_dev, pip_cache, npm_cache, apt_lists, apt_cache, conda_pkgs, pycache, site_tests_docs,
    deleted_later, overwritten_later)


def advise(layers: list[LayerFacts], largest: list[dict[str, Any]]) -> list[Advice]:
    """Every rule's advice, the most bytes first."""
    found = [a for rule in LAYER_RULES for a in rule(layers)] + huge_files(largest)
    return sorted(found, key=lambda a: (-a["bytes"], a["layer"], a["rule"]))
