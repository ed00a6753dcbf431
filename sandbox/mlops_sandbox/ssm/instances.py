"""The managed instances the SSM service knows: what they are and whether their agent answers.

Three kinds behind one registry: ``full`` and ``light`` run in containers with an agent
that polls the service; ``simulated`` have no container and the service plays their
agent. The API shows all of them the same way. The registry is saved to a JSON file so a
restarted service finds the running containers again.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

from .simulated import SimSpec

KINDS = ("full", "light", "simulated")
AGENT_VERSION = "3.3.1611.0"
RUNTIME = ("last_ping", "offline", "killed", "cond")


@dataclass
class Instance:
    instance_id: str
    kind: str
    name: str
    env: str
    tags: dict[str, str]
    private_ip: str
    az: str
    ami: str
    role: str
    container: str | None = None
    account: str = ""  # the AWS account it lives in ("" in records of older sandboxes: the default one)
    registered: float = field(default_factory=time.time)
    sim: SimSpec | None = None
    # Runtime state (not saved).
    last_ping: float | None = None
    offline: bool = False  # simulated: agent stopped answering
    killed: bool = False  # simulated: the machine went away mid-run
    cond: threading.Condition | None = None

    @property
    def hostname(self) -> str:
        return "ip-" + self.private_ip.replace(".", "-")

    @property
    def fqdn(self) -> str:
        region = self.az[:-1]
        return f"{self.hostname}.{region}.compute.internal"

    def ping_status(self, now: float, timeout: float) -> str:
        if self.kind == "simulated" and not (self.offline or self.killed):
            self.last_ping = now
        if self.last_ping is not None and now - self.last_ping <= timeout:
            return "Online"
        return "ConnectionLost"

    def to_record(self) -> dict:
        saved = [f.name for f in fields(self) if f.name not in RUNTIME]
        record = {name: getattr(self, name) for name in saved}
        record["sim"] = self.sim.to_dict() if self.sim else None
        return record

    @classmethod
    def from_record(cls, record: dict) -> Instance:
        sim = record.pop("sim", None)
        inst = cls(**record)
        inst.sim = SimSpec.from_request(sim) if sim else None
        return inst

    def information(self, now: float, timeout: float) -> dict:
        """The InstanceInformation shape of DescribeInstanceInformation."""
        status = self.ping_status(now, timeout)
        return {
            "InstanceId": self.instance_id,
            "PingStatus": status,
            "LastPingDateTime": self.last_ping or self.registered,
            "AgentVersion": AGENT_VERSION,
            "IsLatestVersion": True,
            "PlatformType": "Linux",
            "PlatformName": "Debian GNU/Linux",
            "PlatformVersion": "12",
            "ResourceType": "EC2Instance",
            "IPAddress": self.private_ip,
            "ComputerName": self.fqdn,
            "SourceId": self.instance_id,
            "SourceType": "AWS::EC2::Instance",
        }

    def properties(self, now: float, timeout: float) -> dict:
        """The InstanceProperty shape of DescribeInstanceProperties: the agent's facts of
        ``information`` (less IsLatestVersion) and the Name tag. EC2's own fields
        (InstanceType, InstanceState) are left out: EC2 is moto's, not this registry's."""
        prop = {k: v for k, v in self.information(now, timeout).items() if k != "IsLatestVersion"}
        prop["Name"] = self.name
        return prop


class Registry:
    def __init__(self, path: Path, lock: threading.RLock, default_account: str = "") -> None:
        self.path = path
        self.lock = lock
        self.default_account = default_account
        self.by_id: dict[str, Instance] = {}

    def load(self) -> list[Instance]:
        try:
            records = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        loaded = []
        for record in records:
            inst = Instance.from_record(record)
            self.add(inst, save=False)
            loaded.append(inst)
        return loaded

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([i.to_record() for i in self.by_id.values()], indent=1))
        tmp.replace(self.path)

    def add(self, inst: Instance, save: bool = True) -> None:
        inst.cond = threading.Condition(self.lock)
        inst.account = inst.account or self.default_account
        self.by_id[inst.instance_id] = inst
        if save:
            self.save()

    def remove(self, instance_ids: list[str]) -> list[Instance]:
        """Forget these instances (saved once); their waiting agents are woken up."""
        removed = [inst for inst in (self.by_id.pop(i, None) for i in instance_ids) if inst is not None]
        if removed:
            self.save()
        for inst in removed:
            if inst.cond is not None:
                inst.cond.notify_all()
        return removed

    def get(self, instance_id: str) -> Instance | None:
        return self.by_id.get(instance_id)

    def select(
        self,
        *,
        name: str | None = None,
        env: str | None = None,
        kind: str | None = None,
        ids: list[str] | None = None,
        account: str | None = None,
    ) -> list[Instance]:
        found = []
        for inst in self.by_id.values():
            if account is not None and inst.account != account:
                continue
            if name is not None and inst.name != name:
                continue
            if env is not None and inst.env != env:
                continue
            if kind is not None and inst.kind != kind:
                continue
            if ids is not None and inst.instance_id not in ids:
                continue
            found.append(inst)
        return found
