# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A compose project as the engine shows it, and as its file describes it.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. ``container_state`` reads one ``docker inspect``
document; a *snapshot* is ``group_by_service`` of those (``{service: [states]}``);
the rest reads the file's model (``docker compose config --format json``).
"""

from __future__ import annotations

import hashlib
import json

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_CONFIG_HASH = "com.docker.compose.config-hash"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_IMAGE = "com.docker.compose.image"


# ----------------------------------------------------------------- containers


def container_state(info: dict) -> dict:
    """The parts of a ``docker inspect`` container document the deploy looks at."""
    config = info.get("Config") or {}
    labels = config.get("Labels") or {}
    state = info.get("State") or {}
    check = (config.get("Healthcheck") or {}).get("Test") or []
    try:
        number = int(labels.get(LABEL_NUMBER) or 0)
    except ValueError:
        number = 0
    return {
        "id": info["Id"],
        "name": (info.get("Name") or "").lstrip("/"),
        "service": labels.get(LABEL_SERVICE),
        "number": number,
        "oneoff": labels.get(LABEL_ONEOFF) == "True",
        "image_id": info.get("Image"),
        "image_ref": config.get("Image"),
        "config_hash": labels.get(LABEL_CONFIG_HASH),
        "state": state.get("Status"),
        "health": (state.get("Health") or {}).get("Status"),
        "has_healthcheck": bool(check) and check[0] != "NONE",
        "started_at": state.get("StartedAt"),
        "restart_count": info.get("RestartCount", 0),
        "exit_code": state.get("ExitCode"),
        "image_label": labels.get(LABEL_IMAGE),
        "networks": {
            name: (settings or {}).get("NetworkID")
            for name, settings in ((info.get("NetworkSettings") or {}).get("Networks") or {}).items()
        },
        "volumes": sorted(m.get("Name") for m in info.get("Mounts") or [] if m.get("Type") == "volume"),
    }


def group_by_service(states: list[dict]) -> dict[str, list[dict]]:
    """``{service: [container states sorted by number]}``, one-off containers left out."""
    grouped: dict[str, list[dict]] = {}
    for state in states:
        if state["oneoff"] or not state["service"]:
            continue
        grouped.setdefault(state["service"], []).append(state)
    for containers in grouped.values():
        containers.sort(key=lambda c: (c["number"], c["name"]))
    return grouped


def diff_snapshots(before: dict, after: dict, services: list[str]) -> dict[str, list[str]]:
    """What really happened to ``services`` between two snapshots (``group_by_service`` maps).

    A service is ``recreated`` when its container IDs changed and it had containers,
    ``created`` when it had none, ``removed`` when it has none left, ``restarted`` when
    the same containers started again (their StartedAt moved).
    """
    diff: dict[str, list[str]] = {"recreated": [], "created": [], "removed": [], "restarted": []}
    for service in sorted(services):
        old = before.get(service, [])
        new = after.get(service, [])
        old_ids = [c["id"] for c in old]
        new_ids = [c["id"] for c in new]
        if old_ids != new_ids:
            if not old:
                diff["created"].append(service)
            elif not new:
                diff["removed"].append(service)
            else:
                diff["recreated"].append(service)
        elif [c["started_at"] for c in old] != [c["started_at"] for c in new]:
            diff["restarted"].append(service)
    return diff


# ----------------------------------------------------------- the file's model


def replicas(service_model: dict) -> int:
    for value in (service_model.get("scale"), (service_model.get("deploy") or {}).get("replicas")):
        if value is not None:
            return int(value)
    return 1


def orphans(before: dict, model_services: dict) -> list[str]:
    """Services with containers in the project but not in the compose file."""
    return sorted(service for service in before if service not in model_services)


def with_dependencies(targets: list[str], model_services: dict) -> list[str]:
    """``targets`` and every service they depend on (``depends_on``, transitively), sorted:
    what ``docker compose up <targets>`` converges."""
    found: set[str] = set()
    todo = list(targets)
    while todo:
        service = todo.pop()
        if service in found or service not in model_services:
            continue
        found.add(service)
        todo.extend(model_services[service].get("depends_on") or {})
    return sorted(found)


# Go's encoding/json escapes these inside strings (HTML-safe output); Python's does not.
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json_sha256(value: object) -> str:
    """sha256 (hex) of ``value`` encoded as Go's ``json.Marshal`` does: compact, keys in the
    order given (the order of compose's own JSON output), HTML characters escaped.

    Compose labels each network with this hash of its definition
    (``com.docker.compose.config-hash``). A value this encoding does not reproduce byte for
    byte (rare: control characters, floats) gives another hash, which only ever means
    "cannot tell it is unchanged".
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _GO_ESCAPES.items():
        text = text.replace(char, escaped)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def service_networks(model: dict, service: str) -> dict[str, dict]:
    """``{network name on the engine: definition}`` of the networks a service joins."""
    networks = {}
    for key in model["services"][service].get("networks") or {}:
        definition = (model.get("networks") or {}).get(key) or {}
        networks[definition.get("name") or key] = definition
    return networks


def service_volumes(model: dict, service: str) -> list[str]:
    """Engine names of the named volumes a service mounts."""
    names = []
    for mount in model["services"][service].get("volumes") or []:
        if mount.get("type") == "volume" and mount.get("source"):
            definition = (model.get("volumes") or {}).get(mount["source"]) or {}
            names.append(definition.get("name") or mount["source"])
    return sorted(set(names))
