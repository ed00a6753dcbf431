"""Redeploy of an unchanged release: compose_deploy vs the steps users run today.

Both run the way they run on an instance, as an ansible-playbook on localhost against
one Docker engine, in the same run, on the same compose project (two services pulled
from the sandbox's ECR stand-in, one with a healthcheck):

- users' steps: ``docker system prune -f``, ``docker compose pull``,
  ``docker compose up -d --remove-orphans``, three ``ansible.builtin.command`` tasks;
- ``mlops.deploy.compose_deploy``, one task.

Two compose files of the same release are measured, one after the other, each on its
own project: images referenced by tag (``repo:tag``: one registry lookup per image on
each side) and images pinned by digest (``repo@sha256:...``, as the release bundles pin
them: compose_deploy needs no registry call for an image it has).

The engine is shared with other people, so the users' ``docker system prune -f`` is
scoped with ``--filter label=io.mlops-deploy.bench=<run>``: the same command, with the
same walk over the engine's containers, networks, images and build cache, that can only
remove what this benchmark labelled. (A throw-away Docker-in-Docker engine would also
isolate it, but would put the two sides on different engines.)

For each file, after the first deploy and one warm-up run of each side, each side runs
ROUNDS times (BENCH_ROUNDS, default 5), alternating with a play with no task and a
play whose one task does nothing (``ansible.builtin.ping``); the wall time printed is
the median. The empty play's time, the start-up of ansible-playbook that both sides
pay, is also taken off each side to show what the steps themselves cost; the ping play
shows the least a one-task play costs, the floor compose_deploy's own task sits on.
"Restarted" counts containers of the project whose ID or start time changed across a
run. Needs the sandbox up (``make bench`` brings it up).

Prints one figure per line, e.g.:
    compose_redeploy[tag]: users' steps (prune + pull + up -d --remove-orphans): 3.10 s median of 5
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3
import docker

from mlops_sandbox import envfile

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.deploy_support import (  # noqa: E402
    REPOSITORY,
    RegistryClient,
    cleanup_images,
    cleanup_projects,
    ecr_credentials,
    ensure_repository,
    free_port,
)

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
PREFIX = "mlops-bench-cd-"
COMPOSE = """\
name: {project}
services:
  api:
    image: {api}
    ports: ["127.0.0.1:{port}:8080"]
    labels:
      io.mlops-deploy.bench: "{run}"
  worker:
    image: {worker}
    healthcheck:
      disable: true
    labels:
      io.mlops-deploy.bench: "{run}"
networks:
  default:
    labels:
      io.mlops-deploy.bench: "{run}"
