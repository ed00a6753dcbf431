"""The sandbox's own controls behind ``/_sandbox/``: instances in and out, faults on them.

Adding an instance does what launching one does in AWS: an EC2 instance in moto (AMI,
instance profile, ``Name``/``env`` tags), and for ``full``/``light`` a container that runs
it (its agent registers with this service by polling). ``simulated`` instances stop at
moto: the service plays their agent. Removing terminates the EC2 instance and removes the
container.

An instance lives in one account (``account``: a name or id of ``Config.accounts``, default
moto's default account): launched with that account's EC2, AMI, subnet and instance
profile, its metadata service naming that account, and seen only by callers of that
account in the SSM API.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import containers, fleetspec
from ..config import Config
from ..images import InstanceImage
from ..process import SandboxError
from . import aws
from .ec2 import Ec2
from .engine import Engine
from .faults import Faults
from .instances import KINDS, Instance, Registry
from .simulated import SimSpec

log = logging.getLogger("mlops_sandbox.ssm.control")

AMI_NAME = "mlops-sandbox/debian-12"
MAX_COUNT = 2000
SESSION_SECONDS = 6 * 3600


class BadRequest(ValueError):
    """The request cannot be done as asked; the message says what to change."""


class Control:
    def __init__(self, config: Config, engine: Engine, registry: Registry, faults: Faults) -> None:
        self.config = config
        self.engine = engine
        self.registry = registry
        self.faults = faults
        self.clients = aws.Clients(config.moto_url, config.region, config.account_id)
        self.ec2 = self.clients("ec2")
        self.index = Ec2(self.clients)  # shared with the API: tag look-ups, forgotten on every change
        self.iam = self.clients("iam")
        # Instance profile, type and metadata options: what provision.yml gives real instances.
        self.spec = fleetspec.load()
        self.sessions: dict[str, dict] = {}  # instance id -> its role session's credentials
        self.sessions_lock = threading.Lock()
        self.provision_lock = threading.Lock()
        self._ami: dict[str, str] = {}
        self._subnet: dict[str, str] = {}
        # Called with the network's gateway before containers start on it (the servers
        # listen there; see listen.py).
        self.on_network: Callable[[str], None] | None = None

    # -- views -------------------------------------------------------------------------
    def view(self, inst: Instance) -> dict:
        return {
            "instance_id": inst.instance_id,
            "kind": inst.kind,
            "name": inst.name,
            "env": inst.env,
            "account": inst.account,
            "tags": inst.tags,
            "private_ip": inst.private_ip,
            "container": inst.container,
            "ping_status": inst.ping_status(time.time(), self.engine.ping_timeout),
            "sim": inst.sim.to_dict() if inst.sim else None,
        }

    def list(self, query: dict) -> list[dict]:
        with self.engine.lock:
            found = self.registry.select(
                name=query.get("name"),
                env=query.get("env"),
                kind=query.get("kind"),
                account=self._account(query.get("account")) if query.get("account") else None,
            )
            return [self.view(i) for i in found]

    def _account(self, name_or_id) -> str:
        try:
            return self.config.account(str(name_or_id) if name_or_id else None)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    # -- adding ------------------------------------------------------------------------
    def add(self, body: dict) -> list[dict]:
        kind = body.get("kind", "light")
        if kind not in KINDS:
            raise BadRequest(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        try:
            count = int(body.get("count", 1))
        except (TypeError, ValueError):
            raise BadRequest(f"count must be a number, got {body.get('count')!r}") from None
        if not 1 <= count <= MAX_COUNT:
            raise BadRequest(f"count must be between 1 and {MAX_COUNT}, got {count}")
        name, env = body.get("name"), body.get("env", "test")
        if not name or not isinstance(name, str):
            raise BadRequest("name (the Name tag) is required")
        tags = body.get("tags") or {}
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise BadRequest("tags must be an object of string values")
        sim = None
        if kind == "simulated":
            try:
                sim = SimSpec.from_request(body)
            except (TypeError, ValueError) as exc:
                raise BadRequest(str(exc)) from None
        account = self._account(body.get("account"))
        wait = bool(body.get("wait", True))
        image = None
        if kind != "simulated":
            image, _built = InstanceImage(self.config, kind, log=log.info).ensure()
        with self.provision_lock:
            launched = self._launch(count, name, env, tags, account)
            instances = [
                Instance(
                    instance_id=item["InstanceId"],
                    kind=kind,
                    name=name,
                    env=env,
                    tags={t["Key"]: t["Value"] for t in item.get("Tags", [])},
                    private_ip=item["PrivateIpAddress"],
                    az=item["Placement"]["AvailabilityZone"],
                    ami=item["ImageId"],
                    role=self.spec.role,
                    account=account,
                    sim=sim,
                )
                for item in launched
            ]
            with self.engine.lock:
                for inst in instances:
                    if kind != "simulated":
                        inst.container = f"mlops-sb-{self.config.name}-{inst.instance_id}"
                    self.registry.add(inst, save=False)
                self.registry.save()
            if kind != "simulated":
                try:
                    self._start_containers(instances, image)
                except SandboxError:
                    self._remove(instances)
                    raise
        if wait and kind != "simulated":
            self.wait_online(instances, timeout=120 + 2 * count)
        with self.engine.lock:
            return [self.view(i) for i in instances]

    def _launch(self, count: int, name: str, env: str, tags: dict[str, str], account: str) -> list[dict]:
        ec2 = self.clients("ec2", account)
        all_tags = [{"Key": "Name", "Value": name}, {"Key": "env", "Value": env}]
        all_tags += [{"Key": k, "Value": v} for k, v in tags.items() if k not in ("Name", "env")]
        launched: list[dict] = []
        remaining = count
        while remaining:
            batch = min(remaining, 250)
            answer = ec2.run_instances(
                ImageId=self.ami(account),
                SubnetId=self.subnet(account),
                InstanceType=self.spec.instance_type,
                MinCount=batch,
                MaxCount=batch,
                MetadataOptions=self.spec.metadata_options,
                IamInstanceProfile={"Name": self.instance_profile(account)},
                TagSpecifications=[{"ResourceType": "instance", "Tags": all_tags}],
            )
            # moto attaches the instance profile to the first instance of a batch only.
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
                later = [i["InstanceId"] for i in answer["Instances"][1:]]
                list(pool.map(lambda iid: self._attach_profile(iid, account), later))
            launched += answer["Instances"]
            remaining -= batch
            self.index.forget()
        return launched

    def subnet(self, account: str | None = None) -> str:
        """The account's subnet in the sandbox VPC (``Config.subnet_cidr``, inside the Docker
        network's range): moto hands out its addresses in order, and the containers take
        the same ones."""
        account = account or self.config.account_id
        if account not in self._subnet:
            ec2 = self.clients("ec2", account)
            vpc_cidr, cidr = self.config.vpc_cidr, self.config.subnet_cidr(account)
            name = f"mlops-sandbox-{self.config.name}"
            found = ec2.describe_subnets(Filters=[{"Name": "tag:Name", "Values": [name]}])["Subnets"]
            if found:
                self._subnet[account] = found[0]["SubnetId"]
                vpc = found[0]["VpcId"]
            else:
                tags = [{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": name}]}]
                vpc = ec2.create_vpc(CidrBlock=vpc_cidr, TagSpecifications=tags)["Vpc"]["VpcId"]
                tags = [{"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": name}]}]
                self._subnet[account] = ec2.create_subnet(
                    VpcId=vpc, CidrBlock=cidr, AvailabilityZone=f"{self.config.region}a", TagSpecifications=tags
                )["Subnet"]["SubnetId"]
            # ECS tasks in awsvpc (Fargate) get an ENI with a private DNS name: moto needs
            # the VPC's DNS hostnames for it, as a VPC for Fargate has them on AWS.
            ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        return self._subnet[account]

    def _attach_profile(self, instance_id: str, account: str | None = None) -> None:
        self.clients("ec2", account).associate_iam_instance_profile(
            IamInstanceProfile={"Name": self.spec.role}, InstanceId=instance_id
        )

    def ami(self, account: str | None = None) -> str:
        account = account or self.config.account_id
        if account not in self._ami:
            ec2 = self.clients("ec2", account)
            images = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [AMI_NAME]}])
            if images["Images"]:
                self._ami[account] = images["Images"][0]["ImageId"]
            else:
                self._ami[account] = ec2.register_image(
                    Name=AMI_NAME, Description="Debian 12 model host (mlops sandbox instance image)"
                )["ImageId"]
        return self._ami[account]

    def instance_profile(self, account: str | None = None) -> str:
        """The fleet's instance profile in ``account``; made bare (role, trust of EC2) when
        provision.yml has not made it yet -- provision.yml attaches its policies, the sandbox none."""
        role = self.spec.role
        iam = self.clients("iam", account)
        try:
            iam.get_instance_profile(InstanceProfileName=role)
        except iam.exceptions.NoSuchEntityException:
            trust = (
                '{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
                '"Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
            )
            with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
                iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)
            with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
                iam.create_instance_profile(InstanceProfileName=role)
            with contextlib.suppress(iam.exceptions.LimitExceededException):
                iam.add_role_to_instance_profile(InstanceProfileName=role, RoleName=role)
        return role

    def agent_credentials(self, instance_id: str) -> dict | None:
        """What an instance's agent signs its CloudWatch writes with; None for simulated
        instances (played by this service, thousands at once: the service's own key)."""
        with self.engine.lock:
            inst = self.registry.get(instance_id)
        if inst is None or inst.kind == "simulated":
            return None
        return self.credentials(instance_id)

    def credentials(self, instance_id: str) -> dict:
        """The instance profile role's credentials, as EC2 gives them to an instance: an STS
        session of the profile's role (in the instance's account, so moto files what the
        session does there) named after the instance, renewed before it expires."""
        with self.engine.lock:
            inst = self.registry.get(instance_id)
        if inst is None:
            raise BadRequest(f"no such instance in the sandbox: {instance_id}")
        with self.sessions_lock:
            held = self.sessions.get(instance_id)
            if held and held["Expiration"].timestamp() - time.time() > 900:
                return held
            iam = self.clients("iam", inst.account)
            profile = iam.get_instance_profile(InstanceProfileName=inst.role)["InstanceProfile"]
            if not profile.get("Roles"):
                raise BadRequest(f"instance profile {inst.role} of {instance_id} has no role")
            answer = self.clients("sts", inst.account).assume_role(
                RoleArn=profile["Roles"][0]["Arn"], RoleSessionName=instance_id, DurationSeconds=SESSION_SECONDS
            )
            self.sessions[instance_id] = answer["Credentials"]
            return answer["Credentials"]

    def _start_containers(self, instances: list[Instance], image: str) -> None:
        gateway = containers.ensure_network(self.config)
        if self.on_network:
            self.on_network(gateway)
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            errors = [f.exception() for f in [pool.submit(self._run_container, i, image, gateway) for i in instances]]
        failed = [str(e) for e in errors if e is not None]
        if failed:
            raise SandboxError(f"{len(failed)} instance container(s) did not start: {failed[0]}")

    def _run_container(self, inst: Instance, image: str, gateway: str) -> None:
        cfg = self.config
        env = {
            "MLOPS_INSTANCE_ID": inst.instance_id,
            "MLOPS_REGION": cfg.region,
            "MLOPS_AZ": inst.az,
            "MLOPS_ACCOUNT_ID": inst.account or cfg.account_id,
            "MLOPS_ROLE": inst.role,
            "MLOPS_PRIVATE_IP": inst.private_ip,
            "MLOPS_AMI_ID": inst.ami,
            "MLOPS_INSTANCE_TYPE": self.spec.instance_type,
            "MLOPS_SSM_ENDPOINT": f"http://{gateway}:{cfg.ssm_port}",
            "AWS_ENDPOINT_URL": f"http://{gateway}:{cfg.moto_port}",
            "AWS_ENDPOINT_URL_SSM": f"http://{gateway}:{cfg.ssm_port}",
            "AWS_ENDPOINT_URL_ECR": f"http://{gateway}:{cfg.ssm_port}",
            "AWS_DEFAULT_REGION": cfg.region,
            "AWS_REGION": cfg.region,
        }
        copy_ca = inst.kind == "full" and cfg.registry_ca.is_file()
        args = [
            "create" if copy_ca else "run",
            f"--name={inst.container}",
            f"--hostname={inst.hostname}",
            f"--network={cfg.network}",
            f"--ip={inst.private_ip}",
            f"--label={cfg.label}",
            f"--label={containers.INSTANCE_LABEL}={inst.instance_id}",
            f"--label={containers.KIND_LABEL}={inst.kind}",
            f"--add-host={cfg.ecr_host}:{gateway}",
            *(f"--env={k}={v}" for k, v in env.items()),
        ]
        if inst.kind == "full":
            volume = f"{inst.container}-docker"
            containers.docker("volume", "create", f"--label={cfg.label}", volume)
            # systemd as PID 1 (the image's command); /run a tmpfs, as on a host: each boot (a
            # killed instance started again) begins without the state of the last one.
            args += [*containers.DIND_OPTIONS, *containers.SYSTEMD_OPTIONS, f"--volume={volume}:/var/lib/docker"]
        else:
            args.append("--cap-add=NET_ADMIN")
        if not copy_ca:
            containers.docker(*args, "--detach", image)
            return
        containers.docker(*args, image)
        self._install_ca(inst)
        containers.docker("start", inst.container)

    def _install_ca(self, inst: Instance) -> None:
        """The registry standing in for ECR: its CA trusted by the instance's engine
        (``/etc/docker/certs.d/<ecr host>[:<port>]/ca.crt``, read by dockerd on each
        connection; the port when the registry is not on 443, as image names say it)."""
        cfg = self.config
        with tempfile.TemporaryDirectory() as tmp:
            certs = Path(tmp) / cfg.registry_address
            certs.mkdir()
            shutil.copy(cfg.registry_ca, certs / "ca.crt")
            containers.docker("cp", str(certs), f"{inst.container}:/etc/docker/certs.d/")

    def wait_online(self, instances: list[Instance], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.engine.lock:
                now = time.time()
                waiting = [i for i in instances if i.ping_status(now, self.engine.ping_timeout) != "Online"]
            if not waiting:
                return
            if time.monotonic() >= deadline:
                names = ", ".join(i.instance_id for i in waiting[:5])
                tail = containers.docker("logs", "--tail", "15", waiting[0].container or "", check=False, timeout=20)
                raise SandboxError(
                    f"{len(waiting)} instance(s) did not come online within {timeout:.0f}s ({names}); "
                    f"last lines of {waiting[0].container}:\n{tail}"
                )
            time.sleep(0.2)

    # -- removing -------------------------------------------------------------------------
    def remove(self, body: dict) -> list[str]:
        ids = body.get("instance_ids")
        if not (body.get("name") or body.get("env") or body.get("kind") or ids):
            raise BadRequest("say which instances to remove: name, env, kind or instance_ids")
        with self.engine.lock:
            found = self.registry.select(
                name=body.get("name"),
                env=body.get("env"),
                kind=body.get("kind"),
                ids=ids,
                account=self._account(body.get("account")) if body.get("account") else None,
            )
        self._remove(found)
        return [i.instance_id for i in found]

    def _remove(self, instances: list[Instance]) -> None:
        if not instances:
            return
        with self.engine.lock:
            gone = self.registry.remove([inst.instance_id for inst in instances])
            self.engine.instances_removed(gone)
        names = [i.container for i in instances if i.container]
        chunks = [names[start : start + 30] for start in range(0, len(names), 30)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(containers.remove, chunks))
        volumes = [f"{n}-docker" for n in names if n]
        if volumes:
            containers.docker("volume", "rm", "-f", *volumes, check=False)
        by_account: dict[str, list[str]] = {}
        for inst in instances:
            by_account.setdefault(inst.account or self.config.account_id, []).append(inst.instance_id)
        for account, ids in by_account.items():
            ec2 = self.clients("ec2", account)
            for start in range(0, len(ids), 500):
                try:
                    ec2.terminate_instances(InstanceIds=ids[start : start + 500])
                except ec2.exceptions.ClientError as exc:
                    log.warning("terminating %s in moto (account %s) failed: %s", ids[start], account, exc)
        self.index.forget()

    # -- the default fleet ---------------------------------------------------------------------
    def ensure(self, body: dict) -> list[dict]:
        """At least ``count`` running instances of ``kind`` tagged name/env: restart, then add."""
        kind, name, env = body.get("kind", "full"), body.get("name"), body.get("env", "local")
        account = self._account(body.get("account"))
        count = int(body.get("count", 0))
        with self.engine.lock:
            have = self.registry.select(name=name, env=env, kind=kind, account=account)
        if kind != "simulated":
            # Instances of an older image (the recipe or the agent changed) are replaced.
            image, _built = InstanceImage(self.config, kind, log=log.info).ensure()
            current = {c["name"] for c in containers.containers(self.config) if c["image"] == image}
            stale = [i for i in have if i.container not in current]
            if stale:
                self._remove(stale)
                have = [i for i in have if i not in stale]
        running = {c["name"] for c in containers.containers(self.config) if c["running"]}
        stopped = [i for i in have if i.container and i.container not in running]
        if kind == "full" and self.config.registry_ca.is_file():
            # A registry started after these instances: its (current) CA goes in now.
            for inst in have:
                self._install_ca(inst)
        for inst in stopped:
            containers.docker("start", inst.container, check=False)
        if stopped:
            self.wait_online(stopped, timeout=120)
        missing = count - len(have)
        if missing > 0:
            self.add({"kind": kind, "name": name, "env": env, "count": missing, "account": account})
        with self.engine.lock:
            return [self.view(i) for i in self.registry.select(name=name, env=env, kind=kind, account=account)]

    def reconcile(self) -> list[str]:
        """After a restart: drop registered instances whose EC2 instance or container is gone."""
        with self.engine.lock:
            known = list(self.registry.by_id.values())
        if not known:
            return []
        try:
            alive: set[str] = set()
            for account in {i.account or self.config.account_id for i in known}:
                alive |= self.index.running(account)
        except Exception as exc:  # moto not reachable: keep everything, say so
            log.warning("cannot check instances against EC2: %s", exc)
            return []
        existing = {c["name"] for c in containers.containers(self.config)}
        gone = [i for i in known if i.instance_id not in alive or (i.container and i.container not in existing)]
        self._remove(gone)
        return [i.instance_id for i in gone]

    # -- faults on instances --------------------------------------------------------------------
    def _targets(self, body: dict) -> list[Instance]:
        ids = body.get("instance_ids")
        if not ids and not body.get("name"):
            raise BadRequest("say which instances: instance_ids or name")
        with self.engine.lock:
            found = self.registry.select(name=body.get("name"), env=body.get("env"), ids=ids)
        if ids:
            unknown = sorted(set(ids) - {i.instance_id for i in found})
            if unknown:
                raise BadRequest(f"no such instance(s) in the sandbox: {', '.join(unknown)}")
        if not found:
            raise BadRequest(f"no instance matches {body}")
        return found

    def offline(self, body: dict) -> list[str]:
        """The agent stops answering (SIGSTOP); running scripts go on, nothing is delivered."""
        found = self._targets(body)
        for inst in found:
            if inst.kind == "simulated":
                with self.engine.lock:
                    inst.ping_status(time.time(), self.engine.ping_timeout)  # its last ping: now
                    inst.offline = True
            else:
                self._agent_signal(inst, "STOP")
        return [i.instance_id for i in found]

    def online(self, body: dict) -> list[str]:
        found = self._targets(body)
        for inst in found:
            if inst.kind == "simulated":
                with self.engine.lock:
                    inst.offline = False
                    inst.killed = False
            elif self._running(inst):
                self._agent_signal(inst, "CONT")
            else:  # killed: boot it again
                containers.docker("start", inst.container or "", timeout=60)
            self.engine.instance_back(inst)
        return [i.instance_id for i in found]

    @staticmethod
    def _running(inst: Instance) -> bool:
        out = containers.docker("inspect", "-f", "{{.State.Running}}", inst.container or "", check=False)
        return out.strip() == "true"

    def _agent_signal(self, inst: Instance, sig: str) -> None:
        containers.docker(
            "exec", inst.container or "", "sh", "-c", f"kill -{sig} $(cat /run/mlops-agent.pid)", timeout=30
        )

    def kill(self, body: dict) -> list[str]:
        """Kill instances now, or when their next invocation starts (``on: start``, ``after`` s later)."""
        found = self._targets(body)
        when = body.get("on", "now")
        if when not in ("now", "start"):
            raise BadRequest(f"on must be 'now' or 'start', got {when!r}")
        after = float(body.get("after", 0))
        for inst in found:
            if when == "start":
                self.faults.arm_kill(inst.instance_id, after)
            else:
                self.kill_now(inst)
        return [i.instance_id for i in found]

    def kill_now(self, inst: Instance) -> None:
        """What a crash looks like: every process of the instance gone at once."""
        if inst.kind == "simulated":
            with self.engine.lock:
                inst.ping_status(time.time(), self.engine.ping_timeout)
                inst.killed = True
            return
        containers.docker("kill", "--signal=KILL", inst.container or "", check=False, timeout=60)
