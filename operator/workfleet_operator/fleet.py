"""Every WorkerPool the operator scales, and what they share.

A pool loop per WorkerPool (pool.py); one stats sampler per management API,
vhost and user, shared by every pool that reads it; the broker credentials read
from each pool's Secret, cached for a minute and read again on a 401.
"""

import asyncio
import logging
import time

import aiohttp

from workfleet_operator.kube_api import KubeApi
from workfleet_operator.metrics import OperatorMetrics
from workfleet_operator.pool import PoolLoop
from workfleet_operator.pool_spec import PoolSpec, read_spec
from workfleet_operator.stats.management import Credentials, ManagementClient, StatsError
from workfleet_operator.stats.ready_probe import ReadyProbe
from workfleet_operator.stats.sampler import VhostSampler

LOGGER = logging.getLogger(__name__)

CREDENTIALS_TTL_S = 60.0


class Fleet:
    def __init__(self, kube: KubeApi, metrics: OperatorMetrics):
        self.kube = kube
        self.metrics = metrics
        self._pools: dict[tuple[str, str], PoolLoop] = {}
        self._samplers: dict[tuple, VhostSampler] = {}
        self._credentials: dict[tuple[str, str, str, str], tuple[float, Credentials | None]] = {}
        self._session: aiohttp.ClientSession | None = None

    # -- pools -----------------------------------------------------------------------

    def upsert(self, body: dict) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        spec = read_spec(meta["namespace"], meta["name"], body["spec"])
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = PoolLoop(self, body, spec)
            pool.start()
            LOGGER.info("pool added", extra={"pool": f"{key[0]}/{key[1]}", "queue": spec.queue})
        elif pool.body.get("metadata", {}).get("generation") != meta.get("generation") or pool.spec != spec:
            pool.update(body, spec)
        else:
            pool.body = body
        self.metrics.pools.set(len(self._pools))

    async def remove(self, namespace: str, name: str) -> None:
        pool = self._pools.pop((namespace, name), None)
        if pool is not None:
            await pool.stop()
            LOGGER.info("pool removed", extra={"pool": f"{namespace}/{name}"})
        self.metrics.pools.set(len(self._pools))

    async def close(self) -> None:
        for namespace, name in list(self._pools):
            await self.remove(namespace, name)
        if self._session is not None:
            await self._session.close()
        for sampler in self._samplers.values():
            if sampler.probe is not None:
                await asyncio.to_thread(sampler.probe.close)

    # -- stats -----------------------------------------------------------------------

    async def sampler_for(self, spec: PoolSpec) -> VhostSampler | None:
        """The shared sampler for the pool's broker, vhost and user; None if its Secret is unreadable."""
        credentials = await self._credentials_for(spec)
        if credentials is None:
            return None
        key = (spec.management_url, spec.amqp_url, spec.vhost, credentials.username, credentials.password, spec.timeout_seconds)
        sampler = self._samplers.get(key)
        if sampler is None:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            client = ManagementClient(self._session, spec.management_url, credentials, spec.timeout_seconds)
            probe = ReadyProbe(spec.amqp_url, spec.vhost, credentials) if spec.amqp_url else None
            sampler = self._samplers[key] = VhostSampler(client, spec.vhost, self._count_request, probe)
        return sampler

    def _count_request(self, source: str, ok: bool) -> None:
        counter = self.metrics.management_requests if source == "management" else self.metrics.ready_probes
        counter.labels("ok" if ok else "error").inc()

    async def _credentials_for(self, spec: PoolSpec) -> Credentials | None:
        key = (spec.namespace, spec.secret_name, spec.username_key, spec.password_key)
        cached = self._credentials.get(key)
        if cached and time.monotonic() - cached[0] < CREDENTIALS_TTL_S:
            return cached[1]
        values = await asyncio.to_thread(
            self.kube.read_secret_keys, spec.namespace, spec.secret_name, (spec.username_key, spec.password_key)
        )
        credentials = Credentials(values[spec.username_key], values[spec.password_key]) if values else None
        self._credentials[key] = (time.monotonic(), credentials)
        return credentials

    def forget_credentials(self, spec: PoolSpec) -> None:
        """After a 401: the Secret may have been rotated; read it again at the next poll."""
        self._credentials.pop((spec.namespace, spec.secret_name, spec.username_key, spec.password_key), None)

    @staticmethod
    def credentials_error(spec: PoolSpec) -> StatsError:
        return StatsError(
            "CredentialsMissing",
            f"Secret {spec.namespace}/{spec.secret_name} with keys {spec.username_key!r} and"
            f" {spec.password_key!r} is missing or unreadable",
        )
