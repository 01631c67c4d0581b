"""Target URLs: one normaliser for every entry point, and one way to show a URL without its secrets."""

from __future__ import annotations

import base64
from urllib.parse import unquote, urlsplit, urlunsplit


def normalize_host(host: str) -> str:
    """The base URL loadgate appends its routes to: no trailing slash, no ``/v1`` suffix (the OpenAI
    ``base_url`` habit: loadgate's routes start with /v1), no query or fragment."""
    parts = urlsplit(host.strip())
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")]
    return urlunsplit((parts.scheme, parts.netloc, path.rstrip("/"), "", ""))


def public_url(url: str | None) -> str | None:
    """The URL without user:password, query or fragment: what may appear in logs, files and reports."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if ":" in netloc:  # IPv6 literal
            netloc = f"[{netloc}]"
        if parts.port:
            netloc = f"{netloc}:{parts.port}"
    except ValueError:
        return "<unparseable URL>"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def basic_auth_header(url: str | None) -> str | None:
    """``Basic ...`` for credentials in the URL (user:password@host), as Locust would send them; else None."""
    try:
        parts = urlsplit(url or "")
        user, password = parts.username, parts.password
    except ValueError:
        return None
    if not user:
        return None
    pair = f"{unquote(user)}:{unquote(password or '')}".encode("latin1")
    return "Basic " + base64.b64encode(pair).decode("ascii")


def target_host(url: str) -> str:
    """The host loadgate gives Locust: normalised (no trailing slash, no /v1) and without credentials,
    query or fragment, so Locust's report, logs and web UI never show a secret."""
    public = public_url(url)
    return normalize_host(public) if public and public != "<unparseable URL>" else url
