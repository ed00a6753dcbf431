#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take or release a per-environment deploy lock held in SSM Parameter Store
version_added: 0.1.0
description:
  - Makes sure two deploys never run against one environment at once. The lock is one SSM
    parameter (by default C(/mlops/<env>/deploy-lock)) whose value is JSON
    C({owner, run_id, release, acquired_at, expires_at}).
  - O(state=present) takes the lock by creating the parameter with C(Overwrite=False); SSM
    creates it for exactly one of several runs that try at the same moment and answers
    C(ParameterAlreadyExists) to the others, so the race has one winner.
  - When another run holds the lock, the module waits up to O(wait) seconds for it (re-reading
    the parameter at jittered, growing intervals up to O(poll_interval)), then fails with a
    message naming the holder, its run id, its release and how long it has held the lock.
  - A lock past its C(expires_at) (O(ttl) after it was taken) is reported at once as B(stale),
    with its owner; it is never broken silently. O(force_unlock=true) breaks a lock held by
    another run (stale or not) and says whose it broke.
  - Reentrant - when the lock is already held by the same O(run_id), O(state=present) reports
    RV(ignore:changed=false).
  - O(state=absent) releases the lock when it belongs to O(run_id) (or with O(force_unlock=true));
    a free lock is not changed, and a lock held by another run is left alone with a warning
    (so a release in an C(always) section of a run that never got the lock does not fail).
author:
  - mlops.deploy developers (@mlops-deploy)
