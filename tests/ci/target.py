"""A tiny threaded HTTP target for the ci tests that must not depend on the mock's internals.

`python tests/ci/target.py --max-inflight K --delay-ms D` prints `listening on http://127.0.0.1:PORT`.
Requests beyond K in flight answer 503, so a ramp breaks at a known user count; GET /health answers 200.
"""

import argparse
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-inflight", type=int, default=1000)
    parser.add_argument("--delay-ms", type=float, default=20)
    args = parser.parse_args()
    lock, inflight = threading.Lock(), [0]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if self.path == "/health":
                return self._answer(200)
            with lock:
                inflight[0] += 1
                over = inflight[0] > args.max_inflight
            try:
                time.sleep(args.delay_ms / 1000)
                self._answer(503 if over else 200)
            finally:
                with lock:
                    inflight[0] -= 1

        def _answer(self, status: int) -> None:
            body = b'{"ok": true}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
