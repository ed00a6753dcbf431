# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Image references in ECR resolved to the digests they stand for.

PRIVATE to the mlops.deploy collection (the leading ``_`` says so): no stability
promise to other collections. Used by ``ecr_image_info`` (and so by the release flow,
which pins every image of a release bundle to its digest).

Plain values in and out; the only AWS call, ``DescribeImages``, goes through a
``describe(region, registry_id, repository, image_id)`` callable given by the module.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# An ECR host; a port only where a stand-in serves it on another one than 443 (the sandbox).
ECR_HOST = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?(?::\d{1,5})?$"
)
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ImageError(Exception):
    """A reference that cannot be resolved; the message says what to do."""


def parse_reference(ref: str, default_account: str | None = None, default_region: str | None = None) -> dict:
    """``registry/repository:tag`` or ``registry/repository@sha256:...`` split up.

    Returns ``{ref, host, account, region, repository, tag, digest}``. The registry host
    must be an ECR host; without one, ``default_account``/``default_region`` give it.
    """
    text = (ref or "").strip()
    if not text:
        raise ImageError("an empty image reference was given")
    name, _at, digest = text.partition("@")
    tag = None
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first):
        host, path = first, rest
    else:
        host, path = None, name
    if ":" in path.rsplit("/", 1)[-1]:
        path, tag = path.rsplit(":", 1)
    if host is None:
        if not (default_account and default_region):
            raise ImageError(
                "%s names no registry; write it as <account>.dkr.ecr.<region>.amazonaws.com/%s, "
                "or give registry_id and region" % (text, text)
            )
        host = "%s.dkr.ecr.%s.amazonaws.com" % (default_account, default_region)
    match = ECR_HOST.match(host)
    if not match:
        raise ImageError(
            "%s is not an ECR registry (expected <account>.dkr.ecr.<region>.amazonaws.com); "
            "only ECR images can be resolved" % host
        )
    if not REPOSITORY.match(path):
        raise ImageError("%r is not a valid repository name in %s" % (path, text))
    if digest and not DIGEST.match(digest):
        raise ImageError("%r is not a sha256 digest in %s" % (digest, text))
    if tag is not None and not TAG.match(tag):
        raise ImageError("%r is not a valid tag in %s" % (tag, text))
    if tag is None and not digest:
        tag = "latest"
    return {
        "ref": text,
        "host": host,
        "account": match.group("account"),
        "region": match.group("region"),
        "repository": path,
        "tag": tag,
        "digest": digest or None,
    }


def image_id(parsed: dict) -> dict:
    """The ``imageIds`` entry DescribeImages takes for a parsed reference."""
    if parsed["digest"]:
        return {"imageDigest": parsed["digest"]}
    return {"imageTag": parsed["tag"]}


def resolved(parsed: dict, detail: dict) -> dict:
    """What the module returns for one image, from its DescribeImages ``imageDetails`` entry."""
    digest = detail["imageDigest"]
    if parsed["digest"] and parsed["digest"] != digest:
        raise ImageError("ECR answered %s for %s" % (digest, parsed["ref"]))
    pushed = detail.get("imagePushedAt")
    return {
        "image": parsed["ref"],
        "registry": parsed["host"],
        "repository": parsed["repository"],
        "tag": parsed["tag"],
        "digest": digest,
        "pinned": "%s/%s@%s" % (parsed["host"], parsed["repository"], digest),
        "tags": sorted(detail.get("imageTags") or []),
        "size": detail.get("imageSizeInBytes"),
        "pushed_at": pushed.isoformat() if hasattr(pushed, "isoformat") else pushed,
        "media_type": detail.get("imageManifestMediaType"),
    }


def not_found_message(parsed: dict, error_code: str | None) -> str:
    """What to tell the user when DescribeImages says no."""
    where = "repository %s in account %s (%s)" % (parsed["repository"], parsed["account"], parsed["region"])
    if error_code == "RepositoryNotFoundException":
        return "%s: there is no %s; create it and push the image first" % (parsed["ref"], where)
    what = "digest %s" % parsed["digest"] if parsed["digest"] else "tag %s" % parsed["tag"]
    return "%s: no image with %s in %s; push it first (or check the tag)" % (parsed["ref"], what, where)


def resolve_all(
    refs: list[str],
    describe: Callable[[str, str, str, dict], dict],
    default_account: str | None = None,
    default_region: str | None = None,
) -> tuple[list[dict], list[str]]:
    """Resolve every reference (each once); ``describe`` raises LookupError(code) when absent.

    Returns ``(images, missing)``: the resolved entries in the order given, and the
    messages for the ones that are not in ECR.
    """
    images, missing, seen = [], [], {}
    for ref in refs:
        parsed = parse_reference(ref, default_account, default_region)
        key = (parsed["host"], parsed["repository"], parsed["tag"], parsed["digest"])
        if key not in seen:
            try:
                detail = describe(parsed["region"], parsed["account"], parsed["repository"], image_id(parsed))
            except LookupError as exc:
                missing.append(not_found_message(parsed, str(exc)))
                continue
            seen[key] = resolved(parsed, detail)
        images.append(dict(seen[key], image=parsed["ref"]))
    return images, missing
