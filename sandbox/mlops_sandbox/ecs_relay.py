"""The ECS agent's endpoint inside a sandbox task: 169.254.170.2:80, as on ECS.

Runs as the only process of a task's network container (the "pause" container whose
network namespace the task's containers join, as Fargate's awsvpc does): it adds
169.254.170.2 to ``lo`` (the container has NET_ADMIN, the task's containers do not) and
relays every GET -- ``/v2/credentials/<id>`` (the task role's credentials, what
``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` points at) and ``/v4/<id>[/task]`` (the task
metadata endpoint) -- to the sandbox's ECS agent in the moto process, whose URL is the
first argument. Standard library only: it runs with the base image's python3.

    python3 ecs_relay.py http://<gateway>:<moto port>/_ecs-agent
"""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ADDRESS = "169.254.170.2"


def main(argv: list[str]) -> int:
    upstream = argv[0].rstrip("/")
    added = subprocess.run(["ip", "addr", "add", f"{ADDRESS}/32", "dev", "lo"], capture_output=True, text=True)
    if added.returncode != 0 and "exists" not in added.stderr:
        print(f"cannot add {ADDRESS} to lo: {added.stderr.strip()}", flush=True)
        return 1

    class Relay(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            return

        def do_GET(self):  # noqa: N802
            try:
                with urllib.request.urlopen(upstream + self.path, timeout=10) as resp:  # noqa: S310
                    status, body, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "application/json")
            except urllib.error.HTTPError as exc:
                status, body, ctype = exc.code, exc.read(), "application/json"
            except OSError as exc:
                status, body, ctype = 502, f'{{"message": "ECS agent unreachable: {exc}"}}'.encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((ADDRESS, 80), Relay)
    server.daemon_threads = True
    # PID 1 of its container: SIGTERM has no default action here, so say what it does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
