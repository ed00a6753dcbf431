"""EFS's first tag API for the sandbox's moto server.

community.aws.efs reads and changes a file system's tags with DescribeTags, CreateTags and
DeleteTags (``/2015-02-01/tags/<id>/``, ``create-tags``, ``delete-tags``), the API EFS
still answers beside ListTagsForResource/TagResource/UntagResource. moto has only the
newer one and answers the older with a 404, so provision.yml's file system could not be
made. This module routes the three to moto's own tag store, with EFS's answers.
"""

from __future__ import annotations

import json

from moto.efs import responses, urls

_JSON = {"Content-Type": "application/json"}
_installed = False


def _describe_tags(self):
    tags = self.efs_backend.list_tags_for_resource(self._get_param("FileSystemId"))
    return json.dumps({"Tags": tags}), _JSON


def _create_tags(self):
    tags = {tag["Key"]: tag.get("Value") for tag in self._get_param("Tags") or []}
    self.efs_backend.tag_resource(self._get_param("FileSystemId"), tags)
    return 204, _JSON, ""


def _delete_tags(self):
    self.efs_backend.untag_resource(self._get_param("FileSystemId"), self._get_param("TagKeys") or [])
    return 204, _JSON, ""


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    for path in ("tags/<file_system_id>/", "create-tags/<file_system_id>", "delete-tags/<file_system_id>"):
        urls.url_paths[f"/2015-02-01/{path}"] = urls.response.dispatch
    responses.EFSResponse.describe_tags = _describe_tags
    responses.EFSResponse.create_tags = _create_tags
    responses.EFSResponse.delete_tags = _delete_tags
