#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_verify
short_description: Refuse a release bundle whose files do not match the manifest sha256 it was sent with
version_added: 0.1.0
description:
  - Checks an unzipped release bundle (built by M(mlops.deploy.release_bundle)) on the
    instance, before anything from it is used.
  - The sha256 of the bundle's C(MANIFEST.sha256) must be O(manifest_sha256), the value the
    controller sent with the deploy; then every file the manifest lists must be there with
    its sha256, and no other file may be there, except paths matching O(ignore).
  - Fails with a message saying the bundle was refused and naming each changed, missing and
    extra file (and any symbolic link or special file, which a bundle never holds); the lists
    are also returned as RV(tampered), RV(missing), RV(extra) and RV(unexpected).
  - Read-only; RV(ignore:changed) is always V(false).
author:
  - mlops.deploy developers (@mlops-deploy)
options:
  path:
    description:
      - The directory the bundle was unzipped into. In a playbook run from the bundle, that
        is V({{ playbook_dir }}).
    type: path
    required: true
  manifest_sha256:
    description:
      - The sha256 of C(MANIFEST.sha256) that M(mlops.deploy.release_bundle) returned on the
        controller (its RV(mlops.deploy.release_bundle#module:manifest_sha256)), 64 hexadecimal characters.
    type: str
    required: true
  ignore:
    description:
      - Paths that may be in O(path) although the manifest does not list them, as
        gitignore-like shell patterns. A pattern with a C(/) is anchored at the top of the bundle
        and matches the leading parts of a path (V(/*.zip) is a zip at the top only, V(logs/*)
        everything in C(logs)); a pattern without C(/) matches any single part of a path
        (V(__pycache__) is every such directory with its content, V(*.retry) every such file).
      - The default, V(/*.zip), is what C(AWS-ApplyAnsiblePlaybooks) leaves beside the
        unzipped files - the bundle zip it downloaded.
      - A file the manifest lists is always checked, even when it matches a pattern.
      - Ignoring more weakens the check; in particular, ignoring V(__pycache__) lets a tampered
        bundle bring Python bytecode that Python may load instead of the verified sources.
    type: list
    elements: str
    default: ['/*.zip']
notes:
  - The manifest is C(sha256sum) format, so C(sha256sum -c MANIFEST.sha256) in the bundle
    directory checks the listed files by hand.
seealso:
  - module: mlops.deploy.release_bundle
extends_documentation_fragment:
  - mlops.deploy.attributes.read_only
"""

EXAMPLES = r"""
# deploy.yml, run by SSM from the unzipped bundle: refuse a tampered bundle before anything else.
- name: Verify the bundle against the manifest sha256 the controller sent
  mlops.deploy.release_verify:
    path: "{{ playbook_dir }}"
    manifest_sha256: "{{ manifest_sha256 }}"
  register: verified

- name: Verify a bundle unzipped by hand, allowing the log files the run writes
  mlops.deploy.release_verify:
    path: /opt/releases/r-42
    manifest_sha256: 9b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e63f0c6b1e8b5b7e0f2d4c59a1c7f3e0a
    ignore:
      - /*.zip
      - /logs
"""

RETURN = r"""
path:
  description: The directory checked.
  returned: always
  type: str
  sample: /var/lib/amazon/ssm/i-0123/document/orchestration/5f1c.../downloads
manifest_sha256:
  description: The manifest sha256 the bundle matched.
  returned: success
  type: str
  sample: 9b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e63f0c6b1e8b5b7e0f2d4c59a1c7f3e0a
file_count:
  description: How many files were checked.
  returned: success
  type: int
  sample: 42
files:
  description: The files checked (the manifest's list).
  returned: success
  type: list
  elements: str
  sample: [ansible.cfg, deploy.yml, vars/release.yml]
ignored:
  description: Paths present but not listed that O(ignore) let through.
  returned: success
  type: list
  elements: str
  sample: [r-2026-11-21.1.zip]
tampered:
  description:
    - Listed files whose sha256 differs from the manifest (or the manifest itself when its sha256
      is not O(manifest_sha256)).
  returned: when the bundle is refused
  type: list
  elements: str
  sample: [deploy.yml]
missing:
  description: Listed files that are not there.
  returned: when the bundle is refused
  type: list
  elements: str
  sample: [vars/release.yml]
extra:
  description: Files that are there but neither listed nor ignored.
  returned: when the bundle is refused
  type: list
  elements: str
  sample: [evil.sh]
unexpected:
  description: Symbolic links and special files found (a bundle holds regular files only).
  returned: when the bundle is refused
  type: list
  elements: str
  sample: [collections/link]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mlops.deploy.plugins.module_utils._release_bundle import (
    DEFAULT_VERIFY_IGNORE,
    BundleError,
    BundleRefused,
    verify_bundle,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "manifest_sha256": {"type": "str", "required": True},
            "ignore": {"type": "list", "elements": "str", "default": list(DEFAULT_VERIFY_IGNORE)},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = verify_bundle(params["path"], params["manifest_sha256"], params["ignore"])
    except BundleRefused as exc:
        module.fail_json(msg=str(exc), changed=False, path=params["path"], **exc.details)
    except BundleError as exc:
        module.fail_json(msg=str(exc), changed=False, path=params["path"])
    except OSError as exc:
        module.fail_json(
            msg="bundle refused: %s could not be read (%s: %s)" % (params["path"], exc.filename, exc.strerror),
            changed=False,
            path=params["path"],
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
