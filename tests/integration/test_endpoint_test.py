"""endpoint_test against real HTTP servers, through real ansible-playbook runs.

Two servers, both real: the demo's Titanic model API (demo/titanic/app/server.py, the
process its image runs) and a small standard-library server started here with a
known answer, a slow route, a failing route and a route that fails one request in
five. The assertions live in the playbooks under targets/endpoint_test.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .conftest import ROOT, assert_play_ok

TITANIC = ROOT / "demo" / "titanic"
SLOW_SECONDS = 0.3  # the /slow route's answer time, well above the tests' timeouts and p95 limits


class KnownAnswerServer:
    """Known answers on 127.0.0.1: POST /predict, GET /health, /text, /slow, /fail,
    /flaky/<name> (every fifth request of a name answers 503) and /count."""

    def __init__(self):
        self.counts: Counter = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status, body, content_type="application/json"):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - http.server's naming
                if self.path == "/count":
                    with server.lock:
                        self._send(200, {"total": sum(server.counts.values()), "paths": dict(server.counts)})
                    return
                with server.lock:
                    server.counts[self.path] += 1
                    number = server.counts[self.path]
                if self.path == "/health":
                    self._send(200, {"status": "ok"})
                elif self.path == "/text":
                    self._send(200, "model ready", "text/plain")
                elif self.path == "/slow":
                    time.sleep(SLOW_SECONDS)  # the route under test is slow on purpose
                    self._send(200, {"status": "ok"})
                elif self.path == "/fail":
                    self._send(500, {"error": "model not loaded"})
                elif self.path.startswith("/flaky/"):
                    self._send(503 if number % 5 == 0 else 200, {"n": number})
                else:
                    self._send(404, {"error": "no route %s" % self.path})

            def do_POST(self):  # noqa: N802
                with server.lock:
                    server.counts[self.path] += 1
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"null")
                if self.path == "/predict" and isinstance(payload, dict) and payload.get("Pclass") == 3:
                    self._send(200, {"prediction": 0, "probability": 0.0836, "model_version": "titanic-logreg-1"})
                else:
                    self._send(400, {"error": "unknown passenger"})

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 30.0):
    """Poll the API's /health until it answers 200 (or the process died, or time ran out)."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail("the Titanic API exited with %s: %s" % (process.returncode, process.stdout.read()))
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    pytest.fail("the Titanic API at %s did not answer /health within %ss" % (url, timeout))


@pytest.fixture(scope="module")
def servers():
    test_server = KnownAnswerServer()
    port = free_port()
    titanic = subprocess.Popen(
        [sys.executable, str(TITANIC / "app" / "server.py")],
        env={**os.environ, "PORT": str(port), "MODEL_PATH": str(TITANIC / "model" / "model.json")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = "http://127.0.0.1:%d" % port
    try:
        wait_healthy(url, titanic)
        yield {"titanic": url, "base": test_server.url, "closed": "http://127.0.0.1:%d" % free_port()}
    finally:
        titanic.terminate()
        titanic.wait(timeout=30)
        titanic.stdout.close()
        test_server.close()


def test_functional(playbook, servers):
    assert_play_ok(playbook.run("endpoint_test/functional.yml", servers))


def test_stress_and_bad_inputs(playbook, servers):
    assert_play_ok(playbook.run("endpoint_test/stress.yml", servers))
