"""Threads that submit tickets through the real API until stopped."""

import threading
import time

import httpx

TICKET = {
    "subject": "Transfer",
    "body": "My transfer to a friend has not arrived yet.",
    "channel": "web",
}


class Load:
    """Submit tickets until stopped (or `limit` are accepted), keeping every id that got a 2xx."""

    def __init__(
        self,
        base_url: str,
        headers: dict,
        threads: int = 4,
        pause_s: float = 0.0,
        limit: int | None = None,
    ):
        self.base_url, self.headers, self.pause_s, self.limit = base_url, headers, pause_s, limit
        self.accepted: list[int] = []
        self.errors = 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, n: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            i = 0
            while not self.stop.is_set():
                if self.limit is not None and len(self.accepted) >= self.limit:
                    return
                i += 1
                body = {**TICKET, "body": f"{TICKET['body']} (thread {n}, #{i})"}
                try:
                    response = client.post("/v1/tickets", json=body, headers=self.headers)
                except httpx.HTTPError:
                    self.errors += 1  # the server died mid-request: not accepted, not promised
                    continue
                if response.status_code in (200, 201, 202):
                    self.accepted.append(response.json()["id"])
                time.sleep(self.pause_s)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_):
        self.stop.set()
        for thread in self.threads:
            thread.join()
