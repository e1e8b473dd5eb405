"""A switchable stand-in in front of the real management API, for faults the broker will not make.

RabbitMQ can be stopped (connection refused) and can refuse a password (401) on its
own, and the tests make those faults with the real broker. It cannot be made to
answer 500 or non-JSON on demand: for those two, this proxy answers in its place.
In `pass` mode it forwards every request to the real management API unchanged.
"""

import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from workfleet_operator.local.rabbitmq import free_port

MODES = ("pass", "error500", "garbage")


class ManagementProxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.mode = "pass"
        self.requests: list[str] = []  # paths asked for, in order
        self.port = free_port()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                proxy.requests.append(self.path)
                if proxy.mode == "error500":
                    return self._reply(500, b'{"error":"internal"}')
                if proxy.mode == "garbage":
                    return self._reply(200, b"<html>this is not the management API</html>")
                request = urllib.request.Request(proxy.upstream + self.path)
                if self.headers.get("Authorization"):
                    request.add_header("Authorization", self.headers["Authorization"])
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        self._reply(response.status, response.read())
                except urllib.error.HTTPError as error:
                    self._reply(error.code, error.read())

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue_requests(self) -> int:
        return sum(1 for path in self.requests if path.startswith("/api/queues/"))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
