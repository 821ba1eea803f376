"""The simulated plant served over OPC UA (asyncua), with fault injection by method call.

Address space (namespace ``urn:tocsin:simulator``, index 2 on a fresh server)::

    Objects/Plant/<asset>/<tag>    Double variables, node id ``ns=2;s=<asset>.<tag>``
    Objects/Plant.InjectFault(asset, fault) -> Boolean
    Objects/Plant.ClearFault(asset, fault)  -> Boolean   (fault "" clears all)

Values carry the simulation's source timestamp (wall clock, UTC).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from asyncua import Client, Server, ua
from asyncua.common.methods import uamethod

from tocsin.connectors.simulator.plant import FAULTS, Plant

NAMESPACE = "urn:tocsin:simulator"
log = logging.getLogger(__name__)


def endpoint_url(port: int, host: str = "127.0.0.1") -> str:
    return f"opc.tcp://{host}:{port}/tocsin/"


def node_id(asset: str, tag: str, ns: int = 2) -> str:
    return f"ns={ns};s={asset}.{tag}"


class PlantOpcUaServer:
    def __init__(self, plant: Plant | None = None, port: int = 4840, rate_hz: float = 10.0,
                 host: str = "127.0.0.1", *, cert_dir: Path | None = None,
                 users: dict[str, str] | None = None):
        """`cert_dir`: serve Sign and SignAndEncrypt (Basic256Sha256) with a self-signed
        certificate made there (no None mode); `users`: require username/password."""
        self.plant = plant or Plant()
        self.port = port
        self.host = host
        self.rate_hz = rate_hz
        self.cert_dir = cert_dir
        self.users = users
        self.server = Server(user_manager=_Users(users) if users else None)
        self._vars: dict[tuple[str, str], ua.NodeId] = {}
        self._task: asyncio.Task | None = None
        self._t0 = time.time()

    @property
    def endpoint(self) -> str:
        return endpoint_url(self.port, self.host)

    async def start(self) -> "PlantOpcUaServer":
        srv = self.server
        await srv.init()
        srv.set_endpoint(self.endpoint)
        srv.set_server_name("Tocsin simulated plant")
        if self.cert_dir is not None:
            key, cert = await make_certificate(self.cert_dir, "server", self.host)
            await srv.load_certificate(str(cert))
            await srv.load_private_key(str(key))
            srv.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_Sign,
                                     ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        else:
            srv.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        if self.users:
            srv.set_security_IDs(["Username"])
        idx = await srv.register_namespace(NAMESPACE)
        plant_obj = await srv.nodes.objects.add_object(ua.NodeId("Plant", idx), "Plant")
        for aid, asset in self.plant.assets.items():
            obj = await plant_obj.add_object(ua.NodeId(aid, idx), aid)
            for tag, value in zip(asset.names, asset.state.tolist()):
                var = await obj.add_variable(ua.NodeId(f"{aid}.{tag}", idx), tag,
                                             ua.Variant(value, ua.VariantType.Double))
                self._vars[(aid, tag)] = var.nodeid

        @uamethod
        def inject(parent, asset: str, fault: str) -> bool:
            self.plant.inject(asset, fault, time.time() - self._t0)
            log.info("fault %s injected on %s", fault, asset)
            return True

        @uamethod
        def clear(parent, asset: str, fault: str) -> bool:
            self.plant.clear(asset, fault or None, time.time() - self._t0)
            log.info("fault %s cleared on %s", fault or "(all)", asset)
            return True

        s = ua.VariantType.String
        await plant_obj.add_method(ua.NodeId("InjectFault", idx), "InjectFault", inject,
                                   [s, s], [ua.VariantType.Boolean])
        await plant_obj.add_method(ua.NodeId("ClearFault", idx), "ClearFault", clear,
                                   [s, s], [ua.VariantType.Boolean])
        await srv.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        # The plant steps on its own sample clock (t = k / rate, dt = 1 / rate, stamped
        # t0 + t), as the offline generator does, so the served signal is the signal the
        # models were trained on; a late loop catches up, it does not stretch dt.
        period = 1.0 / self.rate_hz
        k = 0
        while True:
            k += 1
            t = k * period
            await asyncio.sleep(max(0.0, self._t0 + t - time.time()))  # never stamp ahead
            values = self.plant.step(t, period)
            stamp = datetime.fromtimestamp(self._t0 + t, timezone.utc)
            for aid, tags in values.items():
                for tag, v in tags.items():
                    dv = ua.DataValue(ua.Variant(v, ua.VariantType.Double),
                                      SourceTimestamp=stamp, ServerTimestamp=stamp)
                    await self.server.write_attribute_value(self._vars[(aid, tag)], dv)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.server.stop()


class _Users:
    """asyncua user manager: username/password from a dict."""

    def __init__(self, users: dict[str, str]):
        self.users = users

    def get_user(self, iserver, username=None, password=None, certificate=None):
        from asyncua.server.user_managers import User, UserRole

        if username in self.users and self.users[username] == password:
            return User(role=UserRole.User)
        return None


async def make_certificate(directory: Path, name: str, host: str = "127.0.0.1"
                           ) -> tuple[Path, Path]:
    """A self-signed application certificate (DER) and key (PEM) for tests and the demo."""
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / f"{name}-key.pem", directory / f"{name}-cert.der"
    if not cert.exists():
        use = ([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
        await setup_self_signed_certificate(key, cert, f"urn:tocsin:{name}", host, use,
                                            {"commonName": f"tocsin-{name}"})
    return key, cert


async def call_fault(endpoint: str, asset: str, fault: str, *, clear: bool = False) -> bool:
    """Inject (or clear) a fault on a running simulator through its OPC UA method."""
    if not clear and fault not in FAULTS:
        raise KeyError(f"unknown fault {fault!r}; known: {sorted(FAULTS)}")
    async with Client(endpoint, timeout=5) as client:
        idx = await client.get_namespace_index(NAMESPACE)
        plant = client.get_node(ua.NodeId("Plant", idx))
        method = "ClearFault" if clear else "InjectFault"
        return bool(await plant.call_method(ua.NodeId(method, idx), asset, fault))
