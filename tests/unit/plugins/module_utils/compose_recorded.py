"""Recorded compose and engine answers for the unit tests of the ``_compose_*`` module
utils: output captured from docker compose 2.40 and the Docker engine
(tests/unit/fixtures/compose, written by capture.py there), read back."""

from __future__ import annotations

import json
from pathlib import Path

from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError
from ansible_collections.mlops.deploy.plugins.module_utils._compose_events import parse_events
from ansible_collections.mlops.deploy.plugins.module_utils._compose_images import image_summary
from ansible_collections.mlops.deploy.plugins.module_utils._compose_state import container_state, group_by_service

FIXTURES = Path(__file__).resolve().parents[3] / "unit" / "fixtures" / "compose"

ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"

REPO = f"{ECR}/mlops-test/model-api"


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def events(name: str) -> list[dict]:
    return parse_events(text(f"{name}.stderr")) + parse_events(text(f"{name}.stdout"))


def snapshot(name: str) -> dict:
    return group_by_service([container_state(doc) for doc in json.loads(text(f"{name}.json"))])


def images() -> list[dict]:
    return json.loads(text("images_api.json"))


def image_id(tag: str) -> str:
    return next(img["Id"] for img in images() if f"{REPO}:{tag}" in img["RepoTags"])


def digest_ref(tag: str) -> str:
    return next(img["RepoDigests"][0] for img in images() if f"{REPO}:{tag}" in img["RepoTags"])


def config_hashes():
    return {line.split()[0]: line.split()[1] for line in text("config_hash.stdout").splitlines()}


def local_image(tag):
    img = next(i for i in images() if f"{REPO}:{tag}" in i["RepoTags"])
    return image_summary(img, f"{REPO}:{tag}")


def image_of(image_id_):
    img = next((i for i in images() if i["Id"] == image_id_), None)
    if img is None:
        return None
    return {"id": img["Id"], "digest_ref": None, "repo_digests": img["RepoDigests"]}


def registry(answers):
    def registry_digest(ref):
        if answers.get(ref) is None:
            raise DeployError("cannot read %s from its registry: manifest unknown" % ref)
        return answers[ref]

    return registry_digest


def compose_model() -> dict:
    return json.loads(text("config.stdout"))


def network_doc() -> dict:
    return json.loads(text("network_inspect.json"))[0]


# --------------------------------------------------------------------------- a recorded engine and CLI


def images_with(capture: str) -> list[dict]:
    """The captured image list with the project's tag (``capture``) on the image of
    ``capture`` (v1, v2 or broken), as the engine held it at that step of the capture."""
    docs = json.loads(text("images_api.json"))
    tag = f"{REPO}:capture"
    for doc in docs:
        doc["RepoTags"] = [t for t in doc["RepoTags"] if t != tag]
        if f"{REPO}:{capture}" in doc["RepoTags"]:
            doc["RepoTags"].append(tag)
    return docs


class RecordedEngine:
    """Answers as the Docker engine did during the capture: ``snapshots`` are the project's
    containers at each look (``inspect_*`` fixture names, the last one repeated), images
    from images_api.json, the registry's digests from ``registry`` (ref -> digest; any
    other ref is "manifest unknown"), the network from network_inspect.json. Records
    what was asked and what was removed."""

    def __init__(self, snapshots: list[str], capture: str = "v1", registry: dict | None = None, logs=None):
        self.snapshots = list(snapshots)
        self.docs = images_with(capture)
        self.registry = registry or {}
        self.log_lines = logs or ["Traceback (most recent call last):", "ModelLoadError: model.json"]
        self.looks = 0
        self.removed: list[str] = []
        self.calls: list[str] = []

    def project_containers(self, project: str) -> dict:
        self.calls.append("project_containers")
        name = self.snapshots[min(self.looks, len(self.snapshots) - 1)]
        self.looks += 1
        return snapshot(name)

    def image(self, ref: str) -> dict | None:
        self.calls.append("image")
        for doc in self.docs:
            if ref == doc["Id"] or ref in doc["RepoTags"] or ref in doc["RepoDigests"]:
                return doc
        return None

    def registry_digest(self, ref: str) -> str:
        self.calls.append("registry_digest")
        if ref not in self.registry:
            raise DeployError("cannot read %s from its registry: manifest unknown" % ref)
        return self.registry[ref]

    def networks(self, names: list[str]) -> dict:
        self.calls.append("networks")
        net = network_doc()
        return {name: ({"id": net["Id"], "labels": net["Labels"]} if name == net["Name"] else None) for name in names}

    def images(self) -> list[dict]:
        return self.docs

    def images_in_use(self) -> set[str]:
        name = self.snapshots[max(0, min(self.looks, len(self.snapshots)) - 1)]
        return {c["image_id"] for containers in snapshot(name).values() for c in containers}

    def remove_image(self, ref: str) -> str | None:
        self.removed.append(ref)
        return None

    def logs(self, container_id: str, lines: int = 30) -> list[str]:
        return list(self.log_lines)


class RecordedCompose:
    """``run`` for a real ComposeCli: answers each compose command with captured output
    (``answers``: command word -> fixture name, e.g. ``{"pull": "pull_new_digest",
    "up": "up_recreate"}``; several names are used in turn) and records every argv."""

    INSPECTION = {"version": "version.txt", "config": "config", "config_hash": "config_hash"}

    def __init__(self, **answers):
        self.answers = {word: [names] if isinstance(names, str) else list(names) for word, names in answers.items()}
        self.argvs: list[list[str]] = []
        self.override = None

    def __call__(self, argv: list[str], env: dict) -> tuple[int, str, str]:
        self.argvs.append(list(argv))
        if "version" in argv:
            return 0, text("version.txt"), ""
        if "config" in argv:
            name = "config_hash" if "--hash" in argv else "config"
        else:
            word = next(w for w in ("pull", "up", "rm") if w in argv)
            if word == "up" and "-f" in argv[argv.index("-f") + 2 :]:  # a rollback's override file
                override = argv[argv.index("-f") + 2 :][1]
                with open(override, encoding="utf-8") as fh:
                    self.override = json.load(fh)
            queue = self.answers.get(word) or []
            assert queue, "unexpected compose %s: %s" % (word, argv)
            name = queue.pop(0) if len(queue) > 1 else queue[0]
            if name is None:
                return 0, "", ""
        return int(text(f"{name}.rc")), text(f"{name}.stdout"), text(f"{name}.stderr")

    def commands(self) -> list[list[str]]:
        """The argv of each compose command but the three read-only ones, from the command word on."""
        out = []
        for argv in self.argvs:
            if "version" in argv or "config" in argv:
                continue
            word = next(i for i, a in enumerate(argv) if a in ("pull", "up", "rm"))
            out.append(argv[word:])
        return out
