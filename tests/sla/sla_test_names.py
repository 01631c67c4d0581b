"""Names shared by the test locustfile and the tests (kept free of Locust imports: no gevent patching)."""

QUOTED_NAME = 'slow, "quoted" – ünïcödé ✓'  # a comma, quotes and non-ASCII: Locust's CSV must survive them
