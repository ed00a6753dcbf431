# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The values the steps of a compose deploy hand each other (``_compose_deploy``,
``_compose_strategy``): the options, the project loaded, and what ``up``, the health
wait and a rollback came to.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError
from ansible_collections.mlops.deploy.plugins.module_utils._compose_events import event_errors
from ansible_collections.mlops.deploy.plugins.module_utils._compose_state import replicas


@dataclass
class DeployOptions:
    """What the module's options ask of the deploy (their defaults are the module's
    argument spec's: ``from_params`` takes the validated parameters as they are)."""

    services: list[str] | None
    pull: bool
    health_timeout: int
    probe_url: str | None
    probe_status: list[int]
    probe_timeout: int
    rollback: bool
    remove_orphans: bool
    prune: bool
    keep_images: int

    @classmethod
    def from_params(cls, params: dict) -> DeployOptions:
        return cls(**{f.name: params[f.name] for f in fields(cls)})


@dataclass
class Project:
    """The compose project ``load`` read: its model (``config --format json``), the
    configuration hash of each service (None when compose could not give them, with
    the failed call in ``hashes_result``) and the services deployed (``targets``)."""

    name: str
    model: dict
    targets: list[str]
    hashes: dict[str, str] | None = None
    hashes_result: dict = field(default_factory=dict)

    @property
    def services(self) -> dict:
        """``{service: its model}`` of every service of the file."""
        return self.model.get("services") or {}

    @property
    def refs(self) -> dict[str, str]:
        """``{target: image reference}`` of the targets that name an image."""
        return {s: self.services[s]["image"] for s in self.targets if self.services[s].get("image")}

    @property
    def expected(self) -> dict[str, int]:
        """``{target: number of containers wanted}``."""
        return {s: replicas(self.services[s]) for s in self.targets}


@dataclass
class Health:
    """What a health wait came to: ``ok``, ``fail`` (a container unhealthy, exited or
    restarting) or ``timeout``, why, and how long it waited."""

    verdict: str
    problems: list[str]
    waited: float

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


@dataclass
class UpOutcome:
    """What ``up`` did: the command's result, compose's events and the project after it."""

    result: dict
    events: list[dict]
    after: dict

    @property
    def ok(self) -> bool:
        return self.result["rc"] == 0

    def failure(self) -> str:
        """Why it failed, for the user: compose's error lines, else its stderr."""
        return "docker compose up failed: %s" % "; ".join(event_errors(self.events) or [self.result["stderr"].strip()])


@dataclass
class RollbackOutcome:
    """What a rollback came to: the message the deploy fails with (the reason first),
    the failed result's extra keys, and whether what it put back is healthy (None when
    nothing was put back)."""

    msg: str
    result: dict
    healthy: bool | None = None

    def error(self) -> DeployError:
        return DeployError(self.msg, self.result)
