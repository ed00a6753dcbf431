# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Image references and digests as compose_deploy tracks them, and which images to prune.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Plain values in (image references, the engine's image
documents), plain values out.
"""

from __future__ import annotations

from collections.abc import Callable

from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError

# ----------------------------------------------------------------- references


def split_image_ref(ref: str) -> tuple[str, str | None, str | None]:
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


def repo_forms(repo: str) -> set[str]:
    """Docker shows Docker Hub images without ``docker.io/`` and ``library/``."""
    forms = {repo}
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "index.docker.io/"):
        if repo.startswith(prefix):
            forms.add(repo[len(prefix) :])
    if "/" not in repo:
        forms.update({"library/" + repo, "docker.io/library/" + repo})
    return forms


def repo_digest(repo_digests: list[str] | None, repo: str) -> str | None:
    """The ``repo@sha256:...`` entry of ``repo`` in an image's RepoDigests, or None."""
    forms = repo_forms(repo)
    for entry in sorted(repo_digests or []):
        name, _sep, digest = entry.partition("@")
        if name in forms and digest:
            return entry
    return None


def digest_of(entry: str | None) -> str | None:
    """``sha256:...`` of a ``repo@sha256:...`` entry (None stays None)."""
    return entry.partition("@")[2] if entry else None


# ------------------------------------------------------ what the engine holds


def stale_images(
    refs: dict[str, str],
    local: dict[str, dict | None],
    registry_digest: Callable[[str], str],
    tolerate_errors: bool = False,
) -> dict[str, str | None]:
    """Services whose image must be pulled: ``{service: registry digest}``.

    ``local``: service -> image summary or None; ``registry_digest(ref)`` asks the
    registry (through the engine, nothing pulled) and raises DeployError when it cannot.
    An image pinned by digest and present is never stale. With ``tolerate_errors`` a
    registry that cannot answer marks the image stale with digest None, so that the pull
    itself reports why.
    """
    stale: dict[str, str | None] = {}
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


def image_summary(inspect: dict | None, ref: str) -> dict | None:
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


def pinned_ref(image: dict, fallback_repo: str | None = None) -> str:
    """How to point compose at exactly ``image`` again: ``repo@sha256:...``, else its ID."""
    if image.get("digest_ref"):
        return image["digest_ref"]
    for entry in image.get("repo_digests") or []:
        if fallback_repo is None or split_image_ref(entry)[0] in repo_forms(fallback_repo):
            return entry
    return image["id"]


# ---------------------------------------------------------------------- prune


def plan_prune(images: list[dict], repos: list[str], in_use: set[str], keep: int) -> list[dict]:
    """Image references to remove: per repository of the project, everything but the
    first ``keep`` images (those in use first, then the newest) and those any container uses.

    ``images``: ``docker image inspect``-like dicts (Id, Created, RepoTags, RepoDigests).
    Returns ``[{"image": id, "refs": [refs to remove], "repository": repo}]``.
    """
    plan = []
    for repo in sorted(set(repos)):
        forms = repo_forms(repo)
        mine = [image for image in images if _refs_in(image, forms)]
        # Images in use first (kept anyway, and counted), then the newest.
        mine.sort(key=lambda image: (image["Id"] in in_use, image.get("Created") or 0, image["Id"]), reverse=True)
        for image in mine[keep:]:
            if image["Id"] in in_use:
                continue
            plan.append({"image": image["Id"], "refs": _refs_in(image, forms), "repository": repo})
    return plan


def _refs_in(image: dict, forms: set[str]) -> list[str]:
    """An image's references (digests first, then tags) that belong to one repository."""
    tags = [t for t in image.get("RepoTags") or [] if split_image_ref(t)[0] in forms]
    digests = [d for d in image.get("RepoDigests") or [] if d.partition("@")[0] in forms]
    return digests + tags
