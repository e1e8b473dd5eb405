"""A private RabbitMQ node: its own name, ports, data folder and epmd.

Used by the test fixtures and the local fleet. Several nodes can run side by side
and next to a system broker, because nothing is shared: each node gets free
ports, a folder owned by the `rabbitmq` user (the server refuses to run as root)
and an epmd of its own, which is stopped with the node. Which RabbitMQ runs (RabbitMQ 4 from
the project's Debian 13 tree by default, or this machine's package) is rabbitmq_install's choice.
"""

import base64
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from workfleet_operator.local.rabbitmq_install import (
    SERVICE_USER,
    RabbitMQInstall,
    RabbitMQInstallError,
    rabbitmq_install,
)

LOGGER = logging.getLogger(__name__)

EPMD = "epmd"  # the host's; its protocol has not changed, so it serves a RabbitMQ 4 node too
PLUGINS = ("rabbitmq_management", "rabbitmq_prometheus")
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0

# Queue numbers in the management API are samples. By default a quorum queue
# reports them every 5 s and the management agent keeps 5 s samples, so the API
# lags a burst by 5 to 10 s, and the autoscaler with it. These settings (which the
# Helm chart will set as well) bring the lag to about 1.5 s; docs/benchmarks.md has the
# measurements (operator section).
FAST_STATS_CONF = "collect_statistics_interval = 1000"
FAST_STATS_RABBIT_ENV = "{quorum_tick_interval, 1000}"
FAST_STATS_AGENT = (
    "{rabbitmq_management_agent, [{sample_retention_policies,"
    " [{global, [{605, 1}, {3660, 60}]}, {basic, [{605, 1}, {3600, 60}]}, {detailed, [{605, 1}]}]}]}"
)


class BrokerError(RuntimeError):
    pass


