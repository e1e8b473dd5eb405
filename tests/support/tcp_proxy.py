"""A TCP proxy on loopback that can cut the network without a FIN.

The one fake in the fault tests: a real network partition cannot be made on one
machine without namespaces, so the proxy stands between a client and the real
broker and, when told, silently drops every byte in both directions (sockets
stay open, nobody is told), which is what a cable pulled mid-connection looks
like to both ends. `heal()` resets the dead connections and forwards again.
"""

import socket
import struct
import threading

from workfleet_operator.local.rabbitmq import free_port


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.port = free_port()
        self._target = (target_host, target_port)
        self._forwarding = True
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def url(self, amqp_url: str, target_port: int) -> str:
        return amqp_url.replace(f":{target_port}/", f":{self.port}/")

    def blackhole(self) -> None:
        """Drop every byte from now on, in both directions, without closing anything."""
        self._forwarding = False

    def heal(self) -> None:
        """Reset the connections that lived through the cut, then forward again."""
        with self._lock:
            stale, self._connections = self._connections, []
        for sock in stale:
            _reset(sock)
        self._forwarding = True

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.heal()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                if self._forwarding:
                    sink.sendall(data)
        except OSError:
            _reset(source)
            _reset(sink)


def _reset(sock: socket.socket) -> None:
    """Close with an RST (linger 0), as a peer that lost the connection state would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass
