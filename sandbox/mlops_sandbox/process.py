"""Background processes of the sandbox: start detached, find by port, stop for sure."""

from __future__ import annotations

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


def listening_pids(port: int) -> set[int]:
    """PIDs of processes with a TCP socket listening on ``port`` (any address), from /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    local, state, inode = parts[1], parts[3], parts[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except OSError:
            continue
    if not inodes:
        return set()
    pids: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    pids.add(int(entry))
                    break
        except OSError:
            continue
    return pids


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
