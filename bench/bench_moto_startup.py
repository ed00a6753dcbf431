"""What loading AWS's managed policies costs moto at start-up (MOTO_IAM_LOAD_MANAGED_POLICIES).

Starts the sandbox's moto entry point on a free port, without then with the setting, a
few times each, and prints the time until it answers and the first IAM call (where moto
loads its IAM backend, managed policies included) returns; the ratio against the plain
start. A throw-away state directory; nothing of the running sandbox is touched.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import boto3

RUNS = 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_once(managed: bool, state: str) -> float:
    port = free_port()
    env = {
        **os.environ,
        "MLOPS_SANDBOX_NAME": "bench-moto",
        "MLOPS_SANDBOX_STATE": state,
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true" if managed else "false",
    }
    start = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "mlops_sandbox.moto_main", "--sandbox", "bench-moto", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        iam = boto3.client(
            "iam", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
            aws_access_key_id="bench", aws_secret_access_key="bench",
        )  # fmt: skip
        deadline = start + 120
        while True:
            try:
                iam.list_roles()
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        if managed:
            iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")
        return time.monotonic() - start
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    with tempfile.TemporaryDirectory() as state:
        plain = [start_once(False, state) for _ in range(RUNS)]
        managed = [start_once(True, state) for _ in range(RUNS)]
    p, m = statistics.median(plain), statistics.median(managed)
    print(f"moto start to first IAM answer, median of {RUNS}: plain {p:.2f}s, managed policies {m:.2f}s")
    print(f"managed policies cost {m - p:+.2f}s ({m / p:.2f}x the plain start)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
