"""Reads queue statistics from the RabbitMQ management API.

One request per vhost returns every queue's numbers, asking only for the columns
the operator uses, so a hundred pools on one broker cost one request per poll.
Everything that can go wrong is a `StatsError` with a kind from a fixed set
(a metric label and a condition reason); nothing that failed is reported as zero.
"""

import asyncio
import json
import ssl
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp

from workfleet_common.topology import Topology
from workfleet_operator.scaling.rates import OPERATIONS, Counters

QUEUE_COLUMNS = ",".join(
    [
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
        "message_stats.publish",
        "message_stats.deliver",
        "message_stats.ack",
        "message_stats.redeliver",
    ]
)


class StatsError(Exception):
    """Stats could not be read. `kind` is one of KINDS."""

    KINDS = (
        "Unreachable",
        "Timeout",
        "Unauthorized",
        "VhostNotFound",
        "QueueNotFound",
        "StatsMissing",
        "ServerError",
        "BadResponse",
        "CredentialsMissing",
        "CASecretMissing",
        "CASecretInvalid",
    )

    def __init__(self, kind: str, message: str):
        assert kind in self.KINDS, kind
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class QueueStats:
    ready: int
    unacked: int
    consumers: int
    counters: Counters | None  # None: the broker keeps no message counters for this queue (yet)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class ManagementClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, credentials: Credentials, timeout_s: float,
                 ssl_context: ssl.SSLContext | None = None):
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._ssl = ssl_context if ssl_context is not None else True  # True: aiohttp's default verification
        self._auth = aiohttp.BasicAuth(credentials.username, credentials.password)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def vhost_queues(self, vhost: str) -> dict[str, "QueueStats | StatsError"]:
        """Every queue of the vhost by name: its stats, or why they are incomplete."""
        items = await self._get(f"/api/queues/{quote(vhost, safe='')}", {"columns": QUEUE_COLUMNS}, vhost)
        if not isinstance(items, list):
            raise StatsError("BadResponse", f"expected a list of queues, got {type(items).__name__}")
        return {item["name"]: parse_queue(item) for item in items if isinstance(item, dict) and isinstance(item.get("name"), str)}

    async def unacked_by_connection_name(self, vhost: str) -> dict[str, int]:
        """Unacked messages held by each client-named connection of the vhost.

        Workers name their connection after their pod (POD_NAME), so this maps pods
        to the work they hold. Two requests, made only when the pool scales in.
        """
        quoted = quote(vhost, safe="")
        connections = await self._get(f"/api/vhosts/{quoted}/connections", {"columns": "name,user_provided_name"}, vhost)
        channels = await self._get(
            f"/api/vhosts/{quoted}/channels", {"columns": "connection_details.name,messages_unacknowledged"}, vhost
        )
        if not isinstance(connections, list) or not isinstance(channels, list):
            raise StatsError("BadResponse", "expected lists of connections and channels")
        client_names = {
            item.get("name"): item.get("user_provided_name")
            for item in connections
            if isinstance(item, dict) and item.get("user_provided_name")
        }
        held: dict[str, int] = {}
        for channel in channels:
            if not isinstance(channel, dict):
                continue
            owner = client_names.get((channel.get("connection_details") or {}).get("name"))
            unacked = channel.get("messages_unacknowledged")
            if owner and isinstance(unacked, int):
                held[owner] = held.get(owner, 0) + unacked
        return held

    async def _get(self, path: str, params: dict[str, str], vhost: str):
        url = self.base_url + path
        try:
            async with self._session.get(url, params=params, auth=self._auth, timeout=self._timeout, ssl=self._ssl) as response:
                if response.status in (401, 403):
                    raise StatsError("Unauthorized", f"{url} answered {response.status}: check the credentials Secret and that the user has the monitoring tag")
                if response.status == 404:
                    raise StatsError("VhostNotFound", f"vhost {vhost!r} not found at {self.base_url}")
                if response.status >= 500:
                    raise StatsError("ServerError", f"{url} answered {response.status}")
                if response.status != 200:
                    raise StatsError("BadResponse", f"{url} answered {response.status}")
                text = await response.text()
        except asyncio.TimeoutError:
            raise StatsError("Timeout", f"{url} did not answer within {self._timeout.total:g}s") from None
        except aiohttp.ClientError as error:
            raise StatsError("Unreachable", f"{url}: {error}") from None
        try:
            return json.loads(text)
        except ValueError:
            raise StatsError("BadResponse", f"{url} answered with something that is not JSON: {text[:80]!r}") from None


def queue_in(queues: dict[str, "QueueStats | StatsError"], queue: str, vhost: str) -> QueueStats:
    """One queue's stats out of a vhost's; raises StatsError when it is missing or incomplete."""
    stats = queues.get(queue)
    if stats is None:
        raise StatsError("QueueNotFound", f"queue {queue!r} not found in vhost {vhost!r}")
    if isinstance(stats, StatsError):
        raise stats
    return stats


def waiting_to_retry(queues: dict[str, "QueueStats | StatsError"], queue: str) -> dict[str, int]:
    """Messages in the work queue's retry queues, by delay ('10s'), from the same read. They wait
    on purpose, so they are not backlog: no worker can run them before their delay is over."""
    prefix = Topology(queue).retry_queue_prefix
    return {name[len(prefix):]: stats.ready + stats.unacked for name, stats in queues.items()
            if name.startswith(prefix) and isinstance(stats, QueueStats)}


def _count(item: dict, key: str) -> int | None:
    value = item.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_queue(item: dict) -> "QueueStats | StatsError":
    """A queue's stats from one element of /api/queues; missing numbers are an error, never zero.

    A queue the broker has not sampled yet (a new quorum queue shows no counts for
    several seconds) lacks them, and so does a broker with stats collection off.
    """
    ready, unacked, consumers = (_count(item, key) for key in ("messages_ready", "messages_unacknowledged", "consumers"))
    if ready is None or unacked is None or consumers is None:
        return StatsError("StatsMissing", f"the broker reports no message counts for queue {item.get('name')!r} yet")
    message_stats = item.get("message_stats")
    counters = None
    if isinstance(message_stats, dict):
        # A counter the broker omits has not moved since the queue's stats began.
        values = {name: _count(message_stats, name) if name in message_stats else 0 for name in OPERATIONS}
        if None not in values.values():
            counters = Counters(**values)
    return QueueStats(ready, unacked, consumers, counters)
