"""Background processes of the sandbox: start detached, find by port, stop for sure."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


class SandboxError(RuntimeError):
    """A sandbox operation failed; the message says what to do."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _hex_address(text: str) -> tuple[str, int]:
    """``0100007F:1F90`` (a /proc/net/tcp address) as ("127.0.0.1", 8080); tcp6 addresses too."""
    host, port = text.rsplit(":", 1)
    raw = bytes.fromhex(host)
    # The kernel prints each 32-bit word of the address in host (little-endian) order.
    packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(packed)), int(port, 16)


def listen_table() -> dict[str, tuple[str, int]]:
    """Every listening TCP socket of the machine's network namespace: inode -> (address, port)."""
    found: dict[str, tuple[str, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    if parts[3] == "0A":
                        found[parts[9]] = _hex_address(parts[1])
        except OSError:
            continue
    return found


def _socket_inodes(pid: int | str) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def listening_pids(port: int) -> set[int]:
    """PIDs of processes with a TCP socket listening on ``port`` (any address), from /proc."""
    inodes = {inode for inode, (_addr, at) in listen_table().items() if at == port}
    if not inodes:
        return set()
    return {int(entry) for entry in os.listdir("/proc") if entry.isdigit() and _socket_inodes(entry) & inodes}


def listen_addresses(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket ``pid`` listens on."""
    table = listen_table()
    return {table[inode] for inode in _socket_inodes(pid) if inode in table}


def listening_on(address: str, port: int) -> bool:
    """Whether some process listens on ``address``:``port`` itself (not a wildcard)."""
    return (address, port) in set(listen_table().values())


def sandbox_pids(module: str, sandbox: str) -> list[int]:
    """Processes (other than this one) running ``python -m <module> --sandbox <sandbox> ...``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                args = fh.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        if module not in args or "--sandbox" not in args:
            continue
        at = args.index("--sandbox")
        if at + 1 < len(args) and args[at + 1] == sandbox and pid_alive(int(entry)):
            found.append(int(entry))
    return found


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``pid``, then SIGKILL what is left after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(os.getpgid(pid), sig)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.05)
    if pid_alive(pid):
        raise SandboxError(f"process {pid} ({cmdline(pid)}) did not stop; kill it by hand")


class Daemon:
    """A detached process with a pid file and a log file under the sandbox state dir."""

    def __init__(self, name: str, state_dir: Path, log_dir: Path) -> None:
        self.name = name
        self.pidfile = state_dir / f"{name}.pid"
        self.logfile = log_dir / f"{name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def start(self, argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> int:
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as log:
            proc = subprocess.Popen(  # noqa: S603 - argv built by the sandbox itself
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
                close_fds=True,
            )
        self.pidfile.write_text(f"{proc.pid}\n")
        return proc.pid

    def stop(self) -> bool:
        pid = self.pid()
        self.pidfile.unlink(missing_ok=True)
        if pid is None:
            return False
        stop_pid(pid)
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - local URL
            return 200 <= resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def wait_until(check: Callable[[], bool], timeout: float, what: str, on_fail: Callable[[], str] | None = None) -> None:
    """Poll ``check`` with a short back-off until true; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        if check():
            return
        if time.monotonic() >= deadline:
            extra = f"\n{on_fail()}" if on_fail else ""
            raise SandboxError(f"{what} not ready after {timeout:.0f}s{extra}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def free_port(port: int, owned_marker: str) -> None:
    """Clear ``port`` of a leftover sandbox process; refuse to touch anyone else's."""
    for pid in listening_pids(port):
        cmd = cmdline(pid)
        if owned_marker in cmd:
            stop_pid(pid)
        else:
            raise SandboxError(
                f"port {port} is in use by pid {pid} ({cmd or 'unknown command'}), which is not "
                f"part of the sandbox; stop it or choose another port (MLOPS_SANDBOX_*_PORT)"
            )
