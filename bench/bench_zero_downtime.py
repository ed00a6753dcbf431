"""Requests failed during a release of a new image at constant load: recreate vs blue/green.

One sandbox instance (a ``full`` one: its own Docker engine and the ec2_host role's
reverse proxy), two endpoints on it deployed with ``mlops.deploy.compose_deploy``, each
released the same way in the same run, one after the other:

- ``recreate``: ``docker compose up`` replaces the container on the endpoint's port (what
  the module did before blue/green, and still does with ``strategy: recreate``);
- ``blue_green``: the new version starts beside the old one on its own port, must be
  healthy, the proxy on the endpoint's port switches to it, the old one drains and stops.

For each: v1 is deployed (not measured), a load generator sends BENCH_RATE requests per
second (default 50) at the endpoint from the machine, over the sandbox network, with
keep-alive connections (``tests/integration/loadgen.py``: open loop, nothing retried, a
5xx or a connection error is a failed request); after two seconds of load the release of
v2 starts -- a new image, pulled from the sandbox's ECR, whose model takes BENCH_LOAD_SECONDS
(default 6) to load, during which it answers 503 --, and the load goes on three seconds past
its end. Printed per strategy: requests and failed requests over the whole run, p99 (and
max) latency during the switch (from a second before the last answer of v1 to a second after
the first answer of v2) and during the whole release, and the release's duration (the
compose_deploy task's own time). Then the ratios of blue/green to recreate.

The deploys run as ansible-playbook plays over the ``community.docker.docker`` connection
into the instance (its Python, its engine; ecr_login through its metadata service), so the
load generator is the only thing that runs outside it. Needs the sandbox up
(``make bench`` brings it up); the instance is removed at the end.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3

from mlops_sandbox import envfile
from mlops_sandbox.client import Sandbox

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.conftest import Playbook  # noqa: E402
from tests.integration.deploy_support import (  # noqa: E402
    InstancePlays,
    RegistryClient,
    cleanup_images,
    ecr_credentials,
    ensure_repository,
)
from tests.integration.loadgen import ConstantLoad, percentile, summarize  # noqa: E402

RATE = float(os.environ.get("BENCH_RATE", "50"))
LOAD_SECONDS = float(os.environ.get("BENCH_LOAD_SECONDS", "6"))
REPOSITORY = f"mlops-bench/zero-downtime-{uuid.uuid4().hex[:8]}"
PORTS = {"recreate": 8091, "blue_green": 8092}
COMPOSE = """\
name: {project}
services:
  api:
    image: {image}
    restart: unless-stopped
    ports: ["{port}:8080"]
    environment:
      LOAD_SECONDS: "{load_seconds}"
    healthcheck:
      test: [CMD, curl, -fsS, -o, /dev/null, http://127.0.0.1:8080/health]
      interval: 1s
      timeout: 2s
      retries: 2
      start_period: 60s
"""


def env_of_sandbox() -> dict:
    values = envfile.read(ROOT / ".sandbox" / "env")
    os.environ.update(values)
    return values


def deploy(host: InstancePlays, args: dict) -> dict:
    done = host.deploy(args)
    if done["rc"] != 0 or done["result"].get("failed"):
        raise SystemExit(f"compose_deploy ({args['strategy']}) failed: {done['result'].get('msg')}")
    return done


def switch_window(samples) -> tuple[float, float] | None:
    """From a second before the last answer of v1 to a second after the first answer of v2."""
    old = [s.due for s in samples if s.ok and s.version == "v1"]
    new = [s.due for s in samples if s.ok and s.version == "v2"]
    if not old or not new:
        return None
    return min(old[-1], new[0]) - 1.0, max(old[-1], new[0]) + 1.0


def measure(strategy: str, container: str, ip: str, images: dict) -> dict:
    project = f"zd-{strategy.replace('_', '-')}"
    port = PORTS[strategy]
    fields = {"project": project, "port": port, "load_seconds": LOAD_SECONDS}
    host = InstancePlays(container, Playbook)
    path = f"/opt/bench/{project}.yml"
    args = {"src": path, "project": project, "strategy": strategy, "health_timeout": 120, "prune": False}
    host.put_file(path, COMPOSE.format(image=images["v1"], **fields))
    deploy(host, args)  # v1, not measured
    host.put_file(path, COMPOSE.format(image=images["v2"], **fields))
    with ConstantLoad(f"http://{ip}:{port}/predict", rate=RATE) as load:
        time.sleep(2)
        start = load.mark("release start")
        done = deploy(host, args)
        end = load.mark("release end")
        time.sleep(3)
    summary = summarize(load.samples)
    window = switch_window(load.samples)
    during_switch = [s.latency * 1000 for s in load.window(*window)] if window else []
    during_release = [s.latency * 1000 for s in load.window(start, end)]
    return {
        "strategy": strategy,
        "summary": summary,
        "p99_switch": percentile(during_switch, 0.99),
        "max_switch": max(during_switch) if during_switch else None,
        "p99_release": percentile(during_release, 0.99),
        "release_seconds": done["seconds"],
        "wall_seconds": end - start,
        "switched": window is not None,
    }


def main() -> int:
    sandbox_env = env_of_sandbox()
    ecr = boto3.client("ecr")
    ensure_repository(ecr, REPOSITORY)
    with tempfile.TemporaryDirectory(prefix="bench-zd-") as tmp:
        pusher = RegistryClient(Path(tmp) / "docker", ecr_credentials(ecr))
        pusher.login()
        images = {}
        for variant in ("v1", "v2"):
            pusher.build(variant, REPOSITORY)
            images[variant] = pusher.uri(variant, REPOSITORY)
            pusher.push(images[variant], variant, REPOSITORY)
        sandbox = Sandbox(sandbox_env.get("MLOPS_SANDBOX_CONTROL_URL"))
        results = []
        try:
            with sandbox.fleet("full", 1, name=f"bench-zd-{uuid.uuid4().hex[:6]}") as found:
                container, ip = found[0]["container"], found[0]["private_ip"]
                for strategy in ("recreate", "blue_green"):
                    results.append(measure(strategy, container, ip, images))
        finally:
            cleanup_images()
    print(
        f"zero_downtime: one instance, {RATE:.0f} requests/s for the whole release of a new image whose model "
        f"loads in {LOAD_SECONDS:.0f} s (keep-alive connections, nothing retried)"
    )
    for r in results:
        s = r["summary"]
        errors = ", ".join(f"{k} {v}" for k, v in sorted(s.errors.items())) or "none"

        def ms(v):
            return "-" if v is None else f"{v:.0f} ms"

        print(
            f"zero_downtime[{r['strategy']}]: {s.failed} of {s.requests} requests failed ({errors}); "
            f"p99 during the switch {ms(r['p99_switch'])} (max {ms(r['max_switch'])}), p99 during the release "
            f"{ms(r['p99_release'])}; release {r['release_seconds']:.1f} s (compose_deploy task)"
        )
    rc, bg = results
    ratio = lambda a, b: f"{a / b:.2f}" if b else "n/a"  # noqa: E731
    print(
        f"zero_downtime: blue/green vs recreate: failed requests {bg['summary'].failed} vs {rc['summary'].failed}; "
        f"p99 during the switch x{ratio(bg['p99_switch'] or 0, rc['p99_switch'] or 0)}; "
        f"release duration x{ratio(bg['release_seconds'], rc['release_seconds'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
