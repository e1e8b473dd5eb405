"""What stops `workfleet up`: Ctrl-C (SIGINT), SIGTERM, and SIGHUP (the terminal closed, or the SSH
session dropped: the shell passes the hangup on to its jobs). Each stops it the same way, with the
workers drained and the broker and Prometheus stopped, never left running.

The terminal's signals reach `up` alone: the processes it starts have sessions of their own
(worker_processes.py, prometheus.py, rabbitmq.py), so a worker gets a single SIGTERM, from `up`,
and drains, instead of the terminal's signal and then `up`'s, which it would take as "exit now".

After a hangup nobody reads the terminal, and writing to it fails (EIO), which would cut the
shutdown short; what `up` writes there goes to /dev/null instead.
"""

import os
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
STDOUT, STDERR = 1, 2


class Terminal:
    """The standard output and error that are a terminal, as they were when `up` started (after a
    hangup they no longer say they are one)."""

    def __init__(self):
        self._fds = [fd for fd in (STDOUT, STDERR) if os.isatty(fd)]

    def hang_up(self) -> None:
        if not self._fds:
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in self._fds:
            os.dup2(devnull, fd)
        os.close(devnull)
        self._fds = []


def interrupt_on_stop_signals(terminal: Terminal, stopping: bool = False) -> None:
    """Outside the fleet's event loop, SIGTERM and SIGHUP raise KeyboardInterrupt, as Ctrl-C does
    there, so every context manager still runs its exit. While `up` is stopping, a hangup only
    silences the output: the stop is under way, and cutting its wait for the workers short would
    leave them to finish on their own."""

    def interrupt(signum: int, _frame) -> None:
        if signum == signal.SIGHUP:
            terminal.hang_up()
            if stopping:
                return
        raise KeyboardInterrupt

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def stop_loop_on_stop_signals(loop, stop, terminal: Terminal) -> None:
    """Inside the fleet's event loop, each stop signal calls `stop`; the loop then winds down.
    The loop puts the default handlers back when it closes: call interrupt_on_stop_signals then."""

    def stopping(signum: int) -> None:
        if signum == signal.SIGHUP:
            terminal.hang_up()
        stop()

    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stopping, signum)
