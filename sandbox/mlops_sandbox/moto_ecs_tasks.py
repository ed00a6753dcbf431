"""Real ECS tasks for the sandbox's moto server: RunTask starts containers.

moto's RunTask records a task and runs nothing: the task walks RUNNING -> ... -> STOPPED
one step per DescribeTasks, with one container, exit code 0 and no stopCode. This module
makes the sandbox's moto an ECS that runs each task on the machine's Docker engine, the
way Fargate does (awsvpc):

- **Provisioning**: a network container for the task (the base image; its address is the
  task's ENI address on the sandbox's network; every container of the task joins its
  network namespace, so they share ``localhost``), which also serves the ECS agent's
  endpoint at 169.254.170.2 (``ecs_relay.py``: task role credentials and task metadata,
  relayed to this process); the awslogs streams created (and the group with
  ``awslogs-create-group``).
- **Pending**: each image pulled from the sandbox's ECR with a token from
  ``GetAuthorizationToken``. An image the registry does not have stops the task with
  ``CannotPullContainerError`` (stopCode ``TaskFailedToStart``); a missing log group with
  ``ResourceInitializationError``.
- **Running**: one container per container definition, with its command, entry point,
  environment, working directory, user, memory and cpu, and the task's container
  overrides; ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (when the task has a role),
  ``ECS_CONTAINER_METADATA_URI_V4``, ``AWS_REGION``, ``AWS_EXECUTION_ENV`` as ECS sets
  them, and the sandbox's endpoints (``AWS_ENDPOINT_URL``...), so the task's own AWS calls
  are made as its task role against the sandbox. stdout and stderr go to CloudWatch Logs
  (moto) as the awslogs driver sends them: one stream ``<prefix>/<container>/<task-id>``
  (the container's Docker id without a prefix), one event per line, stamped with the time
  Docker read it. Unlike the awslogs driver (which publishes every 5 s), lines are sent
  within about 0.2 s.
- **Stopping**: when an essential container exits (stopCode ``EssentialContainerExited``,
  "Essential container in task exited"), or on StopTask (``UserInitiated``, the reason
  given): every container still running gets SIGTERM, then SIGKILL after its
  ``stopTimeout`` (default 30 s). Each container's ``exitCode`` (137 when killed),
  ``reason`` (``OutOfMemoryError`` when the kernel killed it); ``stoppingAt``,
  ``executionStoppedAt``, ``stoppedAt``. The task is STOPPED only once its log lines are
  in CloudWatch, then its containers are removed.

DescribeTasks shows the real progression PROVISIONING -> PENDING -> RUNNING ->
DEACTIVATING -> STOPPING -> DEPROVISIONING -> STOPPED, with ``createdAt``,
``pullStartedAt``/``pullStoppedAt``, ``startedAt``, ``connectivity``.

Identities: the agent's calls for a task (GetAuthorizationToken, CreateLogStream,
PutLogEvents) are made with the task's execution role (AssumeRole of
``executionRoleArn``), as on Fargate; without one, with the sandbox's own key. The
containers' calls carry the task role's credentials (AssumeRole of ``taskRoleArn``, or the
``taskRoleArn`` of the overrides).

Every container carries the sandbox's label (``down`` removes them) and
``io.mlops-deploy.ecs-task=<task id>``; the leftovers of an earlier moto process (whose
tasks are gone with its state) are removed when this one starts.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import inspect
import ipaddress
import json
import logging
import queue
import random
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from . import containers
from .config import Config
from .process import SandboxError

log = logging.getLogger("mlops_sandbox.ecs_tasks")

TASK_LABEL = "io.mlops-deploy.ecs-task"
CONTAINER_LABEL = "io.mlops-deploy.ecs-container"
AGENT_PATH = "/_ecs-agent"
RELAY = Path(__file__).resolve().parent / "ecs_relay.py"
DEFAULT_STOP_TIMEOUT = 30  # Fargate's default (at most 120)
MAX_STOP_TIMEOUT = 120
LOG_FLUSH_SECONDS = 0.15
MAX_EVENT_BYTES = 256 * 1024 - 26
# The sandbox's own calls (not a client's): issue 12's call log leaves this key out.
INTERNAL_KEY = "SANDBOXINTERNAL00000"


class StartFailure(Exception):
    """The task cannot start; ``str()`` is its stoppedReason, ``container`` the culprit."""

    def __init__(self, reason: str, container: str | None = None, stop_code: str = "TaskFailedToStart") -> None:
        super().__init__(reason)
        self.container = container
        self.stop_code = stop_code


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# --------------------------------------------------------------------------- plain rules


def awslogs_options(definition: dict) -> dict | None:
    """The awslogs options of a container definition, or None for another driver / none."""
    config = definition.get("logConfiguration") or {}
    if config.get("logDriver") != "awslogs":
        return None
    return dict(config.get("options") or {})


def stream_name(options: dict, container: str, task_id: str, docker_id: str) -> str:
    """The awslogs stream: ``<prefix>/<container>/<task id>``, or the Docker id without a prefix."""
    prefix = options.get("awslogs-stream-prefix")
    return f"{prefix}/{container}/{task_id}" if prefix else docker_id


def environment(definition: dict, override: dict | None, extra: dict[str, str]) -> dict[str, str]:
    """What the container sees: ECS's variables, then the definition's, then the override's."""
    values = dict(extra)
    for source in (definition.get("environment") or [], (override or {}).get("environment") or []):
        for item in source:
            if item.get("name"):
                values[item["name"]] = str(item.get("value", ""))
    return values


