"""The OpenAI-compatible protocol, without any I/O: routes, request bodies and headers, SSE parsing,
answer validation, failure reasons and token timing. Imports neither Locust nor gevent: the harness
(``loadgate.harness.api``) sends the requests and hands the bytes here."""
