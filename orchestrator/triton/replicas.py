"""The Triton replicas the control plane's version rollout must reach.

`TRITON_REPLICAS` lists them: fixed addresses (`host:port`, several local Tritons), or
`dns:<name>:<port>` entries resolved to every address the name has at each use, which is how
the pods behind a Kubernetes headless Service (`triton-replicas`) are found as the
HorizontalPodAutoscaler adds and removes them. Without entries, the one Triton at
TRITON_HOST:TRITON_GRPC_PORT.
"""

import asyncio
import socket
from collections.abc import Callable, Sequence

from orchestrator.triton.control import ModelControl

DNS_PREFIX = "dns:"


def resolve(entries: Sequence[str]) -> list[str]:
    """Every replica's `host:port`, in the order given; a DNS entry's addresses sorted."""
    addresses: list[str] = []
    for entry in entries:
        if not entry.startswith(DNS_PREFIX):
            addresses.append(entry)
            continue
        host, _, port = entry.removeprefix(DNS_PREFIX).rpartition(":")
        found = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        ips = sorted({info[4][0] for info in found})
        addresses += [f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}" for ip in ips]
    return list(dict.fromkeys(addresses))


def inference_urls(entries: Sequence[str], default: str) -> list[str]:
    """Where triage calls go: fixed replicas in turn; behind DNS, the Service (`default`)."""
    if entries and not any(e.startswith(DNS_PREFIX) for e in entries):
        return list(entries)
    return [default]


class Replicas:
    """A ModelControl per replica address, made on first sight and kept."""

    def __init__(self, entries: Sequence[str], make_control: Callable[[str], ModelControl]):
        self.entries, self.make_control = tuple(entries), make_control
        self._controls: dict[str, ModelControl] = {}

    async def controls(self) -> dict[str, ModelControl]:
        """The replicas now, by address (DNS entries are resolved again each time, in a
        thread; the controls are made on the event loop, as gRPC's asyncio clients must)."""
        now = {}
        for address in await asyncio.to_thread(resolve, self.entries):
            if address not in self._controls:
                self._controls[address] = self.make_control(address)
            now[address] = self._controls[address]
        return now

    async def close(self) -> None:
        for control in self._controls.values():
            await control.close()