def container_settings(definition: dict, override: dict | None) -> dict:
    """command, cpu, memory, memoryReservation of a container with its override applied."""
    override = override or {}
    settings = {key: definition.get(key) for key in ("command", "cpu", "memory", "memoryReservation")}
    for key in settings:
        if override.get(key) is not None:
            settings[key] = override[key]
    return settings


def stop_timeout(definition: dict) -> int:
    value = definition.get("stopTimeout")
    if value is None:
        return DEFAULT_STOP_TIMEOUT
    return max(0, min(int(value), MAX_STOP_TIMEOUT))


def check_overrides(task_definition: dict, overrides: dict | None) -> None:
    """ECS's own check: every container override names a container of the definition."""
    names = {d.get("name") for d in task_definition.get("containerDefinitions") or []}
    for item in (overrides or {}).get("containerOverrides") or []:
        if item.get("name") not in names:
            raise ValueError(
                f"Override for container named {item.get('name')} is not a container in the TaskDefinition."
            )


def pull_failure(image: str, stderr: str) -> str:
    """The stoppedReason of an image that cannot be pulled, as Fargate words it."""
    detail = " ".join(stderr.strip().split()) or "unknown error"
    if "not found" in detail or "manifest unknown" in detail:
        detail = f"{image}: not found"
    return (
        "CannotPullContainerError: pull image manifest has been retried 1 time(s): "
        f"failed to resolve ref {image}: {detail}"
    )


def parse_log_line(raw: str) -> tuple[int, str]:
    """A ``docker logs --timestamps`` line: (epoch ms, message)."""
    stamp, _sep, message = raw.partition(" ")
    try:
        whole, _dot, fraction = stamp.rstrip("Z").partition(".")
        moment = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.UTC)
        ms = int(moment.timestamp() * 1000) + int((fraction + "000")[:3])
    except ValueError:
        return int(time.time() * 1000), raw
    return ms, message


def registry_of(image: str) -> str:
    """The registry part of an image reference ('' for Docker Hub's short names)."""
    first, sep, _rest = image.partition("/")
    return first if sep and ("." in first or ":" in first or first == "localhost") else ""


# --------------------------------------------------------------------------- the agent


class ContainerState:
    """A task's container as DescribeTasks shows it (moto's serializer reads these names)."""

    def __init__(self, task_arn: str, definition: dict) -> None:
        self.container_arn = f"{task_arn.replace(':task/', ':container/')}/{uuid.uuid4()}"
        self.task_arn = task_arn
        self.name = definition["name"]
        self.image = definition.get("image")
        self.image_digest = None
        self.image_id = None  # Docker's image id (what the metadata endpoint calls ImageID)
        self.runtime_id = None
        self.last_status = "PENDING"
        self.exit_code = None
        self.reason = None
        self.network_bindings: list = []
        self.network_interfaces: list = []
        self.health_status = "UNKNOWN"
        self.managed_agents: list = []
        self.cpu = str(definition.get("cpu") or 0)
        self.memory = str(definition["memory"]) if definition.get("memory") else None
        self.memory_reservation = str(definition["memoryReservation"]) if definition.get("memoryReservation") else None
        # Not part of the API shape: what the agent needs.
        self.essential = definition.get("essential", True) is not False
        self.metadata_id = str(uuid.uuid4())
        self.docker_name = ""
        self.started_at = None


