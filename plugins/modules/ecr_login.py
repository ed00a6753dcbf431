#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecr_login
short_description: Log the docker client in to Amazon ECR, idempotently, without showing the token
version_added: 0.1.0
description:
  - Gets an ECR authorization token (C(ecr:GetAuthorizationToken)) and stores the docker
    credentials for the registry's proxy endpoint the way C(docker login) does, so that
    C(docker pull), C(docker compose pull) and M(mlops.deploy.compose_deploy) can pull
    from it.
  - "Region and account: from the arguments (O(region), or the C(AWS_REGION) variable;
    O(registry_ids)), else from the EC2 instance metadata service with IMDSv2 (a session
    token first; IMDSv1 is never used, so a metadata hop limit that keeps containers out is
    respected), else the usual AWS configuration (profile, config file). The metadata service
    honours botocore's C(AWS_EC2_METADATA_DISABLED), C(AWS_EC2_METADATA_SERVICE_ENDPOINT),
    C(AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE), C(AWS_METADATA_SERVICE_TIMEOUT) and
    C(AWS_METADATA_SERVICE_NUM_ATTEMPTS)."
  - Where the credentials go follows docker's rules for the registry host, read from
    C(<docker_config>/config.json). A C(credHelpers) entry for the registry wins, then
    C(credsStore), else the C(auths) section of the file. When that helper is C(ecr-login)
    (amazon-ecr-credential-helper), the module does nothing and says so in RV(msg); when the
    registry host is known beforehand (account from O(registry_ids) or the instance
    metadata), ECR is not even asked for a token.
    Another helper (C(pass), C(secretservice), ...) is used through its
    C(docker-credential-<name>) program, as C(docker login) would.
  - "Idempotent: RV(ignore:changed) is V(true) only when credentials for the registry were
    absent or are no longer accepted by the registry (asked with C(GET /v2/) and basic
    authentication). When the stored credentials are still accepted, the fresh token replaces
    them without that being a change (RV(registries[].state=refreshed)), so the credentials
    never come close to their 12 hours' expiry on a host that logs in before each deploy."
  - The token is never part of the result, the logs or C(-vvv) output.
author:
  - mlops.deploy developers (@mlops-deploy)
options:
  registry_ids:
    description:
      - AWS account IDs of the registries to log in to (cross-account pulls). The first
        one's registry is RV(registry).
      - Without it, the account of the instance (from the metadata service) when known,
        else the caller's own registry.
    type: list
    elements: str
  docker_config:
    description:
      - The docker client configuration directory holding C(config.json).
      - Defaults to C($DOCKER_CONFIG), else C(~/.docker) of the user the module runs as.
    type: path
  timeout:
    description:
      - Seconds to wait for the registry's answer when checking credentials.
    type: int
    default: 15
