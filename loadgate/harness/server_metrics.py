"""--server-metrics: scrape the target's Prometheus page every interval into PREFIX_server_metrics.csv.

Runs on the process that owns the run (a local runner or the master, never a worker), in one gevent
greenlet from the test start to its stop (one last scrape then), with the requests' own Authorization
(OPENAI_API_KEY, or the basic auth of --host or of the metrics URL). A failed scrape is logged once and
then only counted (``server_metrics_failures`` in PREFIX_loadgate.json and the LLM summary); it never
stops the run. ``auto`` checks ``<host>/metrics`` once at the test start and turns itself off, saying so
once, when it does not answer Prometheus text. The URL is shown without credentials everywhere.
"""

from __future__ import annotations

import csv
import logging
import time
from typing import IO, Any

import gevent
from locust.runners import WorkerRunner

from loadgate import contract
from loadgate import options as opts
from loadgate.harness import outputs
from loadgate.harness.state import state
from loadgate.servermetrics import (
    MAX_PAGE_BYTES,
    PROMETHEUS_TEXT,
    NotPrometheusText,
    Sample,
    auto_url,
    compile_filters,
    parse_page,
    split_url,
)
from loadgate.target import Client
from loadgate.urls import public_url

logger = logging.getLogger("loadgate")


class ScrapeError(Exception):
    """Why one scrape gave no samples (one line, no credentials)."""


class ServerMetrics:
    """The scraper of one environment: its settings, its CSV and its counts."""

    def __init__(self, setting: str, interval_s: float, patterns: tuple[str, ...]) -> None:
        self.setting = setting  # "auto" or a URL (possibly with credentials: never shown)
        self.interval_s = interval_s
        self.keep = compile_filters(patterns)
        self.url: str | None = None  # what is scraped (None: off)
        self.scrapes = 0
        self.failures = 0
        self.failure_said = False
        self.greenlet: Any = None
        self.out: IO[str] | None = None
        self.writer: Any = None

    @property
    def shown(self) -> str:
        return public_url(self.url or self.setting) or ""

    def fetch(self, basic_auth: str | None) -> list[Sample]:
        """One scrape of ``self.url``: its kept samples, or ScrapeError saying why not."""
        assert self.url is not None
        base, path = split_url(self.url)
        client = Client(base, timeout_s=max(1.0, min(self.interval_s, 10.0)), basic_auth=basic_auth)
        client.headers["Accept"] = PROMETHEUS_TEXT
        client.headers["User-Agent"] = "loadgate-server-metrics"
        try:
            answer = client.request("GET", path, max_bytes=MAX_PAGE_BYTES)
        except Exception as e:  # target._Transport: refused, timeout, DNS (a scrape never stops the run)
            raise ScrapeError(str(e) or type(e).__name__) from None
        if not answer.ok:
            raise ScrapeError(f"HTTP {answer.status}")
        text = answer.body.decode("utf-8", errors="replace")
        try:  # parsed in gevent's thread pool: a big page (~60 ms) must not stall the users' event loop
            return gevent.get_hub().threadpool.apply(parse_page, (text, self.keep))
        except NotPrometheusText as e:
            raise ScrapeError(str(e)) from None

    def resolve(self, host: str | None, basic_auth: str | None) -> None:
        """At the test start: the URL to scrape; ``auto`` tries the target's /metrics once."""
        if self.setting != "auto":
            self.url = self.setting
            return
        if not host:
            logger.warning("loadgate: --server-metrics auto: no --host to scrape; no server metrics")
            self.url = None
            return
        self.url = auto_url(host)
        try:
            self.fetch(basic_auth)
        except ScrapeError as e:
            logger.warning(
                "loadgate: --server-metrics auto: %s does not answer Prometheus text (%s); no server metrics",
                self.shown,
                e,
            )
            self.url = None
            return
        logger.info("loadgate: --server-metrics auto: scraping %s", self.shown)

    def scrape(self, basic_auth: str | None) -> None:
        """One scrape into the CSV; a failure is logged the first time, then counted."""
        now = time.time()
        try:
            samples = self.fetch(basic_auth)
        except ScrapeError as e:
            self.failures += 1
            if not self.failure_said:
                self.failure_said = True
                logger.warning(
                    "loadgate: server metrics: scraping %s failed (%s); further failures are only counted, "
                    "the run goes on",
                    self.shown,
                    e,
                )
            return
        self.scrapes += 1
        if self.writer is not None and self.out is not None:
            self.writer.writerows(sample.row(now) for sample in samples)
            self.out.flush()

    def open(self, prefix: str) -> None:
        self.close()
        self.out = open(contract.path(prefix, contract.SERVER_METRICS_CSV), "w", newline="", encoding="utf-8")  # noqa: SIM115 (closed at the stop)
        self.writer = csv.writer(self.out)
        self.writer.writerow(contract.SERVER_METRICS_COLUMNS)
        self.out.flush()

    def close(self) -> None:
        if self.out is not None:
            self.out.close()
        self.out = self.writer = None

    def metadata(self) -> dict[str, Any]:
        """The fields of PREFIX_loadgate.json and the LLM summary."""
        return {
            "server_metrics_url": public_url(self.url) if self.url else None,
            "server_metrics_scrapes": self.scrapes,
            "server_metrics_failures": self.failures,
        }


