"""Where the sandbox's servers listen, and who may talk to them.

moto, the SSM service and the registry answer anyone who reaches them, with no real
credentials. So they listen only where the machine and the sandbox's own containers
reach them:

- ``127.0.0.1``, for the host's clients;
- the gateway of Docker's default bridge (docker0), through which the host's engine
  pulls from the registry and containers on that bridge (molecule's) reach the sandbox;
- the gateway of each network labelled for the sandbox (its VPC network), through which
  its instances reach it.

A gateway listener serves only peers on the network behind it and the machine itself
(whose connections Docker's NAT rules may give any of its addresses): a container of
another network, or a neighbour routing to a bridge address through the machine's LAN
address, reaches the host's gateway addresses too, and is refused. ``MLOPS_SANDBOX_BIND``
adds addresses that serve anyone (``0.0.0.0``: every IPv4 address, the only listener then),
on purpose and at the user's risk.

Networks come and go while the servers run (the fleet makes the VPC network after moto
is up): ``Listeners`` keeps one socket per planned address, following Docker's network
events.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import containers
from .config import Config
from .process import SandboxError, listening_on

log = logging.getLogger("mlops_sandbox.listen")

LOOPBACK = "127.0.0.1"
WILDCARD = "0.0.0.0"  # noqa: S104 - only when MLOPS_SANDBOX_BIND asks for it


@dataclass(frozen=True)
class Listen:
    """One listening address; ``peers`` is the network its clients must come from (None: anyone)."""

    address: str
    peers: str | None


def widened(setting: str) -> list[str]:
    """The addresses ``MLOPS_SANDBOX_BIND`` adds (IPv4, separated by commas or spaces)."""
    found = []
    for word in setting.replace(",", " ").split():
        try:
            address = ipaddress.ip_address(word)
        except ValueError:
            address = None
        if address is None or address.version != 4:
            raise SandboxError(
                f"MLOPS_SANDBOX_BIND takes IPv4 addresses separated by commas (0.0.0.0 for every "
                f"address), got {word!r}; unset it to listen only on loopback and the Docker bridges"
            )
        if str(address) not in found:
            found.append(str(address))
    return found


def plan(bridges: list[containers.Bridge], extra: list[str]) -> list[Listen]:
    """Loopback, each bridge's gateway (for its own network) and the widened addresses (for anyone)."""
    if WILDCARD in extra:
        return [Listen(WILDCARD, None)]
    found = {LOOPBACK: "127.0.0.0/8"}
    for bridge in bridges:
        found.setdefault(bridge.gateway, bridge.subnet)
    for address in extra:
        found[address] = None
    return [Listen(address, peers) for address, peers in found.items()]


def sandbox_plan(config: Config) -> list[Listen]:
    """The plan for this sandbox now (loopback alone while no Docker engine answers)."""
    extra = widened(config.bind)
    bridges = []
    for find in (lambda: [containers.default_bridge()], lambda: containers.sandbox_bridges(config)):
        try:
            bridges += find()
        except SandboxError as exc:
            log.warning("a Docker bridge to listen on is missing (%s); looking again on the next network event", exc)
    return plan(bridges, extra)


def local_addresses(fib_trie: str) -> set[str]:
    """The machine's own IPv4 addresses, from the text of /proc/net/fib_trie (read each time:
    a laptop's LAN address changes under a running sandbox)."""
    found, last = set(), None
    for line in fib_trie.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "|--":
            last = words[1]
        elif last and words[:3] == ["/32", "host", "LOCAL"]:
            found.add(last)
    return found


def is_local(address: str) -> bool:
    try:
        with open("/proc/net/fib_trie", encoding="ascii") as fh:
            return address in local_addresses(fh.read())
    except OSError:
        return False


class PeerCheck:
    """A socketserver mixin: connections from outside ``peers`` (and not from the machine
    itself) are closed unanswered."""

    peers: ipaddress.IPv4Network | None = None

    def verify_request(self, request, client_address) -> bool:
        if self.peers is None:
            return True
        try:
            allowed = ipaddress.ip_address(client_address[0]) in self.peers or is_local(client_address[0])
        except ValueError:
            allowed = False
        if not allowed:
            log.info("refused %s: not on %s", client_address[0], self.peers)
        return allowed


def bind(address: str, port: int, backlog: int = 256) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def adopt(server: socketserver.TCPServer, sock: socket.socket) -> socketserver.TCPServer:
    """``server`` (made with ``bind_and_activate=False``) serving on the listening ``sock``."""
    server.socket.close()
    server.socket = sock
    server.server_address = sock.getsockname()
    return server


