"""The registry's listeners on the Docker bridges.

Debian's ``docker-registry`` listens on one address. It takes ``127.0.0.1``; this
process (``python -m mlops_sandbox.relay --sandbox NAME``) listens on the rest of the
sandbox's listen plan (listen.py: the bridge gateways, each for its own network) and
passes each connection through to it byte for byte, TLS included, so certificates and
credentials are the registry's own. With ``MLOPS_SANDBOX_BIND=0.0.0.0`` the registry
listens everywhere itself and this process has nothing to do.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import socket
import socketserver
import sys
import threading
from pathlib import Path

from . import listen
from .config import Config
from .process import Daemon, listen_addresses, sandbox_pids, stop_pid, wait_until

NAME = "registry-relay"
MARKER = "mlops_sandbox.relay"
CODE = ("relay.py", "listen.py", "containers.py")
log = logging.getLogger("mlops_sandbox.relay")


def daemon(config: Config) -> Daemon:
    return Daemon(NAME, config.state_dir, config.log_dir)


def registry_address(config: Config) -> str:
    """Where docker-registry itself listens: loopback, or everywhere when the user widened it so."""
    return listen.WILDCARD if listen.WILDCARD in listen.widened(config.bind) else listen.LOOPBACK


def relay_plan(config: Config) -> list[listen.Listen]:
    return [item for item in listen.sandbox_plan(config) if item.address not in (listen.LOOPBACK, listen.WILDCARD)]


def code_digest() -> str:
    sha = hashlib.sha256()
    for name in CODE:
        sha.update((Path(__file__).parent / name).read_bytes())
    return sha.hexdigest()[:16]


# --------------------------------------------------------------------------- the process


def _copy(src: socket.socket, dst: socket.socket) -> None:
    """One direction until its end of file, which is then passed on."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class Pipe(socketserver.BaseRequestHandler):
    upstream: tuple[str, int]

    def handle(self) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=10)
        except OSError as exc:
            log.warning("the registry at %s:%d does not answer: %s", *self.upstream, exc)
            return
        with upstream:
            upstream.settimeout(None)
            back = threading.Thread(target=_copy, args=(upstream, self.request), daemon=True)
            back.start()
            _copy(self.request, upstream)
            back.join()


class RelayServer(listen.PeerCheck, socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MARKER}", description=__doc__)
    parser.add_argument("--sandbox", required=True, help="the sandbox name (must match MLOPS_SANDBOX_NAME)")
    args = parser.parse_args(argv)
    config = Config()
    if args.sandbox != config.name:
        parser.error(f"--sandbox {args.sandbox} does not match MLOPS_SANDBOX_NAME={config.name}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    handler = type("RegistryPipe", (Pipe,), {"upstream": (listen.LOOPBACK, config.registry_port)})

    def make(sock: socket.socket) -> RelayServer:
        return listen.adopt(RelayServer(sock.getsockname(), handler, bind_and_activate=False), sock)

    listeners = listen.Listeners(NAME, config.registry_port, make, lambda: relay_plan(config))
    listeners.start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        listeners.close()
    return 0


# --------------------------------------------------------------------------- the component


class Relay:
    """Started and stopped by the registry component, after and before the registry."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.daemon = daemon(config)
        self.stamp = config.state_dir / f"{NAME}.code"

    def _wanted(self) -> set[tuple[str, int]]:
        return {(item.address, self.config.registry_port) for item in relay_plan(self.config)}

    def _ready(self, pid: int) -> bool:
        return self._wanted() <= listen_addresses(pid)

    def up(self) -> str:
        pid = self.daemon.pid()
        with contextlib.suppress(OSError):
            if pid and self.stamp.read_text().strip() == code_digest():
                return f"relay already up (pid {pid})"
        self.stop()
        pid = self.daemon.start([sys.executable, "-m", MARKER, "--sandbox", self.config.name])
        wait_until(lambda: self._ready(pid), 30, f"registry relay (pid {pid})", self.daemon.log_tail)
        self.stamp.write_text(code_digest() + "\n")
        addresses = sorted(address for address, _port in listen_addresses(pid))
        return f"relay up on {', '.join(addresses) or 'no bridge'} (pid {pid})"

    def stop(self) -> bool:
        stopped = self.daemon.stop()
        # One of this sandbox started from another checkout (another pid file).
        for pid in sandbox_pids(MARKER, self.config.name):
            stop_pid(pid)
            stopped = True
        return stopped


if __name__ == "__main__":
    sys.exit(main())
