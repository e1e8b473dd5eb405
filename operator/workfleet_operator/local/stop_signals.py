"""What stops `workfleet up`: Ctrl-C (SIGINT), SIGTERM, and SIGHUP (the terminal closed, or the SSH
session dropped: the shell passes the hangup on to its jobs). Each stops it the same way, with the
workers drained and the broker and Prometheus stopped, never left running. Started to ignore
hangups (`nohup workfleet up`), it keeps ignoring them.

The terminal's signals reach `up` alone: the processes it starts have sessions of their own
(worker_processes.py, prometheus.py, rabbitmq.py), so a worker gets a single SIGTERM, from `up`,
and drains, instead of the terminal's signal and then `up`'s, which it would take as "exit now".

After a hangup nobody reads the terminal, and writing to it fails (EIO), which would cut the
shutdown short; what `up` writes there goes to /dev/null instead.
"""

import os
import signal

STDOUT, STDERR = 1, 2


class StopSignals:
    """Read at start: which stop signals `up` takes, and which of its outputs are a terminal
    (after a hangup they no longer say they are one)."""

    def __init__(self):
        hangup_ignored = signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        self.signals = (signal.SIGINT, signal.SIGTERM) + (() if hangup_ignored else (signal.SIGHUP,))
        self._terminal_fds = [fd for fd in (STDOUT, STDERR) if os.isatty(fd)]

    def interrupt(self, stopping: bool = False) -> None:
        """Outside the fleet's event loop, SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C
        does there, so every context manager still runs its exit. While `up` is stopping, a hangup
        only silences the output: the stop is under way, and cutting its wait for the workers short
        would leave them to finish on their own."""

        def interrupt(signum: int, _frame) -> None:
            if signum == signal.SIGHUP:
                self._hang_up()
                if stopping:
                    return
            raise KeyboardInterrupt

        for signum in self.signals:
            if signum != signal.SIGINT:  # Python's own handler raises KeyboardInterrupt already
                signal.signal(signum, interrupt)

    def stop_loop(self, loop, stop) -> None:
        """Inside the fleet's event loop, each stop signal calls `stop`; the loop then winds down.
        The loop puts the default handlers back when it closes: call `interrupt` then."""

        def stopping(signum: int) -> None:
            if signum == signal.SIGHUP:
                self._hang_up()
            stop()

        for signum in self.signals:
            loop.add_signal_handler(signum, stopping, signum)

    def _hang_up(self) -> None:
        if not self._terminal_fds:
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in self._terminal_fds:
            os.dup2(devnull, fd)
        os.close(devnull)
        self._terminal_fds = []
