"""The instance metadata service as a systemd service (``mlops-imds.service``).

Adds 169.254.169.254 to ``lo`` (NET_ADMIN), serves IMDSv2 there (``imds.py``) and tells
systemd it is ready (``sd_notify``: READY=1 on ``$NOTIFY_SOCKET``), so the SSM agent,
ordered after it, finds it answering. Standard library only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import imds  # noqa: E402


def notify(state: str) -> None:
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET, if systemd gave one."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(path)
        sock.sendall(state.encode())


def add_address() -> None:
    result = subprocess.run(
        ["ip", "addr", "add", f"{imds.ADDRESS}/32", "dev", "lo"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 and "File exists" not in result.stderr:
        raise SystemExit(f"imds: cannot add {imds.ADDRESS} to lo (needs NET_ADMIN): {result.stderr.strip()}")


def main() -> int:
    add_address()
    server = imds.serve()
    print(f"imds: instance metadata service (IMDSv2) on {imds.ADDRESS}:80", flush=True)
    notify("READY=1")
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.shutdown()
    return 0


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    sys.exit(main())
