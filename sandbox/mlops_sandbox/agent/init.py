"""PID 1 of a sandbox instance: what an EC2 instance's boot brings up, then reaping.

1. The instance metadata service on 169.254.169.254:80 (the address added to ``lo``).
2. The Docker engine when the image enables it at boot (``full`` instances: the ec2_host
   role installed it and linked its init script in /etc/rc2.d), started as the role does
   where no systemd runs -- ``start-stop-daemon`` with the package's pid file and log --
   and waited for until it answers. The package's own ``/etc/init.d/docker start`` cannot
   be used: it raises ``ulimit -n`` to 1048576, which a container without
   CAP_SYS_RESOURCE is refused. The engine is the host's service, started once as at
   boot, not supervised: ``/etc/init.d/docker status|stop`` and the role's restart
   handler find it by its pid file, and nothing here starts a second one behind them.
3. The local reverse proxy when the image enables it at boot (the ec2_host role's
   ``/etc/init.d/mlops-proxy``, linked in /etc/rc2.d), in the background: its container
   from the image archive the bake saved, the engine's storage being new at a first boot.
4. The SSM agent (restarted if it exits, as systemd would; a stopped -- SIGSTOP -- agent
   is an agent that "stops answering", which is how the sandbox takes an instance offline).

It reaps every orphan (scripts run by the agent may leave background processes; the
engine, once ``start-stop-daemon`` forked it away) and stops everything on SIGTERM.
Standard library only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AGENT_PID = Path("/run/mlops-agent.pid")
# Debian's docker.io: its init script's pid file (start-stop-daemon's) and log.
DOCKERD = "/usr/sbin/dockerd"
DOCKERD_SSD_PIDFILE = "/var/run/docker-ssd.pid"
START_DOCKERD = [
    "start-stop-daemon", "--start", "--background", "--output", "/var/log/docker.log", "--exec", DOCKERD,
    "--pidfile", DOCKERD_SSD_PIDFILE, "--make-pidfile", "--", "-p", "/var/run/docker.pid",
]  # fmt: skip
STOP_DOCKERD = [
    "start-stop-daemon", "--stop", "--pidfile", DOCKERD_SSD_PIDFILE, "--remove-pidfile", "--retry", "TERM/8/KILL/1",
    "--exec", DOCKERD,
]  # fmt: skip
stopping = False


def log(msg: str) -> None:
    print(f"init: {msg}", flush=True)


def add_metadata_address() -> None:
    result = subprocess.run(
        ["ip", "addr", "add", "169.254.169.254/32", "dev", "lo"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 and "File exists" not in result.stderr:
        log(f"cannot add 169.254.169.254 to lo (needs NET_ADMIN): {result.stderr.strip()}")


def docker_enabled_at_boot() -> bool:
    return any(Path("/etc/rc2.d").glob("S*docker"))


def start_dockerd() -> None:
    result = subprocess.run(START_DOCKERD, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        log(f"starting dockerd failed ({result.returncode}): {result.stderr.strip()}; see /var/log/docker.log")
        return
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
            log("docker engine up")
            return
        status = ["start-stop-daemon", "--status", "--pidfile", DOCKERD_SSD_PIDFILE, "--exec", DOCKERD]
        if subprocess.run(status, check=False).returncode != 0:
            log("dockerd exited; see /var/log/docker.log")
            return
        time.sleep(0.3)
    log("docker engine did not answer within 120s; see /var/log/docker.log")


def start_boot_services() -> None:
    """The init scripts of the host's own services enabled at boot (``mlops-proxy``), in the
    background; their output goes to /var/log/<name>.boot.log."""
    for link in sorted(Path("/etc/rc2.d").glob("S*mlops-proxy")):
        name = link.name.lstrip("S0123456789")
        with open(f"/var/log/{name}.boot.log", "ab") as out:
            subprocess.Popen([str(link), "start"], stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        log(f"{name} starting (log /var/log/{name}.boot.log)")


def stop_dockerd() -> None:
    """The engine, if it runs (whoever started it last: this boot, the role, the init script)."""
    subprocess.run(STOP_DOCKERD, capture_output=True, check=False)


def start_agent() -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(HERE / "agent.py")], start_new_session=True)
    AGENT_PID.write_text(f"{proc.pid}\n")
    return proc


def on_term(_signum, _frame) -> None:
    global stopping
    stopping = True


def main() -> int:
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    add_metadata_address()
    sys.path.insert(0, str(HERE))
    import imds

    imds.serve()
    log("instance metadata service on 169.254.169.254:80")
    engine = docker_enabled_at_boot()
    if engine:
        start_dockerd()
        start_boot_services()
    children: dict[str, subprocess.Popen] = {}
    children["agent"] = start_agent()
    log(f"ssm agent started (pid {children['agent'].pid})")
    while not stopping:
        # Reap whatever ended (our children and orphans re-parented to PID 1).
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if pid == 0:
            time.sleep(0.2)
        for name, proc in list(children.items()):
            if proc.pid == pid or proc.poll() is not None:
                if stopping:
                    break
                log(f"{name} exited; restarting it")
                children[name] = start_agent()
    for proc in children.values():
        try:
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if engine:
        stop_dockerd()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(p.poll() is None for p in children.values()):
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