notes:
  - Needs C(ecr:GetAuthorizationToken). On an instance the instance profile usually grants it
    (C(AmazonEC2ContainerRegistryReadOnly)).
  - The registry is reached over HTTPS at the proxy endpoint ECR returns. Its certificate is
    verified against the system CAs plus C(/etc/docker/certs.d/<host>/*.crt), the same trust
    the Docker engine uses; O(validate_certs=false) turns the check off.
  - The credentials are written to C(config.json) with mode C(0600), atomically; every other
    key of the file is kept.
attributes:
  check_mode:
    support: full
    description: Gets the token and asks the registry, then reports what it would store without writing.
  diff_mode:
    support: none
    description: Credentials are secrets; no diff is shown.
  idempotent:
    support: full
    description:
      - Changed only when credentials were absent or rejected; a repeated run reports not changed.
      - With real ECR every token differs, so the stored token is refreshed on each run while
        still valid; that is reported as RV(registries[].state=refreshed), not as a change.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Log in to this account's ECR (region and account from the instance metadata)
  mlops.deploy.ecr_login:

- name: Log in to a shared registry of another account as well
  mlops.deploy.ecr_login:
    region: eu-west-1
    registry_ids:
      - "123456789012"
      - "210987654321"
  register: ecr

- name: Show which registry and until when
  ansible.builtin.debug:
    msg: "{{ ecr.registry }} until {{ ecr.expires_at }}"

- name: Log in for a service user whose docker config lives elsewhere
  mlops.deploy.ecr_login:
    docker_config: /srv/model-api/.docker
"""

RETURN = r"""
registry:
  description: Host of the (first) registry logged in to, as docker image names use it.
  returned: always
  type: str
  sample: 123456789012.dkr.ecr.eu-west-1.amazonaws.com
expires_at:
  description:
    - When the (first) token expires, ISO 8601 UTC, as ECR says.
    - V(null) when the C(ecr-login) helper is in charge and no token was asked for.
  returned: always
  type: str
  sample: "2026-11-22T10:00:00Z"
registries:
  description: One entry per registry logged in to.
  returned: always
  type: list
  elements: dict
  contains:
    registry:
      description: The registry host.
      type: str
    expires_at:
      description: When its token expires.
      type: str
    state:
      description:
        - V(stored) (no credentials before; a change), V(replaced) (the stored ones were
          refused; a change), V(refreshed) (still accepted, replaced by the fresh token;
          not a change), V(current) (the stored token is the fresh one), V(helper) (the
          C(ecr-login) credential helper handles this registry; nothing done).
      type: str
      sample: stored
    credential_store:
      description: V(file) (config.json) or the name of the credential helper used.
      type: str
      sample: file
    changed:
      description: Whether this registry's credentials changed.
      type: bool
region:
  description: The region used.
  returned: always
  type: str
  sample: eu-west-1
region_source:
  description: Where the region came from, V(argument), V(instance metadata) or V(aws configuration).
  returned: always
  type: str
  sample: instance metadata
account_id:
  description: The account of the (first) registry, when known before asking ECR.
  returned: always
  type: str
  sample: "123456789012"
docker_config:
  description: The docker config file that was read (and written when credentials changed).
  returned: always
  type: str
  sample: /root/.docker/config.json
msg:
  description: What was done, per registry.
  returned: always
  type: str
"""

import os
import re

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule says so

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.mlops.deploy.plugins.module_utils._ecr import (
    EcrLoginError,
    authorization_entries,
    docker_config_dir,
    ecr_host,
    helper_in_charge,
    imds_identity,
    imds_settings,
    login,
    registry_accepts,
    registry_ssl_context,
    resolve_location,
    secret_forms,
)


def main():
    argument_spec = {
        "registry_ids": {"type": "list", "elements": "str"},
        "docker_config": {"type": "path"},
        "timeout": {"type": "int", "default": 15},
    }
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    registry_ids = params["registry_ids"] or []
    bad = [rid for rid in registry_ids if not re.match(r"^\d{12}$", rid)]
    if bad:
        module.fail_json(msg="registry_ids must be 12-digit AWS account IDs; not: %s" % ", ".join(bad))
    if params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second, not %s" % params["timeout"])

    try:
        location = resolve_location(
            params["region"],
            registry_ids,
            lambda: imds_identity(imds_settings(os.environ)),
            lambda: module.region,
        )
        ids = registry_ids or ([location["account_id"]] if location["account_id"] else [])
        config_dir = docker_config_dir(params["docker_config"], os.environ)
        # With the ecr-login helper in charge of every registry, not even ECR is asked.
        result = helper_in_charge(config_dir, [ecr_host(i, location["region"]) for i in ids])
        if result:
            result.update(region=location["region"], region_source=location["region_source"], account_id=ids[0])
            module.exit_json(**result)
        client = module.client("ecr", retry_decorator=AWSRetry.jittered_backoff(), region=location["region"])
        call = {"registryIds": ids} if ids else {}
        try:
            response = client.get_authorization_token(aws_retry=True, **call)
        except (ClientError, BotoCoreError) as exc:
            module.fail_json_aws(
                exc,
                msg="could not get an ECR authorization token in %s for %s; the identity needs "
                "ecr:GetAuthorizationToken" % (location["region"], ", ".join(ids) or "its own registry"),
            )
        entries = authorization_entries(response.get("authorizationData"))
        for entry in entries:
            module.no_log_values.update(secret_forms(entry["user"], entry["secret"]))
        result = login(
            entries,
            config_dir,
            lambda host, user, secret: registry_accepts(
                host, user, secret, registry_ssl_context(host, params["validate_certs"]), params["timeout"]
            ),
            module.check_mode,
        )
    except EcrLoginError as exc:
        module.fail_json(msg=str(exc))
    result.update(
        region=location["region"],
        region_source=location["region_source"],
        account_id=location["account_id"] or result["registry"].split(".", 1)[0],
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
