"""The default fleet as a sandbox component: ``up`` starts the full instances, ``down``
removes every container, volume and network of the sandbox (found by its Docker label,
so also what a sandbox started from another checkout left)."""

from __future__ import annotations

from . import containers
from .client import Sandbox, SandboxControlError
from .config import Config
from .images import InstanceImage
from .process import SandboxError


class Fleet:
    def __init__(self, config: Config) -> None:
        self.config = config

    @property
    def registry_file(self):
        return self.config.state_dir / "ssm" / "instances.json"

    def up(self) -> str:
        cfg = self.config
        if cfg.instances <= 0:
            return "no default instances (MLOPS_SANDBOX_INSTANCES=0)"
        if not containers.engine_answers():
            raise SandboxError("no Docker engine answers; run `make setup` (it starts one) and try again")
        tag, built = InstanceImage(cfg, "full", log=lambda msg: print(f"sandbox: {msg}", flush=True)).ensure()
        try:
            instances = Sandbox(cfg.control_url).ensure_instances(
                "full", cfg.instances, cfg.instance_name, cfg.instance_env
            )
        except SandboxControlError as exc:
            raise SandboxError(str(exc)) from None
        ids = " ".join(i["instance_id"] for i in instances)
        how = "built" if built else "cached"
        return (
            f"{len(instances)} full instance(s) Name={cfg.instance_name} env={cfg.instance_env} online "
            f"(image {tag}, {how}): {ids}"
        )

    def down(self) -> str:
        if not containers.engine_answers():
            self.registry_file.unlink(missing_ok=True)
            return "no Docker engine answers: no containers to remove"
        removed = containers.cleanup(self.config)
        self.registry_file.unlink(missing_ok=True)
        return (
            f"removed {removed['containers']} container(s), {removed['volumes']} volume(s), "
            f"{removed['networks']} network(s)"
        )

    def status(self) -> str:
        found = containers.containers(self.config)
        running = sum(1 for c in found if c["running"])
        return f"instances: {running} running container(s), {len(found) - running} stopped"
