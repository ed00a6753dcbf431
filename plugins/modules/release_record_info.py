#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_record_info
short_description: Read the release history of endpoints from SSM Parameter Store (what ran, what to roll back to)
version_added: 0.1.0
description:
  - Reads the release records that M(mlops.deploy.release_record) wrote, from the history of
    the record parameter (C(GetParameterHistory), fully paginated; SSM keeps the last 100 versions).
  - Returns, per endpoint, the history newest first, the RV(current) release, the RV(previous)
    one - what a rollback goes back to, the newest B(successful) release older than the current
    one with another release id - and the RV(last_successful) one.
  - Looks up a named release (O(release_id), for a rollback to it or a promotion of it), or
    the release that was running at a given time (O(at)). O(since) and O(until) narrow
    RV(history) to a time window ("what was deployed to prod last Tuesday").
  - Without O(endpoint), reads every endpoint recorded for O(env).
  - Read-only; RV(ignore:changed) is always V(false).
author:
  - mlops.deploy developers (@mlops-deploy)
options:
  env:
    description:
      - The environment; records are under C(/mlops/<env>/releases/).
    type: str
  endpoint:
    description:
      - One endpoint. Without it, every endpoint recorded for O(env).
    type: str
  name:
    description:
      - The full name of one record parameter, instead of O(env) and O(endpoint).
    type: str
  release_id:
    description:
      - Find this release in the history (RV(release)) - its newest successful record, or its
        newest record when it never succeeded. V(null) when it is not there.
    type: str
  at:
    description:
      - Find the release that was current at this time (RV(release)) - the newest record
        written at or before it.
      - An ISO 8601 time (V(2026-11-17T15:00:00Z); without a zone it is UTC), a relative age
        (V(30m), V(2h), V(3d), V(1w)), V(now), or an epoch in seconds or milliseconds.
    type: str
  since:
    description:
      - Only history entries written at or after this time (same forms as O(at)).
    type: str
    aliases: [start_time]
  until:
    description:
      - Only history entries written before this time (same forms as O(at)).
      - The alias O(end_time) reads the same and keeps ansible-lint from taking a templated
        value for the task keyword C(until).
    type: str
    aliases: [end_time]
notes:
  - Needs C(ssm:GetParameterHistory) and, without O(endpoint), C(ssm:GetParametersByPath).
  - The time of an entry is when SSM stored it (C(LastModifiedDate)), not the controller's clock.
  - A version whose value is not a release record is listed with C(valid=false) and its C(raw) value.
extends_documentation_fragment:
  - mlops.deploy.attributes.read_only
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: mlops.deploy.release_record
"""

EXAMPLES = r"""
- name: What runs on prod's titanic endpoint, and what a rollback goes back to
  mlops.deploy.release_record_info:
    env: prod
    endpoint: titanic
  register: releases

- name: Roll back to it
  ansible.builtin.debug:
    msg: >-
      rolling back from {{ releases.current.release_id }}
      to {{ releases.previous.release_id }} ({{ releases.previous.bundle }})
  when: releases.previous is not none

- name: What was deployed to every prod endpoint on Tuesday 17 November
  mlops.deploy.release_record_info:
    env: prod
    since: "2026-11-17T00:00:00Z"
    until: "2026-11-18T00:00:00Z"
  register: tuesday

- name: What was running on the titanic endpoint at 15:00 that day
  mlops.deploy.release_record_info:
    env: prod
    endpoint: titanic
    at: "2026-11-17T15:00:00Z"
  register: at_three

- name: The release staging ran, to promote it to prod without a rebuild
  mlops.deploy.release_record_info:
    env: staging
    endpoint: titanic
    release_id: "{{ release }}"
  register: promoted
  failed_when: promoted.release is none
