"""HTTP endpoints for Kubernetes probes and Prometheus: /healthz, /readyz, /metrics.

/healthz (liveness) is true while the main loop turns (it beats on every pass, and the
connection keeper beats while a long task runs on the main thread), also while it waits to
reconnect, so a broker outage never turns into a crash loop. It turns false when the loop has
not beaten for `stale_after_s` (a hang), or while a task runs on whose channel the broker
closed for its consumer timeout: the message is back in the queue, the task holds a slot and
nothing else, and it may be hung, so Kubernetes should restart the pod. /readyz is true only
while the worker consumes.
"""

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

LOGGER = logging.getLogger(__name__)

# The main loop beats at least every second; a minute without a beat is a hang.
LIVENESS_STALE_AFTER_S = 60.0


class HealthState:
    def __init__(self, stale_after_s: float = LIVENESS_STALE_AFTER_S):
        self.ready = False
        self._stale_after_s = stale_after_s
        self._last_beat = time.monotonic()
        self._lock = threading.Lock()
        self._abandoned: list = []  # deliveries whose channel closed under their running task

    def beat(self) -> None:
        self._last_beat = time.monotonic()

    def abandon(self, delivery) -> None:
        """The broker took this running task's message back at its consumer timeout."""
        with self._lock:
            self._abandoned.append(delivery)

    def alive(self) -> bool:
        with self._lock:
            self._abandoned = [delivery for delivery in self._abandoned if not delivery.finished]
            hung = bool(self._abandoned)
        return not hung and time.monotonic() - self._last_beat < self._stale_after_s


def serve(port: int, state: HealthState, registry: CollectorRegistry) -> ThreadingHTTPServer:
    """Serve on all interfaces in a daemon thread; port 0 picks a free port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                self._reply_check(state.alive())
            elif self.path == "/readyz":
                self._reply_check(state.ready)
            else:
                self._reply(404, b"not found\n", "text/plain")

        def _reply_check(self, ok: bool) -> None:
            self._reply(200 if ok else 503, b"ok\n" if ok else b"not ok\n", "text/plain")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # probes every few seconds would flood the log
            pass

    server = ThreadingHTTPServer(("", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health-http", daemon=True).start()
    LOGGER.info("serving /metrics, /healthz and /readyz", extra={"port": server.server_address[1]})
    return server