class Listeners:
    """One server per planned address on ``port``, all sharing one application.

    ``make(sock)`` builds a server (a ``PeerCheck`` socketserver) on a listening socket.
    ``start()`` binds the plan (loopback must bind, or it raises) and follows Docker's
    network events; ``sync()`` brings the servers in line with the plan now.
    """

    def __init__(self, name: str, port: int, make: Callable[[socket.socket], PeerCheck], planner) -> None:
        self.name = name
        self.port = port
        self.make = make
        self.planner: Callable[[], list[Listen]] = planner
        self.servers: dict[str, socketserver.BaseServer] = {}
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.closing = threading.Event()

    @property
    def addresses(self) -> list[str]:
        with self.lock:
            return sorted(self.servers)

    def sync(self) -> list[str]:
        """Open what the plan adds, close what it dropped; returns the addresses that failed to bind."""
        wanted = {item.address: item.peers for item in self.planner()}
        failed = []
        with self.lock:
            for address in [a for a in self.servers if a not in wanted]:
                self._close(address)
                log.info("%s: stopped listening on %s:%d", self.name, address, self.port)
            for address, peers in wanted.items():
                server = self.servers.get(address)
                if server is None:
                    try:
                        server = self.make(bind(address, self.port))
                    except OSError as exc:
                        log.warning("%s: cannot listen on %s:%d (%s); trying again", self.name, address, self.port, exc)
                        failed.append(address)
                        continue
                    self.servers[address] = server
                    threading.Thread(target=server.serve_forever, name=f"{self.name}@{address}", daemon=True).start()
                    log.info("%s: listening on %s:%d (peers: %s)", self.name, address, self.port, peers or "any")
                server.peers = ipaddress.ip_network(peers) if peers else None
        return failed

    def start(self) -> None:
        failed = self.sync()
        if LOOPBACK in failed or WILDCARD in failed:
            self.close()
            raise SandboxError(f"{self.name}: cannot listen on port {self.port}; see the log above")
        threading.Thread(target=self._events, name=f"{self.name}-events", daemon=True).start()
        threading.Thread(target=self._follow, args=(bool(failed),), name=f"{self.name}-sync", daemon=True).start()

    def _follow(self, retry: bool) -> None:
        """Sync on each network event; retry a failed bind after a short back-off."""
        delay = 0.2
        while not self.closing.is_set():
            if self.changed.wait(timeout=delay if retry else None):
                self.changed.clear()
                delay = 0.2
            elif retry:
                delay = min(delay * 2, 10.0)
            if self.closing.is_set():
                return
            try:
                retry = bool(self.sync())
            except Exception:  # a failed docker call: keep the current set, try again soon
                log.exception("%s: cannot compute the listen addresses", self.name)
                retry = True

    def _events(self) -> None:
        """Docker's network create/destroy events (any network: events carry no labels)."""
        argv = [
            "docker", "events", "--format", "{{.Action}} {{.Actor.Attributes.name}}",
            "--filter", "type=network", "--filter", "event=create", "--filter", "event=destroy",
        ]  # fmt: skip
        while not self.closing.is_set():
            try:
                with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:  # noqa: S603
                    # What changed while no stream was open.
                    self.changed.set()
                    for line in proc.stdout:
                        log.debug("%s: docker event %s", self.name, line.strip())
                        self.changed.set()
            except OSError as exc:
                log.warning("%s: cannot follow Docker's events (%s)", self.name, exc)
            # The engine went away (or restarted): look again in a moment.
            self.closing.wait(2.0)

    def _close(self, address: str) -> None:
        server = self.servers.pop(address)
        server.shutdown()
        server.server_close()

    def close(self) -> None:
        self.closing.set()
        self.changed.set()
        with self.lock:
            for address in list(self.servers):
                self._close(address)


def wait_listening(address: str, ports: list[int], timeout: float) -> None:
    """Until something listens on ``address`` at each of ``ports`` (other servers following a new network)."""
    deadline = time.monotonic() + timeout
    while True:
        missing = [port for port in ports if not (listening_on(address, port) or listening_on(WILDCARD, port))]
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise SandboxError(
                f"nothing listens on {address} port(s) {', '.join(map(str, missing))} after {timeout:.0f}s: "
                "the sandbox's servers did not follow the new network; see their logs"
            )
        time.sleep(0.05)