class Agent:
    """The sandbox's ECS agent: runs tasks, serves credentials and metadata to them."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.runs: dict[str, TaskRun] = {}
        self.by_metadata_id: dict[str, tuple[TaskRun, ContainerState | None]] = {}
        self.credentials: dict[str, TaskRun] = {}
        self.lock = threading.Lock()
        self.docker_config = config.state_dir / "ecs-agent" / "docker"
        self._logged_in: str | None = None
        self._network: tuple[str, ipaddress.IPv4Network] | None = None

    # -- clients ---------------------------------------------------------------------------

    def client(self, service: str, credentials: dict | None = None, region: str | None = None):
        keys = (
            {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            }
            if credentials
            else {"aws_access_key_id": INTERNAL_KEY, "aws_secret_access_key": "sandbox"}
        )
        return boto3.session.Session().client(
            service,
            endpoint_url=self.config.moto_url,
            region_name=region or self.config.region,
            config=BotoConfig(retries={"max_attempts": 3, "mode": "standard"}),
            **keys,
        )

    def assume(self, role_arn: str, session: str, region: str | None = None) -> dict:
        """Credentials of ``role_arn`` (what ECS gets for the task from STS)."""
        answer = self.client("sts", region=region).assume_role(RoleArn=role_arn, RoleSessionName=session[:64])
        return answer["Credentials"]

    # -- network ---------------------------------------------------------------------------

    def network(self) -> tuple[str, ipaddress.IPv4Network]:
        """(gateway, subnet) of the sandbox's Docker network, which is its VPC."""
        if self._network is None:
            gateway = containers.ensure_network(self.config)
            self._network = (gateway, ipaddress.ip_network(self.config.vpc_cidr))
        return self._network

    def task_address(self) -> str:
        """An address for a task's ENI: the upper half of the VPC, where the instances
        (numbered from the start of the subnet by moto) do not go."""
        gateway, subnet = self.network()
        upper = list(subnet.subnets(prefixlen_diff=1))[-1]
        while True:
            candidate = upper.network_address + random.randrange(1, upper.num_addresses - 2)  # noqa: S311
            if str(candidate) != gateway:
                return str(candidate)

    # -- registry --------------------------------------------------------------------------

    def login(self, credentials: dict | None, region: str) -> None:
        """Docker credentials for the sandbox's ECR from GetAuthorizationToken (as the agent
        gets them with the execution role), in the agent's own Docker config."""
        data = self.client("ecr", credentials, region).get_authorization_token()["authorizationData"][0]
        user, _sep, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
        with self.lock:
            if self._logged_in == password:
                return
            self.docker_config.mkdir(parents=True, exist_ok=True)
            containers.docker(
                "--config",
                str(self.docker_config),
                "login",
                "--username",
                user,
                "--password-stdin",
                self.config.registry_address,
                stdin=password,
                timeout=60,
            )
            self._logged_in = password

    def is_sandbox_registry(self, image: str) -> bool:
        return registry_of(image) in (self.config.registry_address, self.config.ecr_host)

    # -- tasks -----------------------------------------------------------------------------

    def adopt(self, backend: Any, task: Any, task_definition: Any) -> None:
        """Take over a task moto just made: the agent moves its status from now on."""
        task._transitions = []  # noqa: SLF001 - moto's ManagedState: no steps per describe
        task.last_status = "PROVISIONING"
        task.desired_status = "RUNNING"
        now = _now()
        task.created_at = now
        task.version = 1
        task.cpu = task_definition.cpu
        task.memory = task_definition.memory
        task.availability_zone = f"{task.region_name}a"
        task.health_status = "UNKNOWN"
        task.stop_code = None
        task.enable_execute_command = False
        if (task.launch_type or "") == "FARGATE" or task.capacity_provider_name in ("FARGATE", "FARGATE_SPOT"):
            task.platform_version = task.platform_version or "1.4.0"
            task.platform_family = "Linux"
        definitions = [dict(d) for d in task_definition.container_definitions]
        task.containers = [ContainerState(task.task_arn, d) for d in definitions]
        run = TaskRun(self, backend, task, task_definition, definitions)
        with self.lock:
            self.runs[task.id] = run
            for state in task.containers:
                self.by_metadata_id[state.metadata_id] = (run, state)
            if run.role_arn:
                self.credentials[run.credentials_id] = run
        threading.Thread(target=run.run, name=f"ecs-task-{task.id[:8]}", daemon=True).start()

    def run_of(self, task: Any) -> TaskRun | None:
        with self.lock:
            return self.runs.get(task.id)

    def forget(self, run: TaskRun) -> None:
        with self.lock:
            for state in run.task.containers:
                self.by_metadata_id.pop(state.metadata_id, None)
            self.credentials.pop(run.credentials_id, None)

    def remove_leftovers(self) -> int:
        """Containers of tasks of an earlier moto process (its tasks died with its state)."""
        try:
            ids = containers.labelled("ps", self.config, [TASK_LABEL])
        except SandboxError:
            return 0
        containers.remove(ids)
        return len(ids)

    # -- the endpoint the relay forwards to (GET /_ecs-agent/...) ------------------------------

    def wsgi(self, environ: dict, start_response) -> list[bytes]:
        path = environ.get("PATH_INFO", "")[len(AGENT_PATH) :]
        status, body = self.answer(path)
        data = json.dumps(body, default=str).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def answer(self, path: str) -> tuple[str, dict]:
        parts = [p for p in path.split("/") if p]
        if len(parts) == 3 and parts[:2] == ["v2", "credentials"]:
            with self.lock:
                run = self.credentials.get(parts[2])
            if run is None:
                return "404 Not Found", {"message": "no such credentials (the task stopped?)"}
            try:
                return "200 OK", run.role_credentials()
            except (BotoCoreError, ClientError) as exc:
                return "500 Internal Server Error", {"message": f"cannot assume the task role: {exc}"}
        if len(parts) in (2, 3) and parts[0] == "v4" and (len(parts) == 2 or parts[2] in ("task", "stats")):
            with self.lock:
                found = self.by_metadata_id.get(parts[1])
            if found is None:
                return "404 Not Found", {"message": "no such container"}
            run, state = found
            if len(parts) == 3 and parts[2] == "task":
                return "200 OK", run.task_metadata()
            return "200 OK", run.container_metadata(state)
        return "404 Not Found", {"message": f"no agent route {path}"}