"""


RETURN = r"""
releases:
  description: One entry per endpoint read, sorted by endpoint.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The record parameter.
      type: str
      sample: /mlops/prod/releases/titanic
    endpoint:
      description: The endpoint (the last part of the name).
      type: str
      sample: titanic
    versions:
      description: How many records the parameter's history holds.
      type: int
      sample: 12
    current:
      description: The newest record (same fields as RV(history)), V(null) when none.
      type: dict
    previous:
      description: What a rollback goes back to, V(null) when there is nothing to go back to.
      type: dict
    last_successful:
      description: The newest successful record (the current one when it succeeded).
      type: dict
    release:
      description: The record O(release_id) or O(at) found, V(null) when none.
      type: dict
      returned: when O(release_id) or O(at) is given
    history:
      description: The records, newest first, within O(since) and O(until).
      type: list
      elements: dict
      contains:
        version:
          description: The SSM parameter version.
          type: int
          sample: 7
        modified_at:
          description: When SSM stored it (ISO 8601, UTC, milliseconds).
          type: str
          sample: "2026-11-17T14:02:11.250Z"
        modified_by:
          description: The IAM identity that wrote it, as SSM recorded it.
          type: str
          sample: arn:aws:iam::123456789012:user/ci-deployer
        valid:
          description: Whether the value is a release record.
          type: bool
        release_id:
          description: The release id.
          type: str
          sample: r-2026-11-17.2
        bundle:
          description: The bundle's S3 URL.
          type: str
        bundle_sha256:
          description: The bundle's sha256.
          type: str
        manifest_sha256:
          description: The sha256 of the bundle's manifest.
          type: str
        digests:
          description: Service name to image digest.
          type: dict
        result:
          description: V(success) or V(failed).
          type: str
        extra:
          description: The extra fields recorded.
          type: dict
        deployed_by:
          description: Who deployed.
          type: str
        deployed_at:
          description: When the deploy recorded it.
          type: str
        raw:
          description: The value, when it is not a release record.
          type: str
current:
  description: With one endpoint (O(endpoint) or O(name)), RV(releases[].current).
  returned: when one endpoint is read
  type: dict
previous:
  description: With one endpoint, RV(releases[].previous) - what a rollback goes back to.
  returned: when one endpoint is read
  type: dict
last_successful:
  description: With one endpoint, RV(releases[].last_successful).
  returned: when one endpoint is read
  type: dict
release:
  description: With one endpoint, RV(releases[].release).
  returned: when one endpoint is read and O(release_id) or O(at) is given
  type: dict
history:
  description: With one endpoint, RV(releases[].history).
  returned: when one endpoint is read
  type: list
  elements: dict
"""

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule says so

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.mlops.deploy.plugins.module_utils._release_record import (
    ReleaseRecorder,
    record_name,
    record_path,
)
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_parameters import ParameterError, ParameterStore


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "env": {"type": "str"},
            "endpoint": {"type": "str"},
            "name": {"type": "str"},
            "release_id": {"type": "str"},
            "at": {"type": "str"},
            "since": {"type": "str", "aliases": ["start_time"]},
            "until": {"type": "str", "aliases": ["end_time"]},
        },
        supports_check_mode=True,
        mutually_exclusive=[["name", "env"], ["name", "endpoint"], ["release_id", "at"]],
        required_one_of=[["name", "env"]],
        required_by={"endpoint": "env"},
    )
    params = module.params
    store = ParameterStore.connect(module.client)
    single = bool(params["name"] or params["endpoint"])
    try:
        if single:
            names = [record_name(params["env"], params["endpoint"], params["name"])]
        else:
            names = store.names_under(record_path(params["env"]))
        releases = ReleaseRecorder(store).query(
            names,
            release_id=params["release_id"],
            at=params["at"],
            since=params["since"],
            until=params["until"],
        )
    except ParameterError as exc:
        module.fail_json(msg=str(exc))
    except (ClientError, BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="could not read the release records in %s" % module.region)

    result = {"changed": False, "releases": releases}
    if single:
        result.update({key: value for key, value in releases[0].items() if key not in ("name", "endpoint", "versions")})
    module.exit_json(**result)


if __name__ == "__main__":
    main()
