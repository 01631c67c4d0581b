"""Server metrics without I/O: which series are kept, how a Prometheus text page becomes CSV rows.

The target's page is parsed with ``prometheus_client``'s own text parser (never by hand); each sample
whose name fully matches one of the ``--server-metrics-filter`` patterns becomes one row of
``PREFIX_server_metrics.csv`` (``loadgate.contract.SERVER_METRICS_COLUMNS``). The scraping itself (a
gevent greenlet on the process that owns the run) is in ``loadgate.harness.server_metrics``. Imports
neither Locust nor gevent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from prometheus_client.parser import text_string_to_metric_families

from loadgate.urls import normalize_host

# The series kept by default: queue depth, running requests and cache use of the common servers.
DEFAULT_FILTERS: tuple[str, ...] = (
    # vLLM (V0 and V1 names)
    r"vllm:num_requests_(running|waiting|swapped)",
    r"vllm:(gpu|cpu|kv)_cache_usage_perc",
    r"vllm:gpu_prefix_cache_hit_rate",
    r"vllm:num_preemptions_total",
    r"vllm:(prompt|generation)_tokens_total",
    # SGLang
    r"sglang:num_(running|queue|used)_reqs",
    r"sglang:num_used_tokens",
    r"sglang:token_usage",
    r"sglang:gen_throughput",
    r"sglang:cache_hit_rate",
    # TGI
    r"tgi_queue_size",
    r"tgi_batch_current_(size|max_tokens)",
    r"tgi_request_(count|success|failure)",
    # LiteLLM proxy
    r"litellm_in_flight_requests",
    r"litellm_proxy_(total|failed)_requests_metric_total",
    r"litellm_requests_metric_total",
    r"litellm_deployment_state",
    # loadgate's mock (docs/mock.md)
    r"mock_.*",
)

PROMETHEUS_TEXT = "text/plain;version=0.0.4;q=0.9,*/*;q=0.1"  # the Accept header of a scrape
MAX_PAGE_BYTES = 32 * 1024 * 1024  # a /metrics page; histograms of many models stay far below


class NotPrometheusText(ValueError):
    """The page is no Prometheus text exposition (an HTML or JSON page, an error body)."""


@dataclass(frozen=True)
class Sample:
    metric: str
    labels: str  # label_text(...)
    value: float

    def row(self, timestamp: float) -> list[str]:
        return [f"{timestamp:.3f}", self.metric, self.labels, value_text(self.value)]


def label_text(labels: Mapping[str, str]) -> str:
    """``k="v",k2="v2"``: sorted by key, values escaped as in the exposition format (a stable key)."""
    return ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def value_text(value: float) -> str:
    """As Prometheus writes values: NaN, +Inf, -Inf, else the shortest exact float."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def compile_filters(patterns: Iterable[str]) -> re.Pattern[str]:
    """One pattern matching a sample name that fully matches any of ``patterns``."""
    return re.compile("|".join(f"(?:{p})" for p in patterns))


def parse_page(text: str, keep: re.Pattern[str]) -> list[Sample]:
    """The kept samples of one page; NotPrometheusText when it is not Prometheus text at all."""
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, TypeError, IndexError, KeyError) as e:  # what the parser raises on bad lines
        raise NotPrometheusText(f"not Prometheus text ({type(e).__name__}: {str(e)[:80]})") from None
    if not families and text.strip():
        raise NotPrometheusText("not Prometheus text (no metric family)")
    return [
        Sample(sample.name, label_text(sample.labels), float(sample.value))
        for family in families
        for sample in family.samples
        if keep.fullmatch(sample.name)
    ]


def auto_url(host: str) -> str:
    """``--server-metrics auto``: ``<host>/metrics`` (the target's base URL, credentials kept for the
    scrape's own Authorization header)."""
    return normalize_host(host) + "/metrics"


def split_url(url: str) -> tuple[str, str]:
    """(base with scheme and host, path with query) of a metrics URL: what target.Client takes."""
    parts = urlsplit(url)
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")), path


_LABEL_PAIR = re.compile(r'(?P<k>[A-Za-z_][A-Za-z0-9_]*)="(?P<v>(?:[^"\\]|\\.)*)"(?:,|$)')


def parse_label_text(text: str) -> dict[str, str]:
    """The labels of a CSV row (``label_text``'s output) as a dict; ValueError when malformed."""
    labels: dict[str, str] = {}
    at = 0
    while at < len(text):
        match = _LABEL_PAIR.match(text, at)
        if not match:
            raise ValueError(f"bad labels at character {at + 1}")
        labels[match.group("k")] = re.sub(
            r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), match.group("v")
        )
        at = match.end()
    return labels
