"""A tiny stdlib HTTP target for the gate's tests: fixed routes whose latency and status are known.

GET /fast -> 200 at once; GET /slow -> 200 after ``slow_ms``; GET /fail -> 500; GET /phase -> 200 after
``phase_ms``, which a test may change while Locust runs (to shape "for" windows).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Target(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, slow_ms: float = 60.0) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.slow_ms = slow_ms
        self.phase_ms = 0.0
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> Target:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 64 * 1024  # one write per response: no Nagle/delayed-ACK stalls on keep-alive
    server: Target

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?")[0]
        delay = {"/slow": self.server.slow_ms, "/phase": self.server.phase_ms}.get(path, 0.0)
        if delay:
            time.sleep(delay / 1000.0)
        status = 500 if path == "/fail" else 200
        body = b"ok" if status == 200 else b"boom"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass
