# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What a deploy has to do, decided from plain values: what ``up`` would do per service,
why ``up`` has to run at all, and how to put back what ran before.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Snapshots are ``_compose_state.group_by_service`` maps.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ansible_collections.mlops.deploy.plugins.module_utils._compose_health import health_verdict
from ansible_collections.mlops.deploy.plugins.module_utils._compose_images import pinned_ref, split_image_ref
from ansible_collections.mlops.deploy.plugins.module_utils._compose_state import (
    LABEL_CONFIG_HASH,
    go_json_sha256,
    replicas,
    service_networks,
    service_volumes,
)

# ------------------------------------------------------------------------- up


def plan_up(
    targets: list[str],
    model_services: dict,
    hashes: dict[str, str],
    before: dict,
    images: dict[str, dict | None],
    remote_digests: dict[str, str | None],
) -> dict[str, dict]:
    """What ``up`` will do per service, the way compose decides it.

    ``images``: service -> local image summary (after any pull); ``remote_digests``:
    service -> the registry's digest when it differs from the local one (a pull would
    bring a new image). Returns service -> ``{"action": keep|create|recreate|start|scale,
    "reason": str}``.
    """
    plan: dict[str, dict] = {}
    for service in targets:
        containers = before.get(service, [])
        image = images.get(service)
        if not containers:
            plan[service] = {"action": "create", "reason": "no container yet"}
        elif remote_digests.get(service):
            plan[service] = {
                "action": "recreate",
                "reason": "new image in the registry (%s)" % remote_digests[service],
            }
        elif any(c["config_hash"] != hashes.get(service) for c in containers):
            plan[service] = {"action": "recreate", "reason": "configuration changed"}
        elif image and any(c["image_id"] != image["id"] for c in containers):
            plan[service] = {"action": "recreate", "reason": "image changed (%s)" % (image["digest"] or image["id"])}
        elif any(c["state"] != "running" for c in containers):
            plan[service] = {"action": "start", "reason": "not running"}
        elif len(containers) != replicas(model_services.get(service, {})):
            plan[service] = {
                "action": "scale",
                "reason": "%d containers, %d wanted" % (len(containers), replicas(model_services.get(service, {}))),
            }
        else:
            plan[service] = {"action": "keep", "reason": ""}
    return plan


def up_reasons(
    services: list[str],
    model: dict,
    hashes: dict[str, str] | None,
    before: dict,
    images: dict[str, dict | None],
    networks: dict[str, dict | None],
    orphan_services: list[str],
) -> list[str]:
    """Why ``docker compose up`` has to run; an empty list when it would change nothing.

    Mirrors what compose 2.x decides in ``up``: a service needs action when a container
    is missing, stopped, or of another count than wanted, its configuration hash or image
    differs (``plan_up``), or a network it joins is missing, was recreated, or has another
    definition than the file's (compose would recreate the network and the containers on
    it); a named volume it should mount is not mounted; orphans are to be removed.
    Anything that cannot be confirmed unchanged (a hash compose did not give, a label
    missing) is a reason too. ``services``: the targets with their dependencies;
    ``hashes``: ``config --hash`` or None; ``images``: service -> local image summary;
    ``networks``: engine name -> ``{"id", "labels"}``, or None when it does not exist.
    """
    reasons: list[str] = []
    if orphan_services:
        reasons.append("orphan services to remove: %s" % ", ".join(orphan_services))
    if hashes is None:
        return reasons + ["compose gave no configuration hashes"]
    model_services = model.get("services") or {}
    plan = plan_up(services, model_services, hashes, before, images, {})
    for service in services:
        step = plan[service]
        if step["action"] != "keep":
            reasons.append("%s: %s (%s)" % (service, step["action"], step["reason"]))
            continue
        image = images.get(service)
        if not image:
            reasons.append("%s: its image is not on the engine" % service)
            continue
        containers = before.get(service, [])
        if any(c["image_label"] not in (None, image["id"]) for c in containers):
            reasons.append("%s: compose recorded another image" % service)
        for name, definition in sorted(service_networks(model, service).items()):
            network = networks.get(name)
            if not network:
                reasons.append("%s: network %s does not exist" % (service, name))
                continue
            if not definition.get("external"):
                label = (network.get("labels") or {}).get(LABEL_CONFIG_HASH)
                if label != go_json_sha256(definition):
                    reasons.append("%s: network %s is not the file's definition" % (service, name))
            if any(c["networks"].get(name) != network["id"] for c in containers):
                reasons.append("%s: a container is not on network %s" % (service, name))
        for name in service_volumes(model, service):
            if any(name not in c["volumes"] for c in containers):
                reasons.append("%s: a container does not mount volume %s" % (service, name))
    expected = {s: replicas(model_services.get(s, {})) for s in services}
    verdict, problems = health_verdict(before, services, expected)
    if verdict != "ok":
        reasons.append("not all healthy yet: %s" % "; ".join(problems))
    return reasons


# ------------------------------------------------------------------- rollback


def plan_rollback(before: dict, after: dict, services: list[str], image_of: Callable[[str], dict | None]) -> dict:
    """How to put back what ran before, for the services whose containers changed.

    ``image_of(image_id)`` gives an image summary (or None). Returns
    ``{"pins": {service: ref}, "remove": [services that did not exist before],
    "restore": [{"service", "from", "to"}]}``; ``to`` is pinned by digest when the
    previous image has one, by image ID otherwise.
    """
    pins: dict[str, str] = {}
    remove: list[str] = []
    restore: list[dict] = []
    for service in sorted(services):
        old, new = before.get(service, []), after.get(service, [])
        if [c["id"] for c in old] == [c["id"] for c in new]:
            continue
        if not old:
            remove.append(service)
            restore.append({"service": service, "from": new[0]["image_id"] if new else None, "to": None})
            continue
        previous = image_of(old[0]["image_id"]) or {"id": old[0]["image_id"], "digest_ref": None, "repo_digests": []}
        repo = split_image_ref(old[0]["image_ref"] or "")[0] if old[0]["image_ref"] else None
        pins[service] = pinned_ref(previous, repo)
        restore.append({"service": service, "from": new[0]["image_id"] if new else None, "to": pins[service]})
    return {"pins": pins, "remove": remove, "restore": restore}


def rollback_override(pins: dict[str, str]) -> str:
    """A compose override file (JSON is YAML) that pins each service's image."""
    return json.dumps({"services": {service: {"image": ref} for service, ref in sorted(pins.items())}}, indent=2)
