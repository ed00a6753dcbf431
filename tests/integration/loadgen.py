"""A constant-rate HTTP load generator, for the zero-downtime benchmark and tests.

Open loop: a request is due every ``1 / rate`` seconds whatever the earlier ones are
doing, so a server that stalls sees the same offered load as one that answers, and a
request's latency is counted from when it was due (a late start because every worker
was busy counts against the server, not hidden: no "coordinated omission"). Each worker
thread keeps one HTTP/1.1 connection open and reuses it as a client's connection pool
does (urllib3's, say: an idle connection the server has closed meanwhile is replaced
before it is used, not sent on); a connection that fails is replaced, and the request
that failed on it counts as failed. Nothing is retried.

A request fails when it raises (connection refused or reset, timeout) or answers 5xx.
``marks`` records named moments (a switch starting, ending) so that figures can be cut
to a window. Standard library only.
"""

from __future__ import annotations

import http.client
import json
import queue
import select
import threading
import time
import urllib.parse
from dataclasses import dataclass, field


@dataclass
class Sample:
    due: float  # monotonic time the request was due
    latency: float  # seconds from due to the end of the answer (or the error)
    ok: bool
    status: int | None
    version: str | None  # the "version" field of a JSON answer, when there is one
    error: str | None


@dataclass
class Summary:
    requests: int
    failed: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    errors: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)

    def line(self) -> str:
        def ms(value):
            return "-" if value is None else f"{value:.0f} ms"

        errors = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items())) or "none"
        return (
            f"{self.requests} requests, {self.failed} failed ({errors}); "
            f"p50 {ms(self.p50_ms)}, p99 {ms(self.p99_ms)}, max {ms(self.max_ms)}"
        )


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(share * len(ordered) + 0.999999)))
    return ordered[rank - 1]


def summarize(samples: list[Sample]) -> Summary:
    latencies = [s.latency * 1000 for s in samples]
    errors: dict[str, int] = {}
    versions: dict[str, int] = {}
    for s in samples:
        if not s.ok:
            key = s.error or f"HTTP {s.status}"
            errors[key] = errors.get(key, 0) + 1
        if s.version:
            versions[s.version] = versions.get(s.version, 0) + 1
    return Summary(
        requests=len(samples),
        failed=sum(1 for s in samples if not s.ok),
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        max_ms=max(latencies) if latencies else None,
        errors=errors,
        versions=versions,
    )


def _dropped(conn: http.client.HTTPConnection) -> bool:
    """Whether the server closed this idle connection (readable at rest means EOF or junk)."""
    if conn.sock is None:
        return False
    readable, _w, _x = select.select([conn.sock], [], [], 0)
    return bool(readable)


class ConstantLoad:
    """``rate`` requests per second at ``url`` until ``stop()``; use as a context manager.

    ``workers`` bounds the requests in flight; ``timeout`` is each request's socket timeout;
    ``version_key``: the field of a JSON answer that names the version serving.
    """

    def __init__(
        self, url: str, rate: float = 50.0, workers: int = 32, timeout: float = 10.0, version_key: str = "version"
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.rate = rate
        self.timeout = timeout
        self.version_key = version_key
        self.samples: list[Sample] = []
        self.marks: dict[str, float] = {}
        self._lock = threading.Lock()
        self._due: queue.Queue = queue.Queue()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _worker in range(workers)]
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self.started = self.stopped = None

    def __enter__(self) -> ConstantLoad:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        self._ticker.start()

    def mark(self, name: str) -> float:
        now = time.monotonic()
        with self._lock:
            self.marks[name] = now
        return now

    def stop(self) -> list[Sample]:
        self._stopping.set()
        self._ticker.join()
        for _thread in self._threads:
            self._due.put(None)
        for thread in self._threads:
            thread.join(self.timeout + 5)
        self.stopped = time.monotonic()
        return self.samples

    def window(self, start: float | None = None, end: float | None = None) -> list[Sample]:
        """The samples due between two monotonic times (marks), either end open."""
        return [s for s in self.samples if (start is None or s.due >= start) and (end is None or s.due <= end)]

    def _tick(self) -> None:
        interval = 1.0 / self.rate
        due = time.monotonic()
        while not self._stopping.is_set():
            now = time.monotonic()
            if now < due:
                time.sleep(min(interval, due - now))
                continue
            self._due.put(due)
            due += interval

    def _work(self) -> None:
        conn = None
        while True:
            due = self._due.get()
            if due is None:
                break
            if conn is not None and _dropped(conn):
                conn.close()
                conn = None
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            status = version = error = None
            try:
                conn.request("GET", self.path, headers={"Connection": "keep-alive"})
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status
                try:
                    version = json.loads(body).get(self.version_key)
                except (ValueError, AttributeError):
                    version = None
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                error = type(exc).__name__
                conn.close()
                conn = None
            sample = Sample(
                due=due,
                latency=time.monotonic() - due,
                ok=error is None and status is not None and status < 500,
                status=status,
                version=version,
                error=error,
            )
            with self._lock:
                self.samples.append(sample)
        if conn is not None:
            conn.close()
