"""ECR's image read API (DescribeImages, ListImages, BatchGetImage) answered from the
sandbox's registry.

On AWS, what ``docker push`` sends to ECR is what the ECR API describes. In the sandbox
the pushes go to the registry standing in for ECR (``registry.py``) while the ECR API is
moto's, which never sees them (and whose PutImage computes digests that are not the
manifest's). So the sandbox's API endpoint (the one that serves SSM, reached through
``AWS_ENDPOINT_URL_ECR``) answers these three actions from the registry itself: tags,
manifest digests (``Docker-Content-Digest``), media types and sizes, with ECR's shapes,
pagination and errors. Repositories stay moto's (CreateRepository, DescribeRepositories
and every other ECR action are forwarded to it); an image of a repository moto does not
know is RepositoryNotFoundException, as on AWS.

GetAuthorizationToken goes to moto (whose recorder hands each caller a token of its own,
``moto_record.py``); ``authorization`` then names this sandbox's registry with its port in
``proxyEndpoint`` when it is not on 443 (several sandboxes on one machine), so ``docker
login`` with what ECR returns reaches it (``ecr_login``, ``get-login-password``).
"""

from __future__ import annotations

import json
import threading
import time

from ..config import Config
from ..registry import backend_socket
from ..registry_proxy import UnixConnection
from .errors import SsmError

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)


class EcrImages:
    """Answers the image read actions; ``repository_exists(name)`` asks moto."""

    ACTIONS = ("DescribeImages", "ListImages", "BatchGetImage")

    def __init__(self, config: Config, repository_exists) -> None:
        self.config = config
        self.repository_exists = repository_exists
        self._first_seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def authorization(self, answer: dict) -> dict:
        """moto's GetAuthorizationToken answer, its proxyEndpoint naming the registry as
        clients reach it: with the port when the sandbox's registry is not on 443 (a
        sandbox beside the machine's default one), so that ``docker login`` and pulls by
        that name go to this sandbox's registry."""
        for item in answer.get("authorizationData", []):
            # Only this sandbox's own registry moves to its port; a registry id of another
            # account keeps the endpoint moto names (one the sandbox does not serve).
            if item.get("proxyEndpoint") == f"https://{self.config.ecr_host}":
                item["proxyEndpoint"] = f"https://{self.config.registry_address}"
        return answer

    def handles(self, action: str) -> bool:
        return action in self.ACTIONS and self.config.registry_enabled

    def call(self, action: str, request: dict, account: str | None = None) -> dict:
        """``account``: the caller's; its own registry unless the request names another."""
        repo = request.get("repositoryName")
        if not repo:
            raise SsmError("InvalidParameterException", "repositoryName is required")
        registry_id = request.get("registryId") or account or self.config.account_id
        if registry_id != self.config.account_id or not self.repository_exists(repo):
            raise SsmError(
                "RepositoryNotFoundException",
                f"The repository with name '{repo}' does not exist in the registry with id '{registry_id}'",
            )
        return getattr(self, "_" + action)(repo, request)

    # -- actions ---------------------------------------------------------------------------

    def _DescribeImages(self, repo: str, request: dict) -> dict:  # noqa: N802
        images = self._images(repo)
        wanted = request.get("imageIds")
        if wanted:
            found, missing = _select(images, wanted)
            if missing:
                raise SsmError("ImageNotFoundException", _not_found(missing[0], repo, self.config.account_id))
            selected = found
        else:
            selected = images
        status = (request.get("filter") or {}).get("tagStatus", "ANY")
        if status == "TAGGED":
            selected = [i for i in selected if i["tags"]]
        elif status == "UNTAGGED":
            selected = [i for i in selected if not i["tags"]]
        page, token = _page(selected, request, default=100, most=1000)
        details = [
            {
                "registryId": self.config.account_id,
                "repositoryName": repo,
                "imageDigest": i["digest"],
                "imageTags": i["tags"],
                "imageSizeInBytes": i["size"],
                "imagePushedAt": i["pushed_at"],
                "imageManifestMediaType": i["media_type"],
            }
            for i in page
        ]
        return {"imageDetails": details, **({"nextToken": token} if token else {})}

    def _ListImages(self, repo: str, request: dict) -> dict:  # noqa: N802
        ids = [{"imageDigest": i["digest"], "imageTag": t} for i in self._images(repo) for t in i["tags"]]
        page, token = _page(ids, request, default=100, most=1000)
        return {"imageIds": page, **({"nextToken": token} if token else {})}

    def _BatchGetImage(self, repo: str, request: dict) -> dict:  # noqa: N802
        found, missing = _select(self._images(repo), request.get("imageIds") or [])
        accepted = request.get("acceptedMediaTypes") or list(MANIFEST_TYPES)
        images, failures = [], []
        for image in found:
            if image["media_type"] not in accepted:
                failures.append(
                    {
                        "imageId": {"imageDigest": image["digest"]},
                        "failureCode": "UnsupportedImageType",
                        "failureReason": f"Image media type {image['media_type']} is not accepted",
                    }
                )
                continue
            manifest, _media, _digest = self._registry("GET", f"/v2/{repo}/manifests/{image['digest']}")
            images.append(
                {
                    "registryId": self.config.account_id,
                    "repositoryName": repo,
                    "imageId": {
                        "imageDigest": image["digest"],
                        **({"imageTag": image["tags"][0]} if image["tags"] else {}),
                    },
                    "imageManifest": manifest.decode(),
                    "imageManifestMediaType": image["media_type"],
                }
            )
        for image_id in missing:
            failures.append(
                {"imageId": image_id, "failureCode": "ImageNotFound", "failureReason": "Requested image not found"}
            )
        return {"images": images, "failures": failures}

    # -- the registry ----------------------------------------------------------------------

    def _images(self, repo: str) -> list[dict]:
        """One entry per manifest digest: its tags, media type, size, first time seen."""
        try:
            body, _media, _digest = self._registry("GET", f"/v2/{repo}/tags/list")
        except LookupError:
            return []  # never pushed to: the repository exists, empty
        by_digest: dict[str, dict] = {}
        for tag in sorted(json.loads(body).get("tags") or []):
            manifest, media, digest = self._registry("GET", f"/v2/{repo}/manifests/{tag}")
            entry = by_digest.get(digest)
            if entry is None:
                entry = by_digest[digest] = {
                    "digest": digest,
                    "tags": [],
                    "media_type": media,
                    "size": _size(manifest),
                    "pushed_at": self._seen(f"{repo}@{digest}"),
                }
            entry["tags"].append(tag)
        return sorted(by_digest.values(), key=lambda i: (i["pushed_at"], i["digest"]))

    def _seen(self, key: str) -> float:
        # The registry keeps no push time; the first time the sandbox saw the image
        # stands in for imagePushedAt (stable from then on).
        with self._lock:
            return self._first_seen.setdefault(key, round(time.time(), 3))

    def _registry(self, method: str, path: str) -> tuple[bytes, str, str]:
        # The registry itself, behind its front: the sandbox's own reads are no client's
        # pulls and stay out of the call log.
        conn = UnixConnection(backend_socket(self.config), timeout=30)
        try:
            conn.request(method, path, headers={"Accept": ", ".join(MANIFEST_TYPES)})
            resp = conn.getresponse()
            body = resp.read()
        except OSError as exc:
            raise SsmError("ServerException", f"the sandbox registry did not answer {path}: {exc}", 500) from None
        finally:
            conn.close()
        if resp.status == 404:
            raise LookupError(path)
        if resp.status != 200:
            raise SsmError("ServerException", f"the sandbox registry answered {resp.status} to {path}", 500)
        return body, resp.getheader("Content-Type", ""), resp.getheader("Docker-Content-Digest", "")


