"""PID 1 of a *light* sandbox instance (no systemd): what its boot brings up, then reaping.

1. The instance metadata service on 169.254.169.254:80 (the address added to ``lo``).
2. The SSM agent (restarted if it exits, as its systemd unit does on a full instance; a
   stopped -- SIGSTOP -- agent is an agent that "stops answering", which is how the
   sandbox takes an instance offline).

Full instances boot systemd instead, with the same two as units (``images/units/``).
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
stopping = False


def log(msg: str) -> None:
    print(f"init: {msg}", flush=True)


def start_agent() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "agent.py")], start_new_session=True)


def on_term(_signum, _frame) -> None:
    global stopping
    stopping = True


def main() -> int:
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    sys.path.insert(0, str(HERE))
    import imds
    import imds_service

    try:
        imds_service.add_address()
    except SystemExit as exc:
        log(str(exc))
    imds.serve()
    log("instance metadata service on 169.254.169.254:80")
    agent = start_agent()
    log(f"ssm agent started (pid {agent.pid})")
    while not stopping:
        # Reap whatever ended (our child and orphans re-parented to PID 1).
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pid = 0
        if pid == 0:
            time.sleep(0.2)
        if (agent.pid == pid or agent.poll() is not None) and not stopping:
            log("agent exited; restarting it")
            agent = start_agent()
    try:
        os.killpg(agent.pid, signal.SIGCONT)
        os.killpg(agent.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and agent.poll() is None:
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
