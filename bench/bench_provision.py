"""How long playbooks/provision.yml takes against the running sandbox: check mode (nothing
made), the first run (everything made), the second run (changed=0), the teardown.

Runs on resources of its own (random names, no ECR repository), removes them at the end,
and prints each run's wall time and its ratio against the first run, measured in the same
run of this script. The sandbox must be up (``make sandbox-up``); nothing else is touched.

    python bench/bench_provision.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

from mlops_sandbox import envfile

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def main() -> int:
    run_id = uuid.uuid4().hex[:6]
    names = [
        "-e", f"provision_bucket=provision-bench-{run_id}",
        "-e", f"provision_log_group=/provision-bench/{run_id}",
        "-e", f"provision_instance_role=provision-bench-{run_id}-instance",
        "-e", f"provision_ci_role=provision-bench-{run_id}-ci",
        "-e", '{"provision_repositories": []}',
    ]  # fmt: skip
    env = {
        **os.environ,
        **envfile.read(ROOT / ".sandbox" / "env"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
        "ANSIBLE_CONFIG": str(ROOT / "tests" / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
    }
    inventory, playbook = ROOT / "inventories" / "local", ROOT / "playbooks" / "provision.yml"
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)]
    runs = {"check": ["--check"], "first": [], "second": [], "teardown": ["-e", "state=absent"]}
    times = {}
    for name, extra in runs.items():
        start = time.monotonic()
        result = subprocess.run([*argv, *names, *extra], env=env, capture_output=True, text=True, check=False)  # noqa: S603
        times[name] = time.monotonic() - start
        recap = re.search(r"localhost\s*: ok=(\d+)\s+changed=(\d+)", result.stdout)
        if result.returncode != 0 or not recap:
            print(f"{name}: failed (rc {result.returncode})\n{result.stdout[-2000:]}{result.stderr[-1000:]}")
            return 1
        print(f"{name:9s} {times[name]:6.1f} s  ok={recap[1]} changed={recap[2]}")
    for name in ("check", "second", "teardown"):
        print(f"{name} / first run: {times[name] / times['first']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
