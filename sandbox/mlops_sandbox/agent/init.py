"""PID 1 of a sandbox instance: what an EC2 instance's boot brings up, then reaping.

1. The instance metadata service on 169.254.169.254:80 (the address added to ``lo``).
2. ``full`` instances: the instance's own Docker engine, waited for until it answers.
3. The SSM agent (restarted if it exits, as systemd would; a stopped -- SIGSTOP -- agent
   is an agent that "stops answering", which is how the sandbox takes an instance offline).

It reaps every orphan (scripts run by the agent may leave background processes) and stops
everything on SIGTERM. Standard library only.
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
stopping = False


def log(msg: str) -> None:
    print(f"init: {msg}", flush=True)


def add_metadata_address() -> None:
    result = subprocess.run(
        ["ip", "addr", "add", "169.254.169.254/32", "dev", "lo"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0 and "File exists" not in result.stderr:
        log(f"cannot add 169.254.169.254 to lo (needs NET_ADMIN): {result.stderr.strip()}")


def start_dockerd() -> subprocess.Popen:
    logfile = open("/var/log/dockerd.log", "ab")  # noqa: SIM115 - kept open for the daemon's life
    proc = subprocess.Popen(["dockerd"], stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log(f"dockerd exited with {proc.returncode}; see /var/log/dockerd.log")
            return proc
        if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
            log("docker engine up")
            return proc
        time.sleep(0.3)
    log("docker engine did not answer within 120s; see /var/log/dockerd.log")
    return proc


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
    children: dict[str, subprocess.Popen] = {}
    if os.environ.get("MLOPS_INSTANCE_KIND") == "full":
        children["dockerd"] = start_dockerd()
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
                children[name] = start_agent() if name == "agent" else start_dockerd()
    for proc in children.values():
        try:
            os.killpg(proc.pid, signal.SIGCONT)
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(p.poll() is None for p in children.values()):
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
