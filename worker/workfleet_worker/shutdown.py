"""SIGTERM and SIGINT: the first asks for a drain, the second exits at once.

Kubernetes sends SIGTERM on scale-down and rollout, then SIGKILL after the grace
period. A drain finishes the task in hand and acks it; exiting at once leaves
unacked messages to the broker, which requeues them.
"""

import logging
import os
import signal
import threading

LOGGER = logging.getLogger(__name__)


class StopSignal:
    def __init__(self):
        self._event = threading.Event()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds; True as soon as a stop is requested."""
        return self._event.wait(timeout)

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            LOGGER.warning("second %s: exiting now; the broker requeues unacked messages", name)
            os._exit(128 + signum)
        LOGGER.info("%s received: draining (send it again to exit now)", name)
        self.request()
