# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""How the new containers of a deploy replace the running ones, and how the old ones
come back when the new ones fail: the ``up`` and ``rollback`` steps of a
``_compose_deploy.Deployment``.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections.

A strategy is a class with two methods, each given the ``Deployment`` (for its compose
CLI, its engine and its shared steps: ``snapshot``, ``track``, ``wait_healthy``,
``image_of_id``) and the values of the steps before it:
- ``up(deployment, project, before) -> UpOutcome``;
- ``rollback(deployment, project, before, after, reason, logs) -> RollbackOutcome``,
  which never raises for a failed rollback: the outcome says what happened.
``Recreate`` is what compose does by itself (``up`` recreates what changed, in place).
Another strategy (blue/green, say) is a sibling class added to ``STRATEGIES``; the
deployment's other steps (pull, health wait, probe, orphans, prune, result) stay as
they are.
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING

from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import command_result
from ansible_collections.mlops.deploy.plugins.module_utils._compose_events import event_errors, parse_events
from ansible_collections.mlops.deploy.plugins.module_utils._compose_images import split_image_ref
from ansible_collections.mlops.deploy.plugins.module_utils._compose_plan import plan_rollback, rollback_override
from ansible_collections.mlops.deploy.plugins.module_utils._compose_values import (
    Project,
    RollbackOutcome,
    UpOutcome,
)

if TYPE_CHECKING:  # pragma: no cover - the import would be circular at run time
    from ansible_collections.mlops.deploy.plugins.module_utils._compose_deploy import Deployment


class Strategy:
    """The interface: see the module's docstring."""

    name = ""

    def up(self, deployment: Deployment, project: Project, before: dict) -> UpOutcome:
        raise NotImplementedError

    def rollback(
        self,
        deployment: Deployment,
        project: Project,
        before: dict,
        after: dict,
        reason: str,
        logs: dict[str, list[str]],
    ) -> RollbackOutcome:
        raise NotImplementedError


class Recreate(Strategy):
    """``docker compose up`` of the targets: compose recreates, in place, the containers
    whose image or configuration changed. Rollback: the services whose containers
    changed are brought up again with their previous images pinned by digest (an
    override file), the services that did not exist before are removed."""

    name = "recreate"

    def up(self, deployment: Deployment, project: Project, before: dict) -> UpOutcome:
        result = deployment.track(deployment.compose.up(project.targets))
        events = parse_events(result["stderr"]) + parse_events(result["stdout"])
        return UpOutcome(result, events, deployment.snapshot(project.name))

    def rollback(
        self,
        deployment: Deployment,
        project: Project,
        before: dict,
        after: dict,
        reason: str,
        logs: dict[str, list[str]],
    ) -> RollbackOutcome:
        plan = plan_rollback(
            before,
            after,
            project.targets,
            lambda image_id: deployment.image_of_id(image_id, _repo_of(before, image_id)),
        )
        base = {"logs": logs, "rollback": plan}
        if not deployment.options.rollback:
            return RollbackOutcome("%s; rollback=false, the new containers were left as they are" % reason, base)
        if not plan["pins"] and not plan["remove"]:
            return RollbackOutcome(
                "%s; nothing was changed by this deploy, so there is nothing to roll back to" % reason, base
            )
        if plan["pins"]:
            result = self._pin(deployment, plan["pins"])
            if result["rc"] != 0:
                return RollbackOutcome(
                    "%s; the rollback to %s failed too: %s"
                    % (reason, describe_pins(plan["pins"]), "; ".join(event_errors(parse_events(result["stderr"])))),
                    dict(base, **command_result(result)),
                )
        if plan["remove"]:
            deployment.track(deployment.compose.remove(plan["remove"]))
        deployment.actions["rolled_back"] = plan["restore"]
        health = deployment.wait_healthy(project.name, sorted(plan["pins"]), project.expected)
        done = []
        if plan["pins"]:
            state = "healthy again" if health.ok else "NOT healthy either (%s)" % "; ".join(health.problems)
            done.append("rolled back %s, %s" % (describe_pins(plan["pins"]), state))
        if plan["remove"]:
            done.append("removed the service(s) %s, which did not run before" % ", ".join(plan["remove"]))
        log_text = "\n".join(
            "--- last %d log lines of %s:\n%s" % (len(lines), name, "\n".join(lines))
            for name, lines in sorted(logs.items())
        )
        return RollbackOutcome(
            "%s; %s.\n%s" % (reason, "; ".join(done), log_text),
            dict(base, rollback_healthy=health.ok),
            healthy=health.ok,
        )

    @staticmethod
    def _pin(deployment: Deployment, pins: dict[str, str]) -> dict:
        """``up`` of the pinned services with an override file naming their previous images."""
        with tempfile.TemporaryDirectory(prefix="compose-deploy-rollback-") as tmp:
            override = os.path.join(tmp, "rollback.override.json")
            with open(override, "w", encoding="utf-8") as fh:
                fh.write(rollback_override(pins))
            return deployment.track(deployment.compose.up(sorted(pins), extra_files=[override]))


STRATEGIES: dict[str, type[Strategy]] = {Recreate.name: Recreate}


def strategy_for(name: str) -> Strategy:
    """The strategy called ``name`` (one of ``STRATEGIES``)."""
    return STRATEGIES[name]()


def describe_pins(pins: dict[str, str]) -> str:
    return ", ".join("%s to %s" % (service, ref) for service, ref in sorted(pins.items()))


def _repo_of(before: dict, image_id: str) -> str | None:
    """The repository a container of ``before`` ran ``image_id`` from (its image reference)."""
    for containers in before.values():
        for c in containers:
            if c["image_id"] == image_id and c["image_ref"]:
                return split_image_ref(c["image_ref"])[0]
    return None
