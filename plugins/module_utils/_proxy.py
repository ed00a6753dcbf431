# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The host's reverse proxy (HAProxy) as compose_deploy's blue/green strategy drives it.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.

The proxy is what the ``mlops.deploy.ec2_host`` role runs: HAProxy in a container on the
host network, reading ``<config_dir>/haproxy.cfg`` (the role's) and ``<config_dir>/conf.d``,
one file per endpoint, which this module writes. An endpoint's file is a frontend on the
endpoint's port and a backend with two servers, ``blue`` and ``green``, on 127.0.0.1 at
the colours' ports; the colour that is not live is ``disabled`` in the file. The file's
first line carries the endpoint's state as JSON (live colour, ports, health path), so
the file alone says which colour is live after a reboot.

A switch goes through the runtime API (``<run_dir>/admin.sock``) of the running process,
never a reload: ``set server <backend>/<new> state ready``, wait until HAProxy reports it
UP, ``set server <backend>/<old> state drain``, wait until no request is in flight on the
old one (``scur`` and ``qcur`` of ``show stat``), ``state maint``. A new endpoint (or a
changed port) needs the new frontend, hence a reload through the master socket
(``<run_dir>/master.sock``).

Pure functions first (rendering, parsing ``show stat``), then the two socket clients.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import re
import socket
import time

COLOURS = ("blue", "green")
STATE_MARK = "# mlops.deploy state: "
DEFAULT_CONFIG_DIR = "/etc/mlops-proxy"
DEFAULT_RUN_DIR = "/run/mlops-proxy"
# Colour ports by default: the endpoint's port plus these (8080 -> 18080 and 28080), so
# that endpoints on neighbouring ports never share a colour port.
COLOUR_PORT_OFFSETS = (10000, 20000)


class ProxyError(Exception):
    """The proxy could not do what was asked; ``msg`` says what and what to do. ``absent``:
    nothing answers on its socket (not started yet, or stopped), as opposed to a refusal."""

    def __init__(self, msg, absent=False):
        super().__init__(msg)
        self.msg = msg
        self.absent = absent


def other(colour):
    return COLOURS[1] if colour == COLOURS[0] else COLOURS[0]


def names(project):
    """HAProxy's names for an endpoint: its frontend and its backend."""
    return {"frontend": "ep_%s" % project, "backend": "be_%s" % project}


def default_colour_ports(port):
    """``{"blue": port + 10000, "green": port + 20000}``, or None when they do not fit."""
    ports = {COLOURS[i]: port + COLOUR_PORT_OFFSETS[i] for i in range(len(COLOURS))}
    if max(ports.values()) > 65535:
        return None
    return ports


def endpoint_file(config_dir, project):
    return "%s/conf.d/%s.cfg" % (config_dir.rstrip("/"), project)


# --------------------------------------------------------------------------- the endpoint's file


def render_endpoint(state):
    """The endpoint's conf.d file for ``state``.

    ``state``: ``{"project", "port", "colours": {"blue": port, "green": port}, "live":
    colour or None, "health_path", "releases": {colour: {...}}}``. With no live colour
    (nothing switched to yet) both servers are disabled and the frontend answers 503.
    """
    project = state["project"]
    n = names(project)
    live = state.get("live")
    lines = [
        STATE_MARK + json.dumps(state, sort_keys=True, separators=(",", ":")),
        "# Endpoint %s, written by mlops.deploy.compose_deploy (strategy blue_green): live colour %s."
        % (project, live or "none yet"),
        "# The switch is made on the running proxy through its runtime API; this file is what it",
        "# reads when it starts (a reboot) or reloads.",
        "frontend %s" % n["frontend"],
        "    bind :%d" % state["port"],
        "    default_backend %s" % n["backend"],
        "",
        "backend %s" % n["backend"],
        "    option httpchk GET %s" % state["health_path"],
        "    http-check expect status 200",
        "    default-server inter 1s fastinter 500ms fall 2 rise 1",
        "    retries 2",
        "    retry-on conn-failure",
    ]
    for colour in COLOURS:
        lines.append(
            "    server %s 127.0.0.1:%d check%s"
            % (colour, state["colours"][colour], "" if colour == live else " disabled")
        )
    return "\n".join(lines) + "\n"


def read_endpoint(text):
    """The state ``render_endpoint`` wrote (its first line), or None for any other text."""
    first = (text or "").split("\n", 1)[0]
    if not first.startswith(STATE_MARK):
        return None
    try:
        state = json.loads(first[len(STATE_MARK) :])
    except ValueError:
        return None
    return state if isinstance(state, dict) and state.get("project") else None


_HEALTH_PATH = re.compile(r"/[!-~]*")


def check_health_path(path):
    """A path HAProxy's ``option httpchk`` can send (no spaces, printable ASCII)."""
    if not path or not _HEALTH_PATH.fullmatch(path):
        raise ProxyError(
            "health_path must be an absolute URL path without spaces (for example /health), not %r" % (path,)
        )
    return path


# --------------------------------------------------------------------------- runtime API answers


def parse_stat(text):
    """``show stat`` (CSV, a ``# pxname,svname,...`` header) as a list of dicts."""
    text = text or ""
    if not text.startswith("# "):
        raise ProxyError("the proxy's runtime API did not answer show stat with its CSV: %r" % text[:200])
    rows = csv.DictReader(io.StringIO(text[2:]))
    return [row for row in rows if row.get("pxname")]


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def servers_of(rows, backend):
    """``{server: {"status", "up", "in_flight", "check"}}`` of one backend from ``parse_stat`` rows.

    ``up`` is HAProxy's own verdict: ``UP`` (also ``UP 1/2``, up with a check failed since) and
    ``DRAIN`` count, ``DOWN`` (also ``DOWN 1/2``, going up), ``MAINT`` and ``NOLB`` do not.
    ``in_flight`` is the requests on it now plus those queued for it (``scur`` + ``qcur``).
    """
    found = {}
    for row in rows:
        if row.get("pxname") != backend or row.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        status = row.get("status") or ""
        found[row["svname"]] = {
            "status": status,
            "up": status.split(" ")[0] in ("UP", "DRAIN"),
            "in_flight": _int(row.get("scur")) + _int(row.get("qcur")),
            "check": row.get("check_desc") or row.get("check_status") or "",
        }
    return found


def proxies_of(rows):
    """Names of the frontends and backends the running proxy has."""
    return {row["pxname"] for row in rows if row.get("svname") in ("FRONTEND", "BACKEND")}


# --------------------------------------------------------------------------- sockets


def _unix_call(path, line, timeout, what):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(line.encode("utf-8") + b"\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
            raise ProxyError(
                "the proxy's %s %s does not answer (%s): is the proxy running? The mlops.deploy.ec2_host role "
                "installs it (ec2_host_proxy); `mlops-proxy ensure` starts it" % (what, path, exc.strerror),
                absent=True,
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise ProxyError(
                "no permission on the proxy's %s %s: run the deploy as root (become)" % (what, path)
            ) from None
        raise ProxyError("talking to the proxy's %s %s failed: %s" % (what, path, exc)) from None
    finally:
        sock.close()
    return b"".join(chunks).decode("utf-8", "replace")


class RuntimeApi:
    """HAProxy's runtime API on its admin socket: one command per connection."""

    def __init__(self, path, timeout=10.0, clock=time.monotonic, sleep=time.sleep):
        self.path = path
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep
        self.commands = []

    def call(self, line):
        return _unix_call(self.path, line, self.timeout, "runtime API socket")

    def stat(self):
        return parse_stat(self.call("show stat"))

    def servers(self, backend):
        return servers_of(self.stat(), backend)

    def has(self, name):
        return name in proxies_of(self.stat())

    def set_state(self, backend, server, state):
        """``set server <backend>/<server> state ready|drain|maint``; a ProxyError with HAProxy's words."""
        line = "set server %s/%s state %s" % (backend, server, state)
        answer = self.call(line).strip()
        self.commands.append(line)
        if answer:
            raise ProxyError("the proxy refused `%s`: %s" % (line, answer))

    def wait_up(self, backend, server, timeout):
        """Until HAProxy has ``server`` fully ``UP``; ``(ok, status)``.

        A server out of maintenance is ``UP 1/2`` at once (its health at the least that is
        up), before any check; plain ``UP`` comes with its first passing check, so this
        waits for HAProxy's own health check of it, not only for the state change.
        """
        start = self.clock()
        while True:
            found = self.servers(backend).get(server)
            if found and found["status"] == "UP":
                return True, found["status"]
            if self.clock() - start >= timeout:
                return False, (found or {}).get("status", "missing") + (
                    " (%s)" % found["check"] if found and found["check"] else ""
                )
            self.sleep(0.1)

    def wait_drained(self, backend, server, timeout):
        """Until no request is in flight on ``server``; ``(drained, in_flight, waited_seconds)``."""
        start = self.clock()
        while True:
            found = self.servers(backend).get(server) or {"in_flight": 0}
            waited = round(self.clock() - start, 2)
            if found["in_flight"] == 0:
                return True, 0, waited
            if waited >= timeout:
                return False, found["in_flight"], waited
            self.sleep(0.1)


class MasterApi:
    """HAProxy's master CLI (master-worker mode): reloads."""

    def __init__(self, path, timeout=10.0):
        self.path = path
        self.timeout = timeout

    def reload(self):
        """Ask for a graceful reload (the master re-reads the files and starts a new worker,
        which takes over the listening sockets; the old one finishes its requests)."""
        return _unix_call(self.path, "reload", self.timeout, "master socket")


def port_in_use(port, address="0.0.0.0"):
    """Whether something listens on ``address:port`` (a bind that fails with EADDRINUSE)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
    try:
        sock.bind((address, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return True
        raise
    finally:
        sock.close()
    return False
