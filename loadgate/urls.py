"""Target URLs: one normaliser for every entry point, and one way to show a URL without its secrets."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


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
