#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_deploy
short_description: Deploy a docker compose project with health checks, rollback and a truthful "changed"
version_added: 0.1.0
description:
  - Deploys a compose project on the host the module runs on, in this order, stopping at
    the first failure.
  - "1. B(Source): the compose file O(src), a local path (from the release bundle) or an
    C(s3://bucket/key) URL downloaded with boto3; its sha256 is checked when O(sha256) is given."
  - "2. B(Pull): the registry's digest of each service's image is asked through the engine
    (nothing downloaded); the images whose digest is not local yet are pulled with
    C(docker compose pull), the local image and its digest recorded before and after. A
    failed pull stops the deploy: nothing running is touched."
  - "3. B(Up): C(docker compose up --detach). Compose recreates a container only when its
    image or its configuration changed; a repeated run of the same release restarts nothing."
  - "B(Up is skipped) when it would change nothing: nothing was pulled, and each deployed
    service (with what it depends on) has its wanted number of containers, all running,
    healthy (or without a healthcheck), with the configuration hash compose gives for the file
    (C(config --hash)), the image the file names, on networks that exist with the definition
    of the file (the hash compose stamps on each network) and with the named volumes the file
    mounts; and no orphan is to be removed. Anything else, or anything that cannot be
    confirmed, runs C(up) as above; RV(up_reasons) says why."
  - "4. B(Health): waits, with its own polling loop, until every container of the deployed
    services is healthy (its healthcheck) or running (no healthcheck), at most
    O(health_timeout) seconds. A container Docker reports unhealthy, or one that exits or
    keeps restarting, fails the deploy at once. Then, when O(probe_url) is set, GETs it until
    it answers one of O(probe_status)."
  - "5. B(Rollback) when the health wait or the probe fails (or C(up) fails): the services
    whose containers changed get their previous images back, pinned by digest
    (C(repo@sha256:...)), and are waited for; services that did not exist before are
    removed. The module then fails with the new containers' last log lines and what was
    rolled back to. The previous version keeps serving."
  - "6. B(Orphans and prune), only after success: containers of services no longer in the
    file are removed (what C(--remove-orphans) does, done last so that a rollback still has
    them), then images of the project's repositories that no container uses are removed,
    keeping the newest O(keep_images) of each repository. Never C(docker system prune)."
  - "B(Strategy blue_green) (O(strategy=blue_green)): steps 3 to 5 replace the running version
    without stopping it first. The endpoint's proxied service runs in two compose projects,
    C(<project>-blue) and C(<project>-green), each published on 127.0.0.1 at its colour's port,
    behind the host's reverse proxy (HAProxy, installed by the C(mlops.deploy.ec2_host) role) on
    the endpoint's port. The new version starts in the colour that is not live, must be healthy
    and answer the probe on its own port, then the proxy switches to it through its runtime API
    (no reload, no connection dropped); the old colour drains (O(blue_green.drain_timeout)) and
    stops. A version that fails health or probe never receives a request and is removed; the
    live one keeps serving. If the endpoint does not answer through the proxy after the switch,
    it switches back to the old colour, still running. The live colour is recorded in the
    proxy's endpoint file, so it survives a reboot. A release the live colour already runs
    touches no container and reports ok. See C(docs/docsite/rst/zero-downtime.rst)."
  - RV(ignore:changed) says what really happened, from the engine's containers and images
    before and after (container IDs, start times, image IDs and digests), with compose's
    C(--progress json) events beside it in RV(compose_events).
  - Uses the compose v2 CLI plugin (2.29.1 or later; checked, with a clear message when missing
    or too old) to act, and the Docker engine API (docker SDK for Python) to look. The plugin
    binary is run directly from where docker finds it (C($DOCKER_CONFIG/cli-plugins),
    C(~/.docker/cli-plugins), C(/usr/local/lib/docker/cli-plugins),
    C(/usr/libexec/docker/cli-plugins), ...), else as C(docker compose).
author:
  - mlops.deploy developers (@mlops-deploy)
requirements:
  - docker (the Python SDK) on the host the module runs on
  - the docker compose v2 CLI plugin, 2.29.1 or later
options:
  src:
    description:
      - The compose file, a path on the host or an C(s3://bucket/key) URL.
      - An S3 file is downloaded into O(download_dir); relative paths inside it (bind
        mounts, env files) resolve there.
    type: str
    required: true
    aliases: [compose_file]
  sha256:
    description:
      - Expected sha256 (hex) of the compose file; the deploy stops before anything else
        when it differs.
    type: str
  env_file:
    description:
      - An environment file for the compose file's variables (C(docker compose --env-file)).
    type: path
  project:
    description:
      - The compose project name. Defaults to the file's top-level C(name:), else compose's
        own default (the file's directory name).
      - Required with an C(s3://) O(src) that has no top-level C(name:).
    type: str
  services:
    description:
      - Deploy only these services (and what they depend on). Default, all of them.
    type: list
    elements: str
  download_dir:
    description:
      - Where an C(s3://) O(src) is saved. Default, a temporary directory removed afterwards.
    type: path
  pull:
    description:
      - Pull the images first. With V(false), the images present on the host are used.
    type: bool
    default: true
  health_timeout:
    description:
      - Seconds to wait for the containers to be healthy (or running, without a
        healthcheck). ML model servers load slowly, hence the generous default; give
        slow-loading images a healthcheck C(start_period) too.
    type: int
    default: 300
  probe_url:
    description:
      - After health, GET this URL (for example V(http://127.0.0.1:8080/health)) until it
        answers one of O(probe_status), at most O(probe_timeout) seconds.
    type: str
  probe_status:
    description:
      - HTTP statuses that count as a good answer to O(probe_url).
    type: list
    elements: int
    default: [200]
  probe_timeout:
    description:
      - Seconds to keep trying O(probe_url).
    type: int
    default: 60
  rollback:
    description:
      - Put the previous images back when health or the probe fails. With V(false) the
        failed containers are left for inspection.
    type: bool
    default: true
  remove_orphans:
    description:
      - Remove containers of services that are no longer in the compose file, after a
        successful deploy.
    type: bool
    default: true
  prune:
    description:
      - After a successful deploy, remove images of the project's repositories that no
        container uses, keeping O(keep_images) per repository.
    type: bool
    default: true
  keep_images:
    description:
      - Images kept per repository by O(prune), counting the ones in use first, then the
        newest (by creation time). V(1) keeps only what runs; V(2) also the image before it.
    type: int
    default: 2
  docker_config:
    description:
      - The docker client configuration directory whose credentials pull the images (what
        M(mlops.deploy.ecr_login) wrote). Default, C($DOCKER_CONFIG), else C(~/.docker).
    type: path
  strategy:
    description:
      - How the new version replaces the running one.
      - V(recreate) is compose's own way, in place - the old container stops before the new one
        has loaded its model, so the endpoint does not answer meanwhile.
      - V(blue_green) starts the new version beside the old one and switches the host's proxy to
        it once healthy (see the description and O(blue_green)). Needs the proxy of the
        C(mlops.deploy.ec2_host) role and a healthcheck on the proxied service.
    type: str
    choices: [recreate, blue_green]
    default: recreate
  blue_green:
    description:
      - Settings of O(strategy=blue_green); ignored otherwise.
    type: dict
    default: {}
    suboptions:
      service:
        description:
          - The service behind the proxy. Default, the one service of the file that publishes a
            port (no other may publish one - both colours would need it).
        type: str
      port:
        description:
          - The endpoint's port, where the proxy listens. Default, the host port the service
            publishes in the file.
        type: int
      colour_ports:
        description:
          - The host ports (on 127.0.0.1) of the blue and the green colour, in that order.
            Default, O(blue_green.port) + 10000 and + 20000 (8080 - 18080 and 28080).
        type: list
        elements: int
      health_path:
        description:
          - The HTTP path that says the service is ready - probed on the new colour before the
            switch, on the endpoint after it, and checked every second by the proxy itself.
          - Default, the path of O(probe_url), else V(/health).
        type: str
      drain_timeout:
        description:
          - Seconds to wait, after the switch, for the requests in flight on the old colour to end
            (the proxy counts them) before it is stopped. V(0) stops it at once.
        type: int
        default: 30
      keep_old:
        description:
          - Keep the old colour running after the switch (drained, no traffic), so that deploying
            the previous release again is a switch back, without starting anything. Costs the
            memory of a second copy of the model.
        type: bool
        default: false
      proxy_config_dir:
        description: The proxy's configuration directory; its C(conf.d) gets the endpoint's file.
        type: path
        default: /etc/mlops-proxy
      proxy_run_dir:
        description: Where the proxy's runtime API (C(admin.sock)) and master (C(master.sock)) sockets are.
        type: path
        default: /run/mlops-proxy
      proxy_container:
        description: The proxy's container (its configuration is checked there before a reload).
        type: str
        default: mlops-proxy
      proxy_wait:
        description:
          - Seconds to wait for a proxy whose runtime API does not answer yet (a host that has
            just booted, whose C(mlops-proxy) unit loads the proxy's image first). A proxy that
            answers with a refusal (no permission, say) fails at once. Nothing is changed
            while waiting; the wait is reported as C(proxy_waited) in RV(blue_green).
        type: int
        default: 180
notes:
  - Needs C(s3:GetObject) for an C(s3://) O(src); no AWS access otherwise.
  - The rollback restores images, not configuration; a release that failed because of its
    configuration is rolled back to the previous images with the new configuration.
  - After a rollback the containers run the pinned C(repo@sha256:...) references; the next
    deploy of any release recreates them.
  - Connection to the engine follows C(DOCKER_HOST) and the other docker environment variables.
  - "Speed of a repeated deploy: an image pinned by digest (C(repo@sha256:...), as release bundles
    pin them) and present on the host needs no registry call; a tag costs one registry lookup
    through the engine. The three read-only compose calls (C(version), C(config),
    C(config --hash)) run side by side while the docker SDK loads; C(up) is skipped when it would
    change nothing (see above)."
  - "With a local O(src) no AWS call is made and boto3 is not loaded: the AWS options are
    accepted (so that C(module_defaults) for C(group/mlops.deploy.aws) apply) and not used."
  - "With O(strategy=blue_green): named volumes without a C(name:) are per compose project, so
    per colour; give a volume a C(name:) to share it. When the proxied service has no C(restart:)
    policy the colours run with C(unless-stopped), so that the live one comes back after a
    reboot. The first blue/green deploy of a project deployed with V(recreate) before moves the
    port from its container to the proxy, the one moment the endpoint does not answer (about a
    second). Only adding an endpoint (or changing its port) reloads the proxy; a switch does not."
  - "Compose itself does not recreate a container when only the content of a file in its
    C(configs:) or C(secrets:) changed, nor when only a volume's definition changed (it asks
    whether to recreate the volume, and without a terminal does not); neither does this module."
attributes:
  check_mode:
    support: full
    description:
      - With O(strategy=blue_green), also which colour would be deployed and switched to
        (C(would_switch) in RV(blue_green)); the proxy is not touched.
      - Reports what would be pulled (the registry's digest, asked through the engine without
        pulling), recreated, created, removed and pruned, in RV(actions) and RV(plan), and
        whether that is a change. Nothing is pulled, started or removed.
      - An image whose digest the registry cannot give (missing tag, no credentials) fails the
        check, as the pull would fail the deploy.
  diff_mode:
    support: partial
    details: The diff shows each service's image digest before and after, not the compose configuration.
    description: Shows the image digests before and after per service.
  idempotent:
    support: full
    description:
      - A repeated run of the same release reports not changed and restarts nothing
        (container IDs and start times stay the same).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Deploy the model API from the release bundle, health-gated
  mlops.deploy.compose_deploy:
    src: "{{ bundle_dir }}/compose/model-api.yml"
    env_file: "{{ bundle_dir }}/compose/model-api.env"
    project: model-api
    health_timeout: 600
    probe_url: http://127.0.0.1:8080/health
  register: deploy

- name: Say what happened
  ansible.builtin.debug:
    msg: >-
      changed={{ deploy.changed }}
      recreated={{ deploy.actions.recreated | map(attribute='service') | list }}
      running={{ deploy.services | map(attribute='digest') | list }}

- name: Deploy one service of a compose file kept on S3, checked against the released sha256
  mlops.deploy.compose_deploy:
    src: s3://mlops-releases/prod/2026-11-21.1/compose.yml
    sha256: "{{ release.compose_sha256 }}"
    project: endpoints
    services: [endpoint-a]
    keep_images: 3

- name: Release the model API without downtime (the host's proxy switches once the new one is healthy)
  mlops.deploy.compose_deploy:
    src: "{{ bundle_dir }}/compose/model-api.yml"   # service api publishes 8080:8080, with a healthcheck
    project: model-api
    strategy: blue_green
    health_timeout: 600
    blue_green:
      health_path: /health
      drain_timeout: 60          # a long inference in flight may finish
  register: release

- name: Which colour serves now
  ansible.builtin.debug:
    msg: "{{ release.blue_green.live }} serves port {{ release.blue_green.port }}"

- name: What would a deploy do? (nothing is pulled or restarted)
  mlops.deploy.compose_deploy:
    src: /opt/release/compose.yml
    project: model-api
  check_mode: true
  register: plan
"""

RETURN = r"""
project:
  description: The compose project deployed.
  returned: always
  type: str
  sample: model-api
services:
  description: The deployed services as they run at the end (in check mode, as they run now).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
    image:
      description: The image reference of the compose file.
      type: str
      sample: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/model-api:2026-11-21.1
    image_id:
      description: Local image ID the (first) container runs.
      type: str
    digest:
      description: Registry digest of that image for the service's repository, when it has one.
      type: str
      sample: sha256:5ea529fa2802d0b869d3316cccf8f14cb77209888d190b1e626809dac42ecd00
    container_id:
      description: ID of the service's first container.
      type: str
    container_ids:
      description: IDs of all its containers.
      type: list
      elements: str
    state:
      description: Container state (V(running), V(exited), ...).
      type: str
    health:
      description: Health status (V(healthy), V(starting), V(unhealthy)), V(none) without a healthcheck.
      type: str
    started_at:
      description: When the (first) container started, as the engine reports it.
      type: str
actions:
  description:
    - What was done (in check mode, what would be done), each a list.
    - C(pulled) (service, image, from, to digests), C(created), C(recreated), C(started)
      (services), C(removed) (orphans), C(rolled_back) (service, from image ID, to pinned
      reference), C(pruned) (image ID, references removed, repository).
  returned: always
  type: dict
  sample:
    pulled:
      - service: api
        image: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/model-api:stable
        from: "sha256:5ea5..."
        to: "sha256:9f1c..."
    recreated: [{service: api}]
    created: []
    started: []
    removed: []
    rolled_back: []
    pruned: []
    switched: []
    stopped: []
previous_digests:
  description: Per service, the digest (or image ID) its containers ran before this deploy.
  returned: always
  type: dict
  sample: {api: "sha256:5ea529fa2802d0b869d3316cccf8f14cb77209888d190b1e626809dac42ecd00"}
compose_events:
  description: Compose's own account of C(up), from its C(--progress json) events (container names).
  returned: when up ran
  type: dict
up_reasons:
  description:
    - Why C(docker compose up) ran, one line per reason (a service to create, recreate or start,
      a network or volume not as the file says, orphans, a container not healthy yet).
    - An empty list when the release already ran as deployed and C(up) was skipped.
  returned: success, not in check mode
  type: list
  elements: str
  sample: ["api: recreate (configuration changed)"]
plan:
  description:
    - In check mode, per service, the action compose would take and why.
    - V(keep), V(create), V(recreate), V(start) or V(scale).
  returned: check mode
  type: dict
  sample: {api: {action: recreate, reason: "new image in the registry (sha256:9f1c...)"}}
probe:
  description: The probe's outcome.
  returned: when O(probe_url) is set and health passed
  type: dict
health_waited:
  description: Seconds spent waiting for health (V(0) when C(up) was skipped, the containers being healthy).
  returned: success, not in check mode
  type: float
logs:
  description: On a failed health check or probe, the last log lines of each new container.
  returned: failure
  type: dict
rollback:
  description: On failure, the rollback plan (pinned images per service, services removed).
  returned: failure
  type: dict
src:
  description: The compose file used and its sha256.
  returned: always
  type: dict
  sample: {path: /tmp/compose-deploy-1x2/compose.yml, sha256: "4f1c...", downloaded: true}
commands:
  description:
    - The compose commands that changed or could change something (C(pull), C(up), C(rm)); the
      read-only C(version) and C(config) calls are not listed.
    - Empty when a repeated deploy found the release already running.
  returned: always
  type: list
  elements: list
blue_green:
  description:
    - With O(strategy=blue_green), what the strategy did.
    - C(live) is the colour serving at the end, C(previous) the one before, C(colour) the one
      deployed, C(projects) the compose projects of each colour, C(port) and C(colour_ports)
      the ports, C(proxy_file) the endpoint's file, C(switched) whether traffic moved,
      C(switch) each move (C(from), C(to), C(reason)), C(drained), C(drain_waited) and
      C(in_flight_when_stopped) how the old colour drained, C(stopped) the containers stopped,
      C(verified) the probe through the proxy, C(would_switch) in check mode, C(proxy_waited)
      the seconds waited for a proxy that did not answer yet (only when it waited).
  returned: with O(strategy=blue_green)
  type: dict
  sample:
    live: green
    previous: blue
    colour: green
    port: 8080
    colour_ports: {blue: 18080, green: 28080}
    projects: {blue: model-api-blue, green: model-api-green}
    proxy_file: /etc/mlops-proxy/conf.d/model-api.cfg
    switched: true
    switch: [{from: blue, to: green}]
    drained: true
    drain_waited: 0.4
    in_flight_when_stopped: 0
    stopped: [model-api-blue-api-1]
cmd:
  description: The failing command, when one failed.
  returned: failure of a command
  type: list
  elements: str
rc:
  description: Its return code.
  returned: failure of a command
  type: int
stdout:
  description: Its standard output.
  returned: failure of a command
  type: str
stderr:
  description: Its standard error.
  returned: failure of a command
  type: str
"""

import os
import re
import tempfile

from ansible.module_utils.basic import AnsibleModule, _load_params, missing_required_lib

from ansible_collections.mlops.deploy.plugins.module_utils._aws_options import may_hold_aws_options, with_aws_options
from ansible_collections.mlops.deploy.plugins.module_utils._compose_bluegreen import BlueGreen, BlueGreenSettings
from ansible_collections.mlops.deploy.plugins.module_utils._compose_cli import (
    ComposeCli,
    compose_command,
    start_command,
)
from ansible_collections.mlops.deploy.plugins.module_utils._compose_deploy import Deployment
from ansible_collections.mlops.deploy.plugins.module_utils._compose_engine import Engine
from ansible_collections.mlops.deploy.plugins.module_utils._compose_errors import DeployError
from ansible_collections.mlops.deploy.plugins.module_utils._compose_source import parse_s3_url, prepare_source
from ansible_collections.mlops.deploy.plugins.module_utils._compose_values import DeployOptions

# Imports that take a tenth of a second or more each are made only where needed: boto3
# (through amazon.aws) for an s3:// source only, the docker SDK once the compose calls run.


def new_module(argument_spec, raw, from_s3):
    """An AnsibleAWSModule when the compose file comes from S3; otherwise a plain
    AnsibleModule, which does not load boto3, that accepts amazon.aws's AWS options
    (unused) when the task passes any (``module_defaults``, say)."""
    if from_s3:
        from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

        return AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    if may_hold_aws_options(raw, argument_spec):
        argument_spec = with_aws_options(argument_spec)
    return AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)


def s3_reader(module):
    """``s3_get(bucket, key) -> bytes`` through the AnsibleAWSModule's S3 client."""
    from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
    from botocore.exceptions import BotoCoreError, ClientError

    def s3_get(bucket, key):
        client = module.client("s3", retry_decorator=AWSRetry.jittered_backoff())
        try:
            return client.get_object(Bucket=bucket, Key=key, aws_retry=True)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            module.fail_json_aws(exc, msg="could not download s3://%s/%s (needs s3:GetObject)" % (bucket, key))

    return s3_get


def import_docker():
    """The docker SDK and its errors."""
    import docker
    from docker import errors

    return docker, errors


def argument_spec():
    """The module's own options (the AWS ones come from amazon.aws, see new_module)."""
    return {
        "src": {"type": "str", "required": True, "aliases": ["compose_file"]},
        "sha256": {"type": "str"},
        "env_file": {"type": "path"},
        "project": {"type": "str"},
        "services": {"type": "list", "elements": "str"},
        "download_dir": {"type": "path"},
        "pull": {"type": "bool", "default": True},
        "health_timeout": {"type": "int", "default": 300},
        "probe_url": {"type": "str"},
        "probe_status": {"type": "list", "elements": "int", "default": [200]},
        "probe_timeout": {"type": "int", "default": 60},
        "rollback": {"type": "bool", "default": True},
        "remove_orphans": {"type": "bool", "default": True},
        "prune": {"type": "bool", "default": True},
        "keep_images": {"type": "int", "default": 2},
        "docker_config": {"type": "path"},
        "strategy": {"type": "str", "choices": ["recreate", "blue_green"], "default": "recreate"},
        "blue_green": {
            "type": "dict",
            "default": {},
            "options": {
                "service": {"type": "str"},
                "port": {"type": "int"},
                "colour_ports": {"type": "list", "elements": "int"},
                "health_path": {"type": "str"},
                "drain_timeout": {"type": "int", "default": 30},
                "keep_old": {"type": "bool", "default": False},
                "proxy_config_dir": {"type": "path", "default": "/etc/mlops-proxy"},
                "proxy_run_dir": {"type": "path", "default": "/run/mlops-proxy"},
                "proxy_container": {"type": "str", "default": "mlops-proxy"},
                "proxy_wait": {"type": "int", "default": 180},
            },
        },
    }


def main():
    spec = argument_spec()
    raw = _load_params()  # the task's arguments, to know before parsing them whether AWS is needed
    src = (raw or {}).get("src", (raw or {}).get("compose_file"))
    from_s3 = isinstance(src, str) and src.startswith("s3://")
    module = new_module(spec, raw, from_s3)
    params = module.params
    for name, least in (("health_timeout", 1), ("probe_timeout", 1), ("keep_images", 1)):
        if params[name] < least:
            module.fail_json(msg="%s must be at least %d, not %s" % (name, least, params[name]))
    if params["sha256"] and not re.match(r"^(sha256:)?[0-9a-fA-F]{64}$", params["sha256"]):
        module.fail_json(msg="sha256 must be 64 hexadecimal characters, not %r" % params["sha256"])
    if params["src"].startswith("s3://"):
        try:
            parse_s3_url(params["src"])
        except DeployError as exc:
            module.fail_json(msg=str(exc))
    if params["env_file"] and not os.path.isfile(params["env_file"]):
        module.fail_json(msg="env_file %s does not exist" % params["env_file"])
    env = {}
    if params["docker_config"]:
        env["DOCKER_CONFIG"] = params["docker_config"]
        os.environ["DOCKER_CONFIG"] = params["docker_config"]  # the SDK reads credentials from there too

    s3_get = s3_reader(module) if from_s3 else None
    with tempfile.TemporaryDirectory(prefix="compose-deploy-") as tmp:
        download_dir = params["download_dir"] if params["download_dir"] and not module.check_mode else tmp
        source = None
        try:
            source = prepare_source(params["src"], params["sha256"], params["project"], download_dir, s3_get)
            compose = ComposeCli(
                lambda argv, extra: module.run_command(argv, environ_update=extra),
                [source["path"]],
                project=params["project"],
                env_file=params["env_file"],
                env=env,
                command=compose_command(os.environ),
                start=start_command,
            )
            compose.start_inspection()  # compose reads the file while the docker SDK loads
        except DeployError as exc:
            module.fail_json(msg=exc.msg, src=source, **exc.result)
        try:
            docker, errors = import_docker()
        except ImportError as exc:
            module.fail_json(msg=missing_required_lib("docker"), exception=str(exc))
        try:
            api = docker.from_env(timeout=120).api
            engine = Engine(api, errors.NotFound, errors.APIError)
            options = DeployOptions.from_params(params)
            if params["strategy"] == "blue_green":
                deployment = BlueGreen(
                    compose, engine, options, BlueGreenSettings.from_params(params["blue_green"]), tmp,
                    check_mode=module.check_mode,
                )  # fmt: skip
            else:
                deployment = Deployment(compose, engine, options, check_mode=module.check_mode)
            result = deployment.run()
        except DeployError as exc:
            module.fail_json(msg=exc.msg, src=source, **exc.result)
        except errors.DockerException as exc:
            module.fail_json(msg="cannot talk to the Docker engine: %s; is it running, and DOCKER_HOST right?" % exc)
    result["src"] = source
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