options:
  env:
    description:
      - The environment to lock; the parameter is C(/mlops/<env>/deploy-lock).
      - Letters, digits, C(.), C(-) and C(_).
      - Exactly one of O(env) and O(name) is required.
    type: str
  name:
    description:
      - The full name of the lock parameter, instead of the one O(env) makes.
    type: str
  state:
    description:
      - V(present) takes the lock, V(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  run_id:
    description:
      - Identifies the run that holds the lock (a CI pipeline or job id). The same O(run_id)
        takes the lock again without change, and only it releases the lock.
      - Required, except with O(state=absent) and O(force_unlock=true).
    type: str
  owner:
    description:
      - Who holds the lock, shown to whoever finds it held. Defaults to C(<user>@<host>) of
        the controller; in CI, the person or pipeline that started the run reads better.
    type: str
  release:
    description:
      - The release being deployed under the lock, shown to whoever finds it held.
    type: str
  ttl:
    description:
      - Seconds after which the lock counts as stale (the run that took it probably died).
        Longer than the longest deploy.
    type: int
    default: 3600
  wait:
    description:
      - With O(state=present), seconds to wait for a lock held by another run before failing.
        V(0) fails at once. A stale lock fails at once whatever O(wait) says.
    type: int
    default: 0
  poll_interval:
    description:
      - The longest pause, in seconds, between two reads of a held lock while waiting. Reads start
        after about half a second and grow towards this, each pause jittered.
    type: float
    default: 5.0
  force_unlock:
    description:
      - With O(state=present), break a lock held by another run and take it; with
        O(state=absent), release the lock whoever holds it. The result says whose lock was broken.
      - For a lock whose run is known to be gone; breaking a live run's lock lets two deploys
        run at once.
    type: bool
    default: false
notes:
  - Needs C(ssm:GetParameter), C(ssm:PutParameter) and C(ssm:DeleteParameter) on the lock parameter.
  - Times are UTC. RV(lock.age_seconds) and staleness are computed with the controller's clock.
attributes:
  check_mode:
    support: full
    description:
      - Reads the lock and reports what would happen without writing. A lock held by another run
        fails at once (check mode does not wait).
  diff_mode:
    support: none
    description: The result returns the lock before (RV(broken)) and after (RV(lock)) instead of a diff.
  idempotent:
    support: full
    description: Taking a lock this run holds, or releasing a free one, changes nothing.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: mlops.deploy.release_record
"""

EXAMPLES = r"""
- name: Take the prod deploy lock, queueing up to 10 minutes behind a running deploy
  mlops.deploy.deploy_lock:
    env: prod
    run_id: "{{ lookup('ansible.builtin.env', 'CI_PIPELINE_ID') }}"
    owner: "{{ lookup('ansible.builtin.env', 'GITLAB_USER_LOGIN') }}"
    release: "{{ release_id }}"
    wait: 600
  register: lock

- name: Deploy, then always release the lock
  block:
    - name: Roll out
      ansible.builtin.debug:
        msg: "deploying {{ release_id }} under {{ lock.lock.name }}"
  always:
    - name: Release the prod deploy lock
      mlops.deploy.deploy_lock:
        env: prod
        state: absent
        run_id: "{{ lookup('ansible.builtin.env', 'CI_PIPELINE_ID') }}"

- name: Break the lock of a run that died (the result says whose it was)
  mlops.deploy.deploy_lock:
    env: staging
    run_id: "{{ run_id }}"
    force_unlock: true
  register: broken

- name: Release a stale lock without taking it
  mlops.deploy.deploy_lock:
    name: /mlops/staging/deploy-lock
    state: absent
    force_unlock: true
"""

RETURN = r"""
lock:
  description:
    - The lock as it is after the run - this run's when it took or holds it; the other holder's
      when it failed or when O(state=absent) left it alone; V(null) when free.
  returned: always
  type: dict
  contains:
    name:
      description: The lock parameter.
      type: str
      sample: /mlops/prod/deploy-lock
    owner:
      description: Who holds it.
      type: str
      sample: alice@ci-runner-7
    run_id:
      description: The run that holds it.
      type: str
      sample: "184467"
    release:
      description: The release deployed under it.
      type: str
      sample: r-2026-11-21.1
    acquired_at:
      description: When it was taken (ISO 8601, UTC).
      type: str
      sample: "2026-11-21T10:00:00Z"
    expires_at:
      description: When it becomes stale.
      type: str
      sample: "2026-11-21T11:00:00Z"
    age_seconds:
      description: Seconds since it was taken.
      type: int
      sample: 312
    stale:
      description: Whether it is past C(expires_at).
      type: bool
      sample: false
    ours:
      description: Whether this run (O(run_id)) holds it.
      type: bool
      sample: true
    version:
      description: The SSM parameter version.
      type: int
      sample: 1
    raw:
      description: The parameter's value when it is not a deploy lock.
      type: str
      returned: when the parameter holds something else
acquired:
  description: Whether this run holds the lock now (would hold it, in check mode).
  returned: when O(state=present) and the lock was taken
  type: bool
  sample: true
released:
  description: Whether the lock was released (would be, in check mode).
  returned: when O(state=absent)
  type: bool
  sample: true
waited:
  description: Seconds spent waiting for the lock.
  returned: when O(state=present) and the lock was taken
  type: float
  sample: 12.5
broken:
  description: The lock that O(force_unlock=true) broke (same fields as RV(lock)), V(null) when none.
  returned: when O(state=present) and the lock was taken
  type: dict
msg:
  description: What happened, in one sentence.
  returned: always
  type: str
  sample: took the lock /mlops/prod/deploy-lock
"""

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule says so

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.mlops.deploy.plugins.module_utils._deploy_lock import DeployLock, LockHeld, lock_name
from ansible_collections.mlops.deploy.plugins.module_utils._ssm_parameters import (
    ParameterError,
    ParameterStore,
    default_identity,
)


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "env": {"type": "str"},
            "name": {"type": "str"},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "run_id": {"type": "str"},
            "owner": {"type": "str"},
            "release": {"type": "str"},
            "ttl": {"type": "int", "default": 3600},
            "wait": {"type": "int", "default": 0},
            "poll_interval": {"type": "float", "default": 5.0},
            "force_unlock": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
        mutually_exclusive=[["env", "name"]],
        required_one_of=[["env", "name"]],
        required_if=[["state", "present", ["run_id"]], ["force_unlock", False, ["run_id"]]],
    )
    params = module.params
    for option, low in (("ttl", 1), ("wait", 0), ("poll_interval", 0.1)):
        if params[option] < low:
            module.fail_json(msg="%s must be at least %s, not %s" % (option, low, params[option]))
    try:
        name = lock_name(params["env"], params["name"])
    except ParameterError as exc:
        module.fail_json(msg=str(exc))

    store = ParameterStore.connect(module.client)
    lock = DeployLock(store, name)
    try:
        if params["state"] == "present":
            result = lock.acquire(
                params["owner"] or default_identity(),
                params["run_id"],
                params["release"],
                params["ttl"],
                params["wait"],
                params["poll_interval"],
                params["force_unlock"],
                module.check_mode,
            )
        else:
            result = lock.release(params["run_id"], params["force_unlock"], module.check_mode)
            if not result["released"] and result["lock"]:
                # AnsibleAWSModule.warn (amazon.aws 10) also passes the warning to exit_json,
                # which ansible-core 2.19 reports as a deprecated use; warn once, directly.
                module._module.warn(result["msg"])
    except LockHeld as exc:
        module.fail_json(msg=str(exc), changed=False, lock=exc.lock)
    except ParameterError as exc:
        module.fail_json(msg=str(exc), changed=False)
    except (ClientError, BotoCoreError) as exc:
        module.fail_json_aws(exc, msg="could not read or write the deploy lock %s in %s" % (name, module.region))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