# --------------------------------------------------------------------------- one task


class LogShipper:
    """stdout/stderr lines of a task's containers to CloudWatch Logs, a few calls a second."""

    def __init__(self, client) -> None:
        self.client = client
        self.queue: queue.Queue[tuple[str, str, int, str] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="ecs-awslogs", daemon=True)
        self.thread.start()

    def put(self, group: str, stream: str, timestamp: int, message: str) -> None:
        if message:
            self.queue.put((group, stream, timestamp, message))

    def close(self, timeout: float = 30.0) -> None:
        self.queue.put(None)
        self.thread.join(timeout)

    def _run(self) -> None:
        done = False
        while not done:
            batch = [self.queue.get()]
            time.sleep(LOG_FLUSH_SECONDS)
            with contextlib.suppress(queue.Empty):
                while True:
                    batch.append(self.queue.get_nowait())
            done = None in batch
            by_stream: dict[tuple[str, str], list[dict]] = {}
            for item in batch:
                if item is None:
                    continue
                group, stream, timestamp, message = item
                text = message.encode()[:MAX_EVENT_BYTES].decode(errors="ignore")
                by_stream.setdefault((group, stream), []).append({"timestamp": timestamp, "message": text})
            for (group, stream), events in by_stream.items():
                events.sort(key=lambda e: e["timestamp"])
                for start in range(0, len(events), 5000):
                    try:
                        self.client.put_log_events(
                            logGroupName=group, logStreamName=stream, logEvents=events[start : start + 5000]
                        )
                    except (BotoCoreError, ClientError) as exc:
                        log.warning("PutLogEvents to %s %s failed: %s", group, stream, exc)