def _size(manifest: bytes) -> int:
    try:
        doc = json.loads(manifest)
    except ValueError:
        return len(manifest)
    layers = doc.get("layers") or []
    return sum(int(layer.get("size", 0)) for layer in layers) + int((doc.get("config") or {}).get("size", 0))


def _select(images: list[dict], wanted: list[dict]) -> tuple[list[dict], list[dict]]:
    found, missing = [], []
    for image_id in wanted:
        match = next(
            (
                i
                for i in images
                if (not image_id.get("imageDigest") or i["digest"] == image_id["imageDigest"])
                and (not image_id.get("imageTag") or image_id["imageTag"] in i["tags"])
            ),
            None,
        )
        if match is None:
            missing.append(image_id)
        elif match not in found:
            found.append(match)
    return found, missing


def _not_found(image_id: dict, repo: str, registry_id: str) -> str:
    digest = image_id.get("imageDigest") or "null"
    tag = image_id.get("imageTag") or "null"
    return (
        f"The image with imageId {{imageDigest:'{digest}', imageTag:'{tag}'}} does not exist within the "
        f"repository with name '{repo}' in the registry with id '{registry_id}'"
    )


def _page(items: list, request: dict, default: int, most: int) -> tuple[list, str | None]:
    try:
        size = int(request.get("maxResults") or default)
        start = int(request.get("nextToken") or 0)
    except ValueError:
        raise SsmError("InvalidParameterException", "invalid nextToken or maxResults") from None
    if not 1 <= size <= most:
        raise SsmError("InvalidParameterException", f"maxResults must be between 1 and {most}")
    end = start + size
    return items[start:end], (str(end) if end < len(items) else None)
