"""Finding the Triton replicas: fixed addresses as given, `dns:` entries resolved at each use."""

import asyncio
import socket

from orchestrator.triton.replicas import Replicas, inference_urls, resolve


def test_fixed_addresses_stay_and_a_dns_name_stands_for_each_of_its_addresses(monkeypatch):
    answers = {"triton-replicas": ["10.0.0.7", "10.0.0.5"]}

    def getaddrinfo(host, port, type=0):
        return [(socket.AF_INET, type, 6, "", (ip, port)) for ip in answers[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    entries = ["127.0.0.1:9001", "dns:triton-replicas:8001"]
    assert resolve(entries) == ["127.0.0.1:9001", "10.0.0.5:8001", "10.0.0.7:8001"]

    made = []
    replicas = Replicas(entries, lambda url: made.append(url) or _Control(url))
    assert list(asyncio.run(replicas.controls())) == [
        "127.0.0.1:9001",
        "10.0.0.5:8001",
        "10.0.0.7:8001",
    ]
    answers["triton-replicas"] = ["10.0.0.5", "10.0.0.9"]  # the autoscaler replaced a pod
    assert list(asyncio.run(replicas.controls())) == [
        "127.0.0.1:9001",
        "10.0.0.5:8001",
        "10.0.0.9:8001",
    ]
    assert made.count("10.0.0.5:8001") == 1  # a replica's control is kept, not remade
    asyncio.run(replicas.close())
    assert all(control.closed for control in replicas._controls.values())


def test_triage_goes_round_fixed_replicas_and_through_the_service_behind_dns():
    assert inference_urls([], "triton:8001") == ["triton:8001"]
    assert inference_urls(["a:1", "b:1"], "triton:8001") == ["a:1", "b:1"]
    assert inference_urls(["dns:triton-replicas:8001"], "triton:8001") == ["triton:8001"]


class _Control:
    def __init__(self, url):
        self.url, self.closed = url, False

    async def close(self):
        self.closed = True