# Listening ports are picked below the kernel's ephemeral range. A port from inside
# it (what binding port 0 returns) can become the local port of some outgoing
# connection between the moment we pick it and the moment the broker binds it; a
# node start failed with eaddrinuse that way.
LISTEN_PORTS_FROM = 20000
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, outside the ephemeral range."""
    try:
        below = int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        below = 32768  # Linux's default
    for _ in range(200):
        port = random.randrange(LISTEN_PORTS_FROM, max(below, LISTEN_PORTS_FROM + 1000))
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise BrokerError(f"no free port from {LISTEN_PORTS_FROM} to {below}")


class RabbitNode:
    def __init__(self, rabbitmq_conf: str = "", rabbit_env: str = "", base_dir: Path | None = None, fast_stats: bool = True,
                 install: RabbitMQInstall | None = None):
        """`rabbitmq_conf` lines are added to rabbitmq.conf, and `rabbit_env` entries
        (such as "{channel_tick_interval, 1000}") to the rabbit application's
        advanced config: one list, since a second `{rabbit, [...]}` would replace the first.
        `fast_stats=False` keeps RabbitMQ's default statistics intervals (for comparing).
        `install` defaults to rabbitmq_install()'s choice."""
        try:
            self.install = install or rabbitmq_install()
        except RabbitMQInstallError as error:
            raise BrokerError(str(error)) from None
        self.name = f"workfleet-{uuid.uuid4().hex[:8]}@localhost"
        self.amqp_port = free_port()
        self.management_port = free_port()
        self.prometheus_port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.dir = Path(base_dir or tempfile.mkdtemp(prefix="workfleet-rabbitmq-"))
        self._rabbitmq_conf = rabbitmq_conf
        self._fast_stats = fast_stats
        self._rabbit_env = ", ".join(entry for entry in (FAST_STATS_RABBIT_ENV if fast_stats else "", rabbit_env) if entry)
        self._server: subprocess.Popen | None = None
        self._epmd: subprocess.Popen | None = None
        self._write_config()

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}/metrics"

    @property
    def beam_pid(self) -> int | None:
        """The Erlang VM's PID. The server script runs it as a child and writes this file."""
        try:
            return int((self.dir / "rabbitmq.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def _write_config(self) -> None:
        for sub in ("mnesia", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(
            "\n".join(
                [
                    f"listeners.tcp.1 = 127.0.0.1:{self.amqp_port}",
                    "management.tcp.ip = 127.0.0.1",
                    f"management.tcp.port = {self.management_port}",
                    "prometheus.tcp.ip = 127.0.0.1",
                    f"prometheus.tcp.port = {self.prometheus_port}",
                    "log.file.level = info",
                    FAST_STATS_CONF if self._fast_stats else "",
                    self._rabbitmq_conf,
                    "",
                ]
            )
        )
        terms = [f"{{rabbit, [{self._rabbit_env}]}}", FAST_STATS_AGENT if self._fast_stats else ""]
        (self.dir / "advanced.config").write_text(f"[{', '.join(term for term in terms if term)}].\n")
        (self.dir / "enabled_plugins").write_text(f"[{','.join(PLUGINS)}].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        if os.geteuid() == 0:
            uid, gid = self.install.service_ids()
            for path in [self.dir, *self.dir.rglob("*")]:
                os.chown(path, uid, gid)

    def _env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(self.dir),
            ERL_EPMD_PORT=str(self.epmd_port),
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.dir / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_FEATURE_FLAGS_FILE=str(self.dir / "feature_flags"),
            RABBITMQ_CONF_ENV_FILE=str(self.dir / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(self.dir / "rabbitmq.pid"),
        )
        return env

    def _as_service_user(self) -> dict:
        return {"user": SERVICE_USER, "group": SERVICE_USER} if os.geteuid() == 0 else {}

    def _program(self, program: str, *args: str) -> dict:
        """Popen arguments that run one of RabbitMQ's programs for this node."""
        as_user = self._as_service_user() if self.install.runs_as_service_user_itself() else {}
        return {"args": self.install.command(program, self.dir, *args), "env": self._env(), "cwd": self.dir, **as_user}

    def start(self) -> None:
        if self._server is not None and self._server.poll() is None:
            return
        if self._epmd is None or self._epmd.poll() is not None:
            self._epmd = subprocess.Popen(
                [EPMD, "-port", str(self.epmd_port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # as the node: a Ctrl-C at the terminal is for the caller, which stops both
                **self._as_service_user(),
            )
        with open(self.dir / "log" / "console.log", "ab") as console:
            self._server = subprocess.Popen(
                **self._program("rabbitmq-server"),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_until_ready()

    def wait_until_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Ready means both the AMQP listener and the management API answer."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise BrokerError(f"RabbitMQ exited with {self._server.returncode}; see {self.dir}/log")
            if self._amqp_answers() and self._management_answers():
                return
            time.sleep(0.25)
        raise BrokerError(f"RabbitMQ did not become ready in {timeout:.0f}s; see {self.dir}/log")

    def _amqp_answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.amqp_port), timeout=1) as sock:
                sock.sendall(b"AMQP\x00\x00\x09\x01")
                return sock.recv(1) != b""
        except OSError:
            return False

    def _management_answers(self) -> bool:
        try:
            return self.management_get("/api/overview") is not None
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def management_get(self, path: str):
        request = urllib.request.Request(self.management_url + path)
        request.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)

    def stop(self) -> None:
        """A clean shutdown, as a rolling restart does it: the script passes SIGTERM on."""
        if self._server is None or self._server.poll() is not None:
            return
        self._server.send_signal(signal.SIGTERM)
        try:
            self._server.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            LOGGER.warning("RabbitMQ did not stop in %.0fs; killing it", STOP_TIMEOUT_S)
            self.kill()

    def kill(self) -> None:
        """kill -9 of the Erlang VM: no chance to flush or close connections."""
        if self._server is None or self._server.poll() is not None:
            return
        beam_pid = self.beam_pid
        if beam_pid is not None:
            try:
                os.kill(beam_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:  # killed before the VM wrote its PID: the script's process group holds it
            os.killpg(self._server.pid, signal.SIGKILL)
        self._server.wait(STOP_TIMEOUT_S)
        (self.dir / "rabbitmq.pid").unlink(missing_ok=True)

    def restart(self, hard: bool = False) -> None:
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    def ctl(self, *args: str, timeout: float = 60) -> str:
        """Run rabbitmqctl against this node and return its output."""
        result = subprocess.run(**self._program("rabbitmqctl", "-n", self.name, *args),
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise BrokerError(f"rabbitmqctl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def close(self) -> None:
        """Stop the node and its epmd and remove its folder."""
        self.stop()
        self._stop_epmd()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _kill_processes(self) -> None:
        self.kill()
        self._stop_epmd()

    def _stop_epmd(self) -> None:
        if self._epmd is not None and self._epmd.poll() is None:
            self._epmd.terminate()
            self._epmd.wait(10)

    def __enter__(self) -> "RabbitNode":
        # Nothing of a node stays running when its start fails or is interrupted (Ctrl-C while it
        # boots). A booting VM puts SIGTERM off until it has booted, so it is killed: it holds
        # nothing yet. The folder of a failed one stays, with the log its error points to.
        try:
            self.start()
        except KeyboardInterrupt:
            self._kill_processes()
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        except BaseException:
            self._kill_processes()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
