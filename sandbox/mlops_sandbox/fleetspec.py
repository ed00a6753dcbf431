"""What the sandbox's instances carry, read from the one definition playbooks/provision.yml
applies to real instances: ``inventories/local/group_vars/all/provision.yml`` (or
``MLOPS_SANDBOX_FLEET_SPEC``), its plain-valued ``provision_instance_*`` settings:

- ``provision_instance_role``: the instance profile and its role (same name), whose
  credentials the instance metadata service hands out (STS sessions named after the
  instance, as EC2's);
- ``provision_instance_type``;
- ``provision_instance_metadata``: the metadata options (``http_tokens: required`` is
  IMDSv2 only; the sandbox's metadata service is IMDSv2 only whatever they say).

Missing file or keys: the defaults below.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = REPO / "inventories" / "local" / "group_vars" / "all" / "provision.yml"


@dataclass(frozen=True)
class FleetSpec:
    role: str = "mlops-sandbox-instance"
    instance_type: str = "t3.medium"
    metadata: dict = field(default_factory=lambda: {"http_tokens": "required", "http_endpoint": "enabled"})

    @property
    def metadata_options(self) -> dict:
        """EC2's MetadataOptions from the ansible-style snake_case settings."""
        names = {
            "http_tokens": "HttpTokens",
            "http_endpoint": "HttpEndpoint",
            "http_put_response_hop_limit": "HttpPutResponseHopLimit",
            "instance_metadata_tags": "InstanceMetadataTags",
        }
        return {names[k]: v for k, v in self.metadata.items() if k in names}


def load(path: Path | None = None) -> FleetSpec:
    import yaml

    path = Path(path or os.environ.get("MLOPS_SANDBOX_FLEET_SPEC") or DEFAULT_SPEC)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return FleetSpec()
    default = FleetSpec()
    return FleetSpec(
        role=str(data.get("provision_instance_role") or default.role),
        instance_type=str(data.get("provision_instance_type") or default.instance_type),
        metadata=dict(data.get("provision_instance_metadata") or default.metadata),
    )
