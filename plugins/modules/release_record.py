#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_record
short_description: Record a release of an endpoint in SSM Parameter Store (the audit trail of deploys)
version_added: 0.1.0
description:
  - Writes the release that now runs on an environment's endpoint to one SSM parameter,
    by default C(/mlops/<env>/releases/<endpoint>), as JSON
    C({release_id, bundle, bundle_sha256, manifest_sha256, digests, result, extra, deployed_by, deployed_at}).
  - Each write is a new version of the parameter; SSM keeps the last 100 versions with the time
    and the IAM identity that wrote them, so the parameter's history is the audit trail that
    M(mlops.deploy.release_record_info) reads ("what ran in prod last Tuesday", "what do we
    roll back to").
  - Idempotent - when the current record already describes the same release (same
    O(release_id), O(bundle), sha256s, O(digests), O(result) and O(extra)), nothing is written
    and RV(ignore:changed) is V(false); C(deployed_by) and C(deployed_at) stay those of the
    first write. A rollback to an older release is a new record.
  - Fails before writing anything when a value is malformed (a digest that is a tag, a bundle
    that is not an C(s3://) URL) or when the record would exceed the 4 KB a standard SSM
    parameter value holds.
author:
  - mlops.deploy developers (@mlops-deploy)
options:
  env:
    description:
      - The environment; with O(endpoint), the parameter is C(/mlops/<env>/releases/<endpoint>).
      - Letters, digits, C(.), C(-) and C(_).
    type: str
  endpoint:
    description:
      - The endpoint (model API) the release runs; letters, digits, C(.), C(-) and C(_).
    type: str
  name:
    description:
      - The full name of the record parameter, instead of O(env) and O(endpoint).
    type: str
  release_id:
    description:
      - The release id (letters, digits, C(.), C(-) and C(_), at most 128).
    type: str
    required: true
  bundle:
    description:
      - The S3 URL of the release bundle (V(s3://bucket/releases/prod/r-42.zip)); a rollback
        downloads it again.
    type: str
  bundle_sha256:
    description:
      - The sha256 of the bundle zip (RV(mlops.deploy.release_bundle#module:sha256)).
    type: str
  manifest_sha256:
    description:
      - The sha256 of the bundle's manifest (RV(mlops.deploy.release_bundle#module:manifest_sha256)),
        what instances verify the bundle against.
    type: str
  digests:
    description:
      - The images that ran, service name to image pinned to a digest
        (C(<repository>@sha256:<64 hex>)). Tags are refused.
    type: dict
    default: {}
  result:
    description:
      - How the deploy ended. Only V(success) records are rollback targets.
    type: str
    choices: [success, failed]
    default: success
  deployed_by:
    description:
      - Who deployed. Defaults to C(<user>@<host>) of the controller; in CI, the person or
        pipeline reads better. The IAM identity that wrote the parameter is recorded by SSM
        anyway (RV(mlops.deploy.release_record_info#module:releases[].history[].modified_by)).
    type: str
  extra:
    description:
      - Anything else to keep with the record (the git commit, the CI job URL...). Counts
        towards the 4 KB limit.
    type: dict
    default: {}
notes:
  - Needs C(ssm:GetParameter) and C(ssm:PutParameter) on the record parameter.
  - The records are standard-tier C(String) parameters, free of charge, at most 4 KB each.
attributes:
  check_mode:
    support: full
    description: Reads the current record and reports whether it would be written, without writing.
  diff_mode:
    support: full
    description: Shows the current record and the new one.
  idempotent:
    support: full
    description: Recording the release that is already recorded changes nothing.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: mlops.deploy.release_record_info
  - module: mlops.deploy.release_bundle
"""

EXAMPLES = r"""
- name: Record what now runs on the prod titanic endpoint
  mlops.deploy.release_record:
    env: prod
    endpoint: titanic
    release_id: "{{ release_id }}"
    bundle: "s3://{{ bucket }}/releases/prod/{{ release_id }}.zip"
    bundle_sha256: "{{ bundle.sha256 }}"
    manifest_sha256: "{{ bundle.manifest_sha256 }}"
    digests:
      api: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/titanic@sha256:{{ image_digest }}"
    deployed_by: "{{ lookup('ansible.builtin.env', 'GITHUB_ACTOR') }}"
    extra:
      commit: "{{ lookup('ansible.builtin.env', 'GITHUB_SHA') }}"

- name: Record a deploy that failed (not a rollback target)
  mlops.deploy.release_record:
    name: /mlops/staging/releases/titanic
    release_id: "{{ release_id }}"
    result: failed
"""

RETURN = r"""
name:
  description: The record parameter.
  returned: always
  type: str
  sample: /mlops/prod/releases/titanic
record:
  description: The record now current (the new one, or the one that already said the same).
  returned: always
  type: dict
  contains:
    release_id:
      description: The release id.
      type: str
      sample: r-2026-11-21.1
    bundle:
      description: The bundle's S3 URL.
      type: str
      sample: s3://mlops-releases/releases/prod/r-2026-11-21.1.zip
    bundle_sha256:
      description: The bundle's sha256.
      type: str
    manifest_sha256:
      description: The sha256 of the bundle's manifest.
      type: str
    digests:
      description: Service name to image digest.
      type: dict
      sample: {api: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/titanic@sha256:9f86d0...0f00a08"}
    result:
      description: V(success) or V(failed).
      type: str
      sample: success
    extra:
      description: The extra fields.
      type: dict
    deployed_by:
      description: Who deployed.
      type: str
      sample: alice@ci-runner-7
    deployed_at:
      description: When it was first recorded (ISO 8601, UTC).
      type: str
      sample: "2026-11-21T10:04:12Z"
    version:
      description: The SSM parameter version holding it (V(null) in check mode when it would be new).
      type: int
      sample: 7
version:
  description: The SSM parameter version now current (V(null) in check mode when a write is pending).
  returned: always
  type: int
  sample: 7
msg:
  description: What happened.
  returned: always
  type: str
  sample: recorded in /mlops/prod/releases/titanic release r-2026-11-21.1 (success)
"""

import json

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule says so

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.mlops.deploy.plugins.module_utils._release_record import (
    RECORD_KEYS,
    ReleaseRecorder,
    build_record,
    record_name,
)
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_parameters import (
    ParameterError,
    ParameterStore,
    default_identity,
)


def _diffable(record):
    if not record:
        return ""
    return json.dumps({key: record.get(key) for key in RECORD_KEYS}, indent=2, sort_keys=True) + "\n"


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "env": {"type": "str"},
            "endpoint": {"type": "str"},
            "name": {"type": "str"},
            "release_id": {"type": "str", "required": True},
            "bundle": {"type": "str"},
            "bundle_sha256": {"type": "str"},
            "manifest_sha256": {"type": "str"},
            "digests": {"type": "dict", "default": {}},
            "result": {"type": "str", "choices": ["success", "failed"], "default": "success"},
            "deployed_by": {"type": "str"},
            "extra": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
        mutually_exclusive=[["name", "env"], ["name", "endpoint"]],
        required_one_of=[["name", "env"]],
        required_together=[["env", "endpoint"]],
    )
    params = module.params
    try:
        name = record_name(params["env"], params["endpoint"], params["name"])
        record = build_record(
            params["release_id"],
            params["bundle"],
            params["bundle_sha256"],
            params["manifest_sha256"],
            params["digests"],
            params["result"],
            params["deployed_by"] or default_identity(),
            params["extra"],
        )
        result = ReleaseRecorder(ParameterStore.connect(module.client)).record(name, record, module.check_mode)
    except ParameterError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except (ClientError, BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="could not read or write the release record in %s" % module.region)

    before = result.pop("before")
    if module._diff:
        result["diff"] = {
            "before_header": name,
            "after_header": name,
            "before": _diffable(before),
            "after": _diffable(result["record"]),
        }
    module.exit_json(name=name, version=result["record"].get("version"), **result)


if __name__ == "__main__":
    main()
