"""ECR's "ECR Image Action" events, from the sandbox registry's push notifications.

On AWS, each successful image push to ECR puts an event on the account's default
EventBridge bus::

    {"source": "aws.ecr", "detail-type": "ECR Image Action",
     "detail": {"action-type": "PUSH", "result": "SUCCESS", "repository-name": "train",
                "image-digest": "sha256:...", "image-tag": "v3"}}

The sandbox's registry (Debian's docker-registry, ``registry.py``) posts its notifications
(``notifications.endpoints`` in its config) to the SSM service's
``POST /_sandbox/ecr/events``; each manifest push of a repository moto's ECR knows becomes
that event, put on moto's EventBridge (as ECR itself, not as a client: the sandbox's own
key). Layer (blob) pushes and pulls are not image actions and are left out; a push of a
manifest without a tag (by digest) has no ``image-tag``, as on AWS.
"""

from __future__ import annotations

import json
import logging

from .aws import client
from .ecr_images import MANIFEST_TYPES

log = logging.getLogger("mlops_sandbox.ssm.ecr_events")
DETAIL_TYPE = "ECR Image Action"


def image_actions(envelope: dict) -> list[dict]:
    """The ECR event details of a registry notification envelope (pushes of manifests)."""
    found = []
    for event in envelope.get("events") or []:
        target = event.get("target") or {}
        if event.get("action") != "push" or target.get("mediaType") not in MANIFEST_TYPES:
            continue
        if not target.get("repository") or not target.get("digest"):
            continue
        detail = {
            "result": "SUCCESS",
            "repository-name": target["repository"],
            "image-digest": target["digest"],
            "action-type": "PUSH",
        }
        if target.get("tag"):
            detail["image-tag"] = target["tag"]
        found.append(detail)
    return found


class EcrEvents:
    def __init__(self, config, repository_exists) -> None:
        self.config = config
        self.repository_exists = repository_exists
        self.events = client("events", config.moto_url, config.region)

    def handle(self, envelope: dict) -> dict:
        emitted = []
        for detail in image_actions(envelope):
            repository = detail["repository-name"]
            if not self.repository_exists(repository):
                log.info("push to %s: no such ECR repository in moto, no event", repository)
                continue
            answer = self.events.put_events(
                Entries=[
                    {"Source": "aws.ecr", "DetailType": DETAIL_TYPE, "Detail": json.dumps(detail), "Resources": []}
                ]
            )
            if answer.get("FailedEntryCount"):
                log.warning("EventBridge refused the ECR event %s: %s", detail, answer.get("Entries"))
                continue
            log.info("ECR Image Action: %s", detail)
            emitted.append(detail)
        return {"emitted": emitted}
