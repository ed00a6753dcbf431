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


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


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
