"""Every WorkerPool the operator scales, and what they share.

A pool loop per WorkerPool (pool.py); one stats sampler per management API,
vhost and user, shared by every pool that reads it; the broker credentials read
from each pool's Secret, cached for a minute and read again on a 401.
"""

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass

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


@dataclass(frozen=True)
class BrokerTls:
    """How the operator verifies a broker over https:// and amqps://: against ca_pem, or, with
    None (broker.tls.insecureSkipVerify), not at all."""

    ca_pem: str | None

    def context(self) -> ssl.SSLContext:
        if self.ca_pem is None:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        return ssl.create_default_context(cadata=self.ca_pem)


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

    async def sampler_for(self, spec: PoolSpec) -> VhostSampler | StatsError:
        """The shared sampler for the pool's broker, vhost, user and CA; or why there is none (a
        Secret that cannot be read)."""
        credentials = await self._credentials_for(spec)
        if credentials is None:
            return self.credentials_error(spec)
        tls = await self._tls_for(spec)
        if isinstance(tls, StatsError):
            return tls
        key = (spec.management_url, spec.amqp_url, spec.vhost, credentials.username, credentials.password,
               spec.timeout_seconds, tls)
        sampler = self._samplers.get(key)
        if sampler is None:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            context = tls.context() if tls else None
            client = ManagementClient(self._session, spec.management_url, credentials, spec.timeout_seconds, context)
            probe = ReadyProbe(spec.amqp_url, spec.vhost, credentials, context) if spec.amqp_url else None
            sampler = self._samplers[key] = VhostSampler(client, spec.vhost, self._count_request, probe)
        return sampler

    async def _tls_for(self, spec: PoolSpec) -> "BrokerTls | None | StatsError":
        """How to verify the pool's broker: None for the system's CAs (or plain URLs)."""
        if spec.insecure_skip_verify:
            return BrokerTls(ca_pem=None)
        if spec.ca_secret_name is None:
            return None
        values = await asyncio.to_thread(self.kube.read_secret_keys, spec.namespace, spec.ca_secret_name, (spec.ca_key,))
        if values is None:
            return StatsError("CASecretMissing", f"Secret {spec.namespace}/{spec.ca_secret_name} with key {spec.ca_key!r}"
                              " (broker.tls.caSecretRef) is missing or unreadable")
        tls = BrokerTls(ca_pem=values[spec.ca_key])
        try:
            tls.context()
        except (ssl.SSLError, ValueError) as error:
            return StatsError("CASecretInvalid", f"Secret {spec.namespace}/{spec.ca_secret_name} key {spec.ca_key!r}"
                              f" is not a PEM CA certificate: {error}")
        return tls

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