"""

USERS_STEPS = """\
---
- name: The users' current redeploy steps
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Prune (scoped to this benchmark's label on a shared engine)
      ansible.builtin.command:
        argv: [docker, system, prune, --force, --filter, "label=io.mlops-deploy.bench={run}"]
    - name: Pull
      ansible.builtin.command:
        argv: [docker, compose, -f, "{compose}", pull]
    - name: Up
      ansible.builtin.command:
        argv: [docker, compose, -f, "{compose}", up, -d, --remove-orphans]
"""

# The fixed cost both sides pay (ansible-playbook starting, a play on localhost).
EMPTY_PLAY = """\
---
- name: Nothing
  hosts: localhost
  gather_facts: false
  tasks: []
"""

# The least any one-task play costs: ansible.builtin.ping (the module payload built and
# sent, a Python started, AnsibleModule loaded, nothing done). Shows how close to its
# floor compose_deploy gets; the users' steps are three such tasks plus the docker calls.
ONE_TASK_PLAY = """\
---
- name: One task that does nothing
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""

COMPOSE_DEPLOY = """\
---
- name: Redeploy with compose_deploy
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Deploy
      mlops.deploy.compose_deploy:
        src: "{compose}"
        health_timeout: 120
"""


def sandbox_env() -> dict[str, str]:
    path = ROOT / ".sandbox" / "env"
    if not path.exists():
        raise SystemExit(f"{path} is missing: the sandbox is not up (make sandbox-up)")
    return envfile.read(path)


def containers(api, project: str) -> dict[str, str]:
    """Container ID -> start time, for the project's containers."""
    found = {}
    for summary in api.containers(all=True, filters={"label": f"com.docker.compose.project={project}"}):
        info = api.inspect_container(summary["Id"])
        found[info["Id"]] = info["State"]["StartedAt"]
    return found


def restarted(before: dict[str, str], after: dict[str, str]) -> int:
    """Containers that are new, or the same ones started again."""
    return sum(1 for cid, started in after.items() if before.get(cid) != started)


def measure(playbook: str, env: dict[str, str], engine, project: str, plays: dict[str, Path]) -> dict:
    """Median wall time and restarts of each play, ROUNDS alternating rounds after a warm-up."""

    def timed(path: Path) -> tuple[float, int]:
        before = containers(engine, project)
        start = time.perf_counter()
        result = subprocess.run([playbook, str(path)], env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if result.returncode != 0:
            raise SystemExit(f"{path.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
        return elapsed, restarted(before, containers(engine, project))

    timed(plays["ours"])  # the first deploy of the release (not measured)
    timed(plays["users"])  # warm-up of each side
    timed(plays["ours"])
    times = {side: [] for side in plays}
    restarts = dict.fromkeys(plays, 0)
    for _round in range(ROUNDS):
        for side, path in plays.items():
            elapsed, count = timed(path)
            times[side].append(elapsed)
            restarts[side] += count
    return {side: (statistics.median(values), restarts[side]) for side, values in times.items()}


def report(name: str, figures: dict) -> None:
    (users_s, users_r), (ours_s, ours_r) = figures["users"], figures["ours"]
    empty_s, ping_s = figures["empty"][0], figures["ping"][0]
    tag = f"compose_redeploy[{name}]"
    print(f"{tag}: users' steps (prune + pull + up -d --remove-orphans): {users_s:.2f} s median of {ROUNDS}")
    print(f"{tag}: compose_deploy: {ours_s:.2f} s median of {ROUNDS}")
    print(f"{tag}: containers restarted by the users' steps: {users_r} over {ROUNDS} redeploys")
    print(f"{tag}: containers restarted by compose_deploy: {ours_r} over {ROUNDS} redeploys")
    print(f"{tag}: compose_deploy is {users_s / ours_s:.2f}x as fast as the users' steps (goal >= 3x)")
    # What the steps themselves cost, without the start-up every playbook pays.
    print(f"{tag}: ansible-playbook start-up alone (a play with no task): {empty_s:.2f} s median of {ROUNDS}")
    print(f"{tag}: users' steps minus start-up: {users_s - empty_s:.2f} s")
    print(f"{tag}: compose_deploy minus start-up: {ours_s - empty_s:.2f} s")
    print(f"{tag}: minus start-up, compose_deploy is {(users_s - empty_s) / (ours_s - empty_s):.2f}x as fast")
    # The floor of any one-task play, and the ratio a module doing nothing would reach.
    print(f"{tag}: one task doing nothing (ansible.builtin.ping) minus start-up: {ping_s - empty_s:.2f} s")
    print(
        f"{tag}: minus start-up, a one-task play doing nothing would be {(users_s - empty_s) / (ping_s - empty_s):.2f}x"
        " as fast (the most any module can reach)"
    )


def main() -> int:
    aws = sandbox_env()
    ecr = boto3.client(
        "ecr",
        endpoint_url=aws["AWS_ENDPOINT_URL"],
        region_name=aws["AWS_REGION"],
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
    )
    ensure_repository(ecr, REPOSITORY)
    run = uuid.uuid4().hex[:8]
    work = Path(tempfile.mkdtemp(prefix="bench-compose-"))
    client = RegistryClient(work / "docker", ecr_credentials(ecr))
    client.login()
    for variant in ("v1", "sidecar"):
        client.build(variant)
        client.push(client.uri(variant), variant)
    api_digest = client.retag("v1", f"bench-{run}")
    worker_digest = client.retag("sidecar", f"bench-worker-{run}")
    repository = client.uri("x").rsplit(":", 1)[0]
    references = {
        "tag": (client.uri(f"bench-{run}"), client.uri(f"bench-worker-{run}")),
        "digest": (f"{repository}@{api_digest}", f"{repository}@{worker_digest}"),
    }
    env = {
        **os.environ,
        **aws,
        "DOCKER_CONFIG": str(client.config_dir),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
        "ANSIBLE_CONFIG": str(ROOT / "tests" / "ansible.cfg"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    playbook = str(Path(sys.executable).parent / "ansible-playbook")
    engine = docker.from_env().api
    empty = work / "empty.yml"
    empty.write_text(EMPTY_PLAY)
    ping = work / "ping.yml"
    ping.write_text(ONE_TASK_PLAY)
    try:
        for name, (api_ref, worker_ref) in references.items():
            project = f"{PREFIX}{run}-{name}"
            compose = work / f"compose-{name}.yml"
            compose.write_text(
                COMPOSE.format(project=project, api=api_ref, worker=worker_ref, port=free_port(), run=run)
            )
            users = work / f"users_steps-{name}.yml"
            users.write_text(USERS_STEPS.format(run=run, compose=compose))
            ours = work / f"compose_deploy-{name}.yml"
            ours.write_text(COMPOSE_DEPLOY.format(compose=compose))
            report(
                name,
                measure(playbook, env, engine, project, {"users": users, "ours": ours, "empty": empty, "ping": ping}),
            )
    finally:
        cleanup_projects(PREFIX)
        cleanup_images()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