def configured(options: Any) -> ServerMetrics | None:
    """The scraper the options ask for (None: off); SettingError (one line) on a bad setting."""
    setting = opts.parse_value("--server-metrics", getattr(options, "server_metrics", None) or "")
    interval = opts.parse_value(
        "--server-metrics-interval", getattr(options, "server_metrics_interval", None) or "5s"
    )
    patterns = opts.parse_value(
        "--server-metrics-filter", getattr(options, "server_metrics_filter", None) or "default"
    )
    return ServerMetrics(setting, interval, patterns) if setting else None


def install(environment: Any) -> ServerMetrics | None:
    """At init, on a local runner or master: validate the settings (SettingError) and hook the test's
    start and stop."""
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return None
    scraper = configured(environment.parsed_options)
    if scraper is None:
        return None
    environment.events.test_start.add_listener(lambda **_kw: start(environment, scraper))
    environment.events.test_stop.add_listener(lambda **_kw: stop(environment, scraper))
    return scraper


def _auth(environment: Any) -> str | None:
    return state(environment).basic_auth


def start(environment: Any, scraper: ServerMetrics) -> None:
    st = state(environment)
    scraper.scrapes = scraper.failures = 0
    scraper.failure_said = False
    scraper.resolve(environment.host, st.basic_auth)
    st.meta.update(scraper.metadata())
    if scraper.url is None:
        return
    if not st.csv_prefix:
        logger.warning("loadgate: --server-metrics: no --csv PREFIX to write the series to; not scraping")
        scraper.url = None
        st.meta.update(scraper.metadata())
        return
    scraper.open(st.csv_prefix)
    scraper.greenlet = gevent.spawn(_loop, environment, scraper)


def _loop(environment: Any, scraper: ServerMetrics) -> None:
    while True:
        started = time.monotonic()
        scraper.scrape(_auth(environment))
        gevent.sleep(max(0.0, scraper.interval_s - (time.monotonic() - started)))


def stop(environment: Any, scraper: ServerMetrics) -> None:
    """At the test stop: one last scrape (the values at the end), then the counts into the metadata."""
    if scraper.greenlet is None:
        return
    scraper.greenlet.kill(block=True)
    scraper.greenlet = None
    scraper.scrape(_auth(environment))
    scraper.close()
    st = state(environment)
    st.meta.update(scraper.metadata())
    if scraper.failures:
        logger.warning(
            "loadgate: server metrics: %d of %d scrapes of %s failed",
            scraper.failures,
            scraper.failures + scraper.scrapes,
            scraper.shown,
        )
    outputs.write_metadata(st)