class TaskRun:
    def __init__(self, agent: Agent, backend: Any, task: Any, task_definition: Any, definitions: list[dict]) -> None:
        self.agent = agent
        self.backend = backend
        self.task = task
        self.task_definition = task_definition
        self.definitions = {d["name"]: d for d in definitions}
        overrides = task.overrides or {}
        self.container_overrides = {o.get("name"): o for o in overrides.get("containerOverrides") or []}
        self.role_arn = overrides.get("taskRoleArn") or getattr(task_definition, "task_role_arn", None)
        self.execution_role_arn = overrides.get("executionRoleArn") or getattr(
            task_definition, "execution_role_arn", None
        )
        self.credentials_id = str(uuid.uuid4())
        self.region = task.region_name
        self.cond = threading.Condition()
        self.stop_request: tuple[str, str] | None = None
        self.exited: dict[str, int | None] = {}
        self.network_container = ""
        self.docker_ids: dict[str, str] = {}
        self.followers: list[threading.Thread] = []
        self.shipper: LogShipper | None = None
        self.execution_credentials: dict | None = None
        self._role_credentials: dict | None = None
        self._role_lock = threading.Lock()
        self.address = ""

    # -- status --------------------------------------------------------------------------

    def status(self, value: str, **times: Any) -> None:
        self.task.last_status = value
        self.task.version = getattr(self.task, "version", 0) + 1
        for key, moment in times.items():
            setattr(self.task, key, moment)
        log.info("task %s: %s", self.task.id, value)

    def request_stop(self, code: str, reason: str) -> None:
        with self.cond:
            if self.stop_request is None and self.task.last_status != "STOPPED":
                self.stop_request = (code, reason)
                self.task.desired_status = "STOPPED"
            self.cond.notify_all()

    def _check_stop(self) -> None:
        with self.cond:
            if self.stop_request is not None:
                code, reason = self.stop_request
                raise StartFailure(reason, stop_code=code)

    # -- credentials and metadata ------------------------------------------------------------

    def role_credentials(self) -> dict:
        with self._role_lock:
            creds = self._role_credentials
            if creds is None or creds["Expiration"] - _now() < datetime.timedelta(minutes=10):
                creds = self._role_credentials = self.agent.assume(self.role_arn, self.task.id, self.region)
        return {
            "RoleArn": self.role_arn,
            "AccessKeyId": creds["AccessKeyId"],
            "SecretAccessKey": creds["SecretAccessKey"],
            "Token": creds["SessionToken"],
            "Expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def container_metadata(self, state: ContainerState) -> dict:
        definition = self.definitions[state.name]
        return {
            "DockerId": self.docker_ids.get(state.name, ""),
            "Name": state.name,
            "DockerName": state.docker_name,
            "Image": state.image,
            "ImageID": state.image_id,
            "DesiredStatus": self.task.desired_status,
            "KnownStatus": state.last_status,
            "Limits": {"CPU": int(state.cpu or 0), "Memory": int(state.memory or 0)},
            "StartedAt": state.started_at,
            "Type": "NORMAL",
            "ContainerARN": state.container_arn,
            "LogDriver": (definition.get("logConfiguration") or {}).get("logDriver"),
            "LogOptions": awslogs_options(definition) or {},
            "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": [self.address] if self.address else []}],
        }

    def task_metadata(self) -> dict:
        task = self.task
        return {
            "Cluster": task.cluster_arn,
            "TaskARN": task.task_arn,
            "Family": self.task_definition.family,
            "Revision": str(self.task_definition.revision),
            "DesiredStatus": task.desired_status,
            "KnownStatus": task.last_status,
            "Limits": {"CPU": task.cpu, "Memory": task.memory},
            "PullStartedAt": getattr(task, "pull_started_at", None),
            "PullStoppedAt": getattr(task, "pull_stopped_at", None),
            "AvailabilityZone": task.availability_zone,
            "LaunchType": task.launch_type or "FARGATE",
            "Containers": [self.container_metadata(s) for s in task.containers],
        }

    # -- the run -----------------------------------------------------------------------------

    def run(self) -> None:
        started = False
        try:
            self._provision()
            self._pull()
            self._start()
            started = True
            code, reason = self._wait()
            self._stop_containers(code, reason)
        except StartFailure as failure:
            self._failed_to_start(failure)
        except Exception as exc:  # the agent failing is the task failing, never a hung task
            log.exception("task %s: the sandbox's ECS agent failed", self.task.id)
            self._failed_to_start(StartFailure(f"ResourceInitializationError: the sandbox's ECS agent failed: {exc}"))
        finally:
            self._deprovision(started)

    def _names(self, suffix: str) -> str:
        return f"mlops-ecs-{self.agent.config.name}-{self.task.id}-{suffix}"

    def _labels(self, container: str) -> list[str]:
        return [
            f"--label={self.agent.config.label}",
            f"--label={TASK_LABEL}={self.task.id}",
            f"--label={CONTAINER_LABEL}={container}",
        ]

    def _provision(self) -> None:
        agent, config = self.agent, self.agent.config
        if self.execution_role_arn:
            try:
                self.execution_credentials = agent.assume(self.execution_role_arn, f"ecs-{self.task.id}", self.region)
            except (BotoCoreError, ClientError) as exc:
                raise StartFailure(
                    "ResourceInitializationError: unable to assume the task execution role "
                    f"{self.execution_role_arn}: {exc}"
                ) from None
        self.shipper = LogShipper(agent.client("logs", self.execution_credentials, self.region))
        self._create_log_streams()
        self._check_stop()
        gateway, _subnet = agent.network()
        name = self._names("network")
        args = [
            "run",
            "--detach",
            f"--name={name}",
            *self._labels("~network"),
            f"--network={config.network}",
            "--cap-add=NET_ADMIN",
            f"--add-host={config.ecr_host}:{gateway}",
            f"--volume={RELAY}:/ecs-agent/ecs_relay.py:ro",
            config.base_image,
            "python3",
            "/ecs-agent/ecs_relay.py",
            f"http://{gateway}:{config.moto_port}{AGENT_PATH}",
        ]
        for _attempt in range(5):
            address = agent.task_address()
            try:
                containers.docker(*args[:4], f"--ip={address}", *args[4:], timeout=120)
                break
            except SandboxError as exc:
                if "already in use" not in str(exc):
                    raise StartFailure(
                        f"ResourceInitializationError: cannot create the task's network: {exc}"
                    ) from None
        else:
            raise StartFailure("ResourceInitializationError: no free address for the task's network interface")
        self.network_container = name
        self.address = address
        deadline = time.monotonic() + 30
        while "ready" not in containers.docker("logs", name, check=False, timeout=20):
            if time.monotonic() > deadline:
                raise StartFailure("ResourceInitializationError: the task's network container did not start")
            time.sleep(0.1)
        for attachment in self.task.attachments:
            for detail in attachment.get("details", []):
                if detail.get("name") == "privateIPv4Address":
                    detail["value"] = address
        for state in self.task.containers:
            attachment = self.task.attachments[0]["id"] if self.task.attachments else None
            state.network_interfaces = [{"attachmentId": attachment, "privateIpv4Address": address}]
        self._check_stop()
        self.status("PENDING", pull_started_at=_now())

    def _create_log_streams(self) -> None:
        client = self.shipper.client
        for definition in self.definitions.values():
            options = awslogs_options(definition)
            if options is None:
                continue
            group = options.get("awslogs-group")
            if not group:
                raise StartFailure(
                    "ResourceInitializationError: failed to validate logger args: awslogs-group is required",
                    definition["name"],
                )
            if str(options.get("awslogs-create-group", "")).lower() == "true":
                with contextlib.suppress(client.exceptions.ResourceAlreadyExistsException):
                    client.create_log_group(logGroupName=group)
            prefix = options.get("awslogs-stream-prefix")
            if not prefix:
                continue  # the stream is named after the Docker id: made when it exists
            stream = stream_name(options, definition["name"], self.task.id, "")
            self._create_stream(client, group, stream, definition["name"])

    def _create_stream(self, client, group: str, stream: str, container: str) -> None:
        try:
            client.create_log_stream(logGroupName=group, logStreamName=stream)
        except client.exceptions.ResourceAlreadyExistsException:
            pass
        except (BotoCoreError, ClientError) as exc:
            code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
            message = exc.response["Error"].get("Message", "") if isinstance(exc, ClientError) else str(exc)
            raise StartFailure(
                "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 "
                f"times: failed to create Cloudwatch log stream: {code}: {message} : exit status 1",
                container,
            ) from None

    def _pull(self) -> None:
        agent = self.agent
        images = {d["name"]: d.get("image") or "" for d in self.definitions.values()}
        if any(agent.is_sandbox_registry(image) for image in images.values()):
            try:
                agent.login(self.execution_credentials, self.region)
            except (BotoCoreError, ClientError, SandboxError) as exc:
                name = next(n for n, i in images.items() if agent.is_sandbox_registry(i))
                raise StartFailure(
                    f"CannotPullContainerError: unable to retrieve ecr registry auth: {exc}", name
                ) from None
        pulled: dict[str, tuple[str | None, str | None]] = {}
        for name, image in images.items():
            self._check_stop()
            if image not in pulled:
                result = subprocess.run(  # noqa: S603 - fixed program
                    ["docker", "--config", str(agent.docker_config), "pull", "--quiet", image],
                    capture_output=True,
                    text=True,
                    timeout=900,
                    check=False,
                )
                if result.returncode != 0:
                    raise StartFailure(pull_failure(image, result.stderr or result.stdout), name)
                pulled[image] = self._digest(image)
            state = self._state(name)
            state.image_digest, state.image_id = pulled[image]
        self.task.pull_stopped_at = _now()

    @staticmethod
    def _digest(image: str) -> tuple[str | None, str | None]:
        """(the registry's manifest digest of the image, Docker's image id)."""
        out = containers.docker("image", "inspect", "--format", "{{json .}}", image, check=False)
        try:
            info = json.loads(out or "{}")
        except ValueError:
            return None, None
        repository = image.rsplit("@", 1)[0]
        if ":" in repository.rsplit("/", 1)[-1]:
            repository = repository.rsplit(":", 1)[0]
        digest = next(
            (e.split("@", 1)[1] for e in info.get("RepoDigests") or [] if e.startswith(repository + "@")), None
        )
        return digest, info.get("Id")

    def _state(self, name: str) -> ContainerState:
        return next(s for s in self.task.containers if s.name == name)

    def _extra_environment(self, state: ContainerState) -> dict[str, str]:
        gateway, _subnet = self.agent.network()
        config = self.agent.config
        extra = {
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE" if getattr(self.task, "platform_family", None) else "AWS_ECS_EC2",
            "ECS_CONTAINER_METADATA_URI_V4": f"http://169.254.170.2/v4/{state.metadata_id}",
            "ECS_CONTAINER_METADATA_URI": f"http://169.254.170.2/v3/{state.metadata_id}",
            # The sandbox stands in for AWS's endpoints.
            "AWS_ENDPOINT_URL": f"http://{gateway}:{config.moto_port}",
            "AWS_ENDPOINT_URL_SSM": f"http://{gateway}:{config.ssm_port}",
        }
        if config.registry_enabled:
            extra["AWS_ENDPOINT_URL_ECR"] = f"http://{gateway}:{config.ssm_port}"
        if self.role_arn:
            extra["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = f"/v2/credentials/{self.credentials_id}"
        return extra

    def _create_args(self, definition: dict, state: ContainerState) -> list[str]:
        override = self.container_overrides.get(definition["name"])
        settings = container_settings(definition, override)
        env = environment(definition, override, self._extra_environment(state))
        state.docker_name = self._names(definition["name"])
        args = [
            "create",
            f"--name={state.docker_name}",
            *self._labels(definition["name"]),
            f"--network=container:{self.network_container}",
            "--log-driver=json-file",
            *(f"--env={key}={value}" for key, value in env.items()),
        ]
        if settings["memory"]:
            args.append(f"--memory={int(settings['memory'])}m")
        if settings["memoryReservation"]:
            args.append(f"--memory-reservation={int(settings['memoryReservation'])}m")
        if settings["cpu"]:
            args.append(f"--cpu-shares={max(2, int(settings['cpu']))}")
        if definition.get("workingDirectory"):
            args.append(f"--workdir={definition['workingDirectory']}")
        if definition.get("user"):
            args.append(f"--user={definition['user']}")
        if definition.get("readonlyRootFilesystem"):
            args.append("--read-only")
        if (definition.get("linuxParameters") or {}).get("initProcessEnabled"):
            args.append("--init")
        entry_point = definition.get("entryPoint")
        if entry_point:
            args.append(f"--entrypoint={entry_point[0]}")
        args.append(definition.get("image") or "")
        if entry_point:
            args += entry_point[1:]
        args += [str(part) for part in settings["command"] or []]
        return args

    def _start(self) -> None:
        for name, definition in self.definitions.items():
            self._check_stop()
            state = self._state(name)
            try:
                self.docker_ids[name] = containers.docker(*self._create_args(definition, state), timeout=120).strip()
            except SandboxError as exc:
                raise StartFailure(f"CannotCreateContainerError: {exc}", name) from None
        for name in self.definitions:
            state = self._state(name)
            docker_id = self.docker_ids[name]
            try:
                containers.docker("start", docker_id, timeout=120)
            except SandboxError as exc:
                raise StartFailure(f"CannotStartContainerError: {exc}", name) from None
            state.runtime_id = docker_id
            state.last_status = "RUNNING"
            state.started_at = _now()
            self._follow(name, docker_id)
            threading.Thread(target=self._await_exit, args=(name, docker_id), daemon=True).start()
        now = _now()
        self.status("RUNNING", started_at=now, connectivity="CONNECTED", connectivity_at=now)

    def _follow(self, name: str, docker_id: str) -> None:
        options = awslogs_options(self.definitions[name])
        if options is None:
            return
        group = options["awslogs-group"]
        stream = stream_name(options, name, self.task.id, docker_id)
        if not options.get("awslogs-stream-prefix"):
            self._create_stream(self.shipper.client, group, stream, name)
        proc = subprocess.Popen(  # noqa: S603 - fixed program
            ["docker", "logs", "--follow", "--timestamps", docker_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )

        def read(pipe) -> None:
            for raw in pipe:
                timestamp, message = parse_log_line(raw.rstrip("\n"))
                self.shipper.put(group, stream, timestamp, message)

        for pipe in (proc.stdout, proc.stderr):
            thread = threading.Thread(target=read, args=(pipe,), daemon=True)
            thread.start()
            self.followers.append(thread)

    def _await_exit(self, name: str, docker_id: str) -> None:
        result = subprocess.run(  # noqa: S603 - fixed program
            ["docker", "wait", docker_id], capture_output=True, text=True, check=False
        )
        code: int | None = int(result.stdout.strip()) if result.stdout.strip().lstrip("-").isdigit() else None
        state = self._state(name)
        info = containers.docker("inspect", "--format", "{{json .State}}", docker_id, check=False)
        with contextlib.suppress(ValueError):
            if json.loads(info or "{}").get("OOMKilled"):
                state.reason = "OutOfMemoryError: Container killed due to memory usage"
        state.exit_code = code
        state.last_status = "STOPPED"
        if code is None and state.reason is None:
            state.reason = "DockerTimeoutError: the container's exit code could not be read"
        with self.cond:
            self.exited[name] = code
            self.cond.notify_all()

    def _wait(self) -> tuple[str, str]:
        with self.cond:
            while True:
                if self.stop_request is not None:
                    return self.stop_request
                if any(self.definitions[n].get("essential", True) is not False for n in self.exited):
                    return "EssentialContainerExited", "Essential container in task exited"
                if len(self.exited) == len(self.definitions):
                    return "EssentialContainerExited", "Essential container in task exited"
                self.cond.wait(1.0)

    def _stop_containers(self, code: str, reason: str) -> None:
        task = self.task
        task.desired_status = "STOPPED"
        task.stop_code = code
        task.stopped_reason = reason
        self.status("DEACTIVATING", stopping_at=_now())
        self.status("STOPPING")
        running = [n for n in self.definitions if n not in self.exited]
        stoppers = [
            threading.Thread(
                target=containers.docker,
                args=("stop", f"--time={stop_timeout(self.definitions[n])}", self.docker_ids[n]),
                kwargs={"check": False, "timeout": MAX_STOP_TIMEOUT + 60},
                daemon=True,
            )
            for n in running
        ]
        for thread in stoppers:
            thread.start()
        with self.cond:
            deadline = time.monotonic() + MAX_STOP_TIMEOUT + 90
            while len(self.exited) < len(self.definitions) and time.monotonic() < deadline:
                self.cond.wait(1.0)
        task.execution_stopped_at = _now()

    def _failed_to_start(self, failure: StartFailure) -> None:
        task = self.task
        task.desired_status = "STOPPED"
        task.stop_code, task.stopped_reason = failure.stop_code, str(failure)
        task.stopping_at = getattr(task, "stopping_at", None) or _now()
        for state in task.containers:
            if state.last_status != "STOPPED":
                state.last_status = "STOPPED"
            if failure.container == state.name and state.reason is None:
                state.reason = str(failure)
        # A container that started before the failure (another one could not start) is stopped.
        for docker_id in self.docker_ids.values():
            containers.docker("stop", "--time=1", docker_id, check=False, timeout=60)
        log.info("task %s: failed to start: %s", task.id, failure)

    def _deprovision(self, started: bool) -> None:
        task = self.task
        self.status("DEPROVISIONING")
        for thread in self.followers:
            thread.join(30)
        if self.shipper is not None:
            self.shipper.close()
        names = [*self.docker_ids.values(), self.network_container]
        containers.remove([n for n in names if n])
        for attachment in task.attachments:
            attachment["status"] = "DELETED"
        if not started and getattr(task, "execution_stopped_at", None) is None:
            task.execution_stopped_at = _now()
        self.agent.forget(self)
        self.status("STOPPED", stopped_at=_now())


# --------------------------------------------------------------------------- moto patches

_agent: Agent | None = None


def agent() -> Agent | None:
    return _agent


def install(config: Config) -> Agent:
    """Patch moto's ECS (RunTask, StopTask) and its app (the agent's endpoint); idempotent."""
    global _agent  # noqa: PLW0603
    if _agent is not None:
        return _agent
    from moto.core.exceptions import JsonRESTError
    from moto.ecs import models as ecs
    from moto.ecs.exceptions import InvalidParameterException
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    the_agent = Agent(config)
    removed = the_agent.remove_leftovers()
    if removed:
        log.info("removed %d container(s) of an earlier moto's tasks", removed)
    backend_class = ecs.EC2ContainerServiceBackend
    run_task = backend_class.run_task
    signature = inspect.signature(run_task)
    stop_task = backend_class.stop_task
    requirements = backend_class._calculate_task_resource_requirements  # noqa: SLF001

    def requirements_without_memory(task_definition):
        # A Fargate definition has its memory at the task level; moto adds None.
        patched = [dict(d) for d in task_definition.container_definitions]
        for definition in patched:
            if definition.get("memory") is None and definition.get("memoryReservation") is None:
                definition["memory"] = 0
        original = task_definition.container_definitions
        task_definition.container_definitions = patched
        try:
            return requirements(task_definition)
        finally:
            task_definition.container_definitions = original

    def run_and_start(self, cluster_str, task_definition_str, count, overrides, *args, **kwargs):
        task_definition = self.describe_task_definition(task_definition_str)
        if not 1 <= int(count or 1) <= 10:
            raise InvalidParameterException("count must be between 1 and 10.")
        try:
            check_overrides({"containerDefinitions": task_definition.container_definitions}, overrides)
        except ValueError as exc:
            raise InvalidParameterException(str(exc)) from None
        # AWS takes an awsvpcConfiguration without security groups (the VPC's default one).
        bound = signature.bind(self, cluster_str, task_definition_str, count, overrides, *args, **kwargs)
        vpc = (bound.arguments.get("networking_configuration") or {}).get("awsvpcConfiguration")
        if vpc is not None:
            vpc.setdefault("securityGroups", [])
        try:
            tasks = run_task(*bound.args, **bound.kwargs)
        except JsonRESTError:
            raise
        except Exception as exc:
            if "No instances found" in str(exc):
                raise InvalidParameterException("No Container Instances were found in your cluster.") from None
            raise
        for task in tasks:
            the_agent.adopt(self, task, task_definition)
        return tasks

    def stop_by_agent(self, cluster_str, task_str, reason):
        cluster = self._get_cluster(cluster_str)
        task_id = (task_str or "").split("/")[-1]
        for task in (self.tasks.get(cluster.name) or {}).values():
            if task.id == task_id:
                run = the_agent.run_of(task)
                if run is None:
                    return stop_task(self, cluster_str, task_str, reason)
                run.request_stop("UserInitiated", reason or "Task stopped by user")
                return task
        raise InvalidParameterException("The referenced task was not found.")

    call = DomainDispatcherApplication.__call__

    def call_with_agent(self, environ, start_response):
        if environ.get("PATH_INFO", "").startswith(AGENT_PATH + "/") and environ.get("REQUEST_METHOD") == "GET":
            return the_agent.wsgi(environ, start_response)
        return call(self, environ, start_response)

    backend_class._calculate_task_resource_requirements = staticmethod(requirements_without_memory)  # noqa: SLF001
    backend_class.run_task = run_and_start
    backend_class.stop_task = stop_by_agent
    DomainDispatcherApplication.__call__ = call_with_agent
    _agent = the_agent
    return the_agent
