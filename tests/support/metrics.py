"""/metrics of a test server as one scrape: on a balanced cluster every node is scraped and
counters are summed, as a Prometheus `sum()` over the instances would."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from support.servers import BalancedCluster, Server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
_SUMMED = ("_total", "_count", "_sum", "_bucket")


def node_urls(server: Server) -> list[str]:
    """The base URL of every process that keeps its own counters."""
    if isinstance(server, BalancedCluster):
        return [node.url for node in server.nodes]
    return [server.url]


def metrics_text(server: Server) -> str:
    """Every node's exposition, one after the other (sample sums stay right)."""
    texts = []
    for url in node_urls(server):
        r = requests.get(url + "/metrics", timeout=30)
        r.raise_for_status()
        texts.append(r.text)
    return "\n".join(texts)


def scrape_all(server: Server) -> Samples:
    """Every sample, keyed by (name, labels): counters summed over nodes, gauges the largest."""
    merged: Samples = {}
    for url in node_urls(server):
        r = requests.get(url + "/metrics", timeout=30)
        r.raise_for_status()
        for family in text_string_to_metric_families(r.text):
            for s in family.samples:
                key = (s.name, frozenset(s.labels.items()))
                if key in merged:
                    summed = s.name.endswith(_SUMMED)
                    merged[key] = merged[key] + s.value if summed else max(merged[key], s.value)
                else:
                    merged[key] = s.value
    return merged
