#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecr_image_info
short_description: Resolve ECR image tags to the digests they point at
version_added: 0.1.0
description:
  - Looks up each image (C(<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>))
    with ECR's C(DescribeImages) and returns the digest it points at now, and the
    reference pinned to it (C(<registry>/<repository>@sha256:...)).
  - A release pins its images this way, so that every instance runs exactly the
    image that was tested, whatever the tag points at later.
  - Images of other accounts and regions are asked of their own registry (cross-account
    pulls need C(ecr:DescribeImages) on that repository).
  - Fails, naming each missing image and what to do, when a repository or a tag is not
    there; nothing is changed either way.
author:
  - mlops.deploy developers (@mlops-deploy)
options:
  images:
    description:
      - Image references. Without a registry host, O(registry_id) and the module's
        region give it. A reference already pinned by digest is checked to exist.
    type: list
    elements: str
    required: true
  registry_id:
    description:
      - The account of references that name no registry. Default, none (then every
        reference must name its registry).
    type: str
notes:
  - Needs C(ecr:DescribeImages) on the repositories.
extends_documentation_fragment:
  - mlops.deploy.attributes.read_only
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Pin the model API image of this release
  mlops.deploy.ecr_image_info:
    images:
      - 123456789012.dkr.ecr.eu-west-1.amazonaws.com/titanic-api:1.4.2
  register: api_image

- name: Use the pinned reference
  ansible.builtin.debug:
    msg: "{{ api_image.pinned['123456789012.dkr.ecr.eu-west-1.amazonaws.com/titanic-api:1.4.2'] }}"
"""

RETURN = r"""
images:
  description: One entry per image given, in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    image:
      description: The reference as given.
      type: str
    registry:
      description: The registry host.
      type: str
    repository:
      description: The repository.
      type: str
    tag:
      description: The tag asked for (none for a reference pinned by digest).
      type: str
    digest:
      description: The manifest digest the reference points at.
      type: str
      sample: sha256:4c2e7a...
    pinned:
      description: The reference pinned to that digest.
      type: str
      sample: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/titanic-api@sha256:4c2e7a...
    tags:
      description: Every tag that points at the same image.
      type: list
      elements: str
    size:
      description: The image's size in bytes, as ECR reports it.
      type: int
    pushed_at:
      description: When the image was pushed (ISO 8601).
      type: str
    media_type:
      description: The manifest's media type.
      type: str
pinned:
  description: Each reference given, mapped to its pinned form.
  returned: always
  type: dict
"""

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule says so

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.mlops.deploy.plugins.module_utils._ecr_images import ImageError, resolve_all

NOT_FOUND = ("RepositoryNotFoundException", "ImageNotFoundException")


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "images": {"type": "list", "elements": "str", "required": True},
            "registry_id": {"type": "str"},
        },
        supports_check_mode=True,
    )
    clients = {}

    def describe(region, registry_id, repository, image_id):
        if region not in clients:
            clients[region] = module.client("ecr", retry_decorator=AWSRetry.jittered_backoff(), region=region)
        try:
            answer = clients[region].describe_images(
                registryId=registry_id, repositoryName=repository, imageIds=[image_id], aws_retry=True
            )
        except is_boto3_error_code(list(NOT_FOUND)) as exc:
            raise LookupError(exc.response["Error"]["Code"]) from None
        return answer["imageDetails"][0]

    try:
        images, missing = resolve_all(module.params["images"], describe, module.params["registry_id"], module.region)
    except ImageError as exc:
        module.fail_json(msg=str(exc))
    except (ClientError, BotoCoreError) as exc:  # pylint: disable=duplicate-except
        module.fail_json_aws(exc, msg="could not read images from ECR")
    if missing:
        module.fail_json(msg="; ".join(missing), images=images)
    module.exit_json(changed=False, images=images, pinned={i["image"]: i["pinned"] for i in images})


if __name__ == "__main__":
    main()
