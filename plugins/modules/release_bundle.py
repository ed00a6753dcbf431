#!/usr/bin/python
# Copyright: (c) 2026, mlops.deploy contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_bundle
short_description: Build a deterministic release bundle (zip with a sha256 manifest) for SSM to run
version_added: 0.1.0
description:
  - Zips a staging directory (the playbook, C(ansible.cfg), compose files, release vars...)
    into a release bundle that C(AWS-ApplyAnsiblePlaybooks) downloads and unzips on each instance.
  - B(Deterministic) - the same input files give the same zip bytes, so the same RV(sha256) -
    entries are sorted by path, every timestamp is 1980-01-01 00:00:00, permissions are
    normalised to C(0644) (C(0755) when the source file had an execute bit), no owner, user,
    host or directory entry is stored, and the compression level is fixed. Copies of the
    same files made at other times, by other users, with other modes give the same bundle.
  - Writes C(MANIFEST.sha256) at the top of the zip, in C(sha256sum) format (one
    C(<sha256>  <path>) line per file, sorted), listing every other file of the bundle.
    Its sha256, RV(manifest_sha256), is what the instance checks the unzipped bundle
    against with M(mlops.deploy.release_verify); send it to the instances (for example as
    an C(ExtraVariables) value, which it fits since it is 64 hexadecimal characters).
  - With O(collection_tarball), adds a collection built by C(ansible-galaxy collection build),
    laid out the way C(ansible-galaxy collection install) does
    (C(<collections_path>/ansible_collections/<namespace>/<name>/) with C(MANIFEST.json),
    C(FILES.json) and every file C(FILES.json) lists, each checked against its sha256), so an
    C(ansible.cfg) in the bundle with C(collections_path = ./collections) finds it.
  - Writes O(dest) only when its content would change; RV(ignore:changed) is V(true) only then
    (or when the file attributes change).
author:
  - mlops.deploy developers (@mlops-deploy)
options:
  src:
    description:
      - The staging directory whose files (recursively) go into the bundle, with their
        paths relative to it.
      - Symbolic links are followed (the bundle stores the file they point to). Empty
        directories are not stored.
      - When O(dest) lies inside O(src), it is left out.
    type: path
    required: true
  dest:
    description:
      - Where to write the zip. Its directory must exist.
    type: path
    required: true
  collection_tarball:
    description:
      - A collection tarball built by C(ansible-galaxy collection build) to add to the bundle
        under O(collections_path), installed the way C(ansible-galaxy collection install) lays
        it out. Files whose sha256 differs from the tarball's C(FILES.json) are refused.
    type: path
  collections_path:
    description:
      - The directory inside the bundle that O(collection_tarball) is installed under; the
        collection lands in C(<collections_path>/ansible_collections/<namespace>/<name>/).
      - Match it in the bundle's C(ansible.cfg) (C(collections_path = ./collections)).
    type: str
    default: collections
  extra_files:
    description:
      - More files to put into the bundle, each from a path on the controller to a path
        inside the bundle.
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: The file on the controller.
        type: path
        required: true
      dest:
        description: Its path inside the bundle, relative and C(/)-separated (V(vars/release.yml)).
        type: str
        required: true
  exclude:
    description:
      - Shell patterns (C(fnmatch)) of names left out of O(src) - a file or directory is left
        out when any part of its path matches one (V(__pycache__) drops every such directory).
      - Set to V([]) to keep everything.
    type: list
    elements: str
    default: ['__pycache__', '*.pyc', '*.pyo', '.git']
notes:
  - A file named C(MANIFEST.sha256) in the input is an error (the bundle writes its own),
    and so is a path that two inputs would both fill (for example a staged file where the
    collection goes).
  - C(AWS-ApplyAnsiblePlaybooks) unzips every C(.zip) file it finds in its download directory,
    nested ones included; a zip inside the bundle would be unzipped too on the instance, and
    M(mlops.deploy.release_verify) would then refuse the files it adds.
  - The zip is built in memory; a bundle is meant to be small (playbooks, configuration and
    a collection), the images travel through the registry.
  - The bytes depend on the zlib that compresses them; controllers with another zlib version
    may produce another RV(sha256) from the same files, while RV(manifest_sha256) stays the same.
attributes:
  check_mode:
    support: full
    description: Builds the bundle in memory and reports whether O(dest) would change, without writing it.
  diff_mode:
    support: full
    description: Shows the change of C(MANIFEST.sha256), so which files were added, removed or changed.
  idempotent:
    support: full
    description: The same inputs give the same bytes, so a second run does not change O(dest).
extends_documentation_fragment:
  - ansible.builtin.files
seealso:
  - module: mlops.deploy.release_verify
"""

EXAMPLES = r"""
- name: Build the collection that the bundle carries
  ansible.builtin.command:
    cmd: ansible-galaxy collection build --force --output-path {{ build_dir }} {{ collection_src }}
  register: galaxy_build
  changed_when: true

- name: Bundle the staged release with the collection (same inputs, same sha256)
  mlops.deploy.release_bundle:
    src: "{{ build_dir }}/stage"
    dest: "{{ build_dir }}/{{ release_id }}.zip"
    collection_tarball: "{{ build_dir }}/mlops-deploy-0.1.0.tar.gz"
    extra_files:
      - src: "{{ build_dir }}/release-vars.yml"
        dest: vars/release.yml
  register: bundle

- name: Tell the instances which manifest to trust
  ansible.builtin.debug:
    msg: "bundle {{ bundle.sha256 }}, send manifest_sha256={{ bundle.manifest_sha256 }}"

- name: Bundle a directory as is, with the files mode set on the zip
  mlops.deploy.release_bundle:
    src: /srv/release/stage
    dest: /srv/release/out/bundle.zip
    exclude: []
    mode: "0640"
"""

RETURN = r"""
dest:
  description: The zip written (or that would be written in check mode).
  returned: always
  type: str
  sample: /tmp/build/r-2026-11-21.1.zip
sha256:
  description: The sha256 of the zip (what S3 holds; the same inputs give the same value).
  returned: always
  type: str
  sample: 3f0c6b1e8b5b7e0f2d4c59a1c7f3e0a9b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e6
manifest_sha256:
  description:
    - The sha256 of C(MANIFEST.sha256) inside the zip. Send it to the instances and give it
      to M(mlops.deploy.release_verify) there.
  returned: always
  type: str
  sample: 9b1d2c3e4f5a6b7c8d9e0f1a2b3c4d5e63f0c6b1e8b5b7e0f2d4c59a1c7f3e0a
size:
  description: Size of the zip in bytes.
  returned: always
  type: int
  sample: 48211
files:
  description: The paths of the files in the bundle, sorted (the manifest lists these; it is not among them).
  returned: always
  type: list
  elements: str
  sample: [ansible.cfg, collections/ansible_collections/mlops/deploy/MANIFEST.json, deploy.yml]
file_count:
  description: How many files the manifest lists.
  returned: always
  type: int
  sample: 42
collection:
  description: The collection added from O(collection_tarball).
  returned: when O(collection_tarball) is given
  type: dict
  contains:
    namespace:
      description: Its namespace.
      type: str
      sample: mlops
    name:
      description: Its name.
      type: str
      sample: deploy
    version:
      description: Its version.
      type: str
      sample: 0.1.0
    path:
      description: Where it is inside the bundle.
      type: str
      sample: collections/ansible_collections/mlops/deploy
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mlops.deploy.plugins.module_utils._release_bundle import (
    DEFAULT_EXCLUDE,
    BundleError,
    build_bundle,
    manifest_of_zip,
    sha256_file,
)


def main():
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "dest": {"type": "path", "required": True},
            "collection_tarball": {"type": "path"},
            "collections_path": {"type": "str", "default": "collections"},
            "extra_files": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {"src": {"type": "path", "required": True}, "dest": {"type": "str", "required": True}},
            },
            "exclude": {"type": "list", "elements": "str", "default": list(DEFAULT_EXCLUDE)},
        },
        supports_check_mode=True,
        add_file_common_args=True,
    )
    params = module.params
    dest = params["dest"]
    if not os.path.isdir(os.path.dirname(dest) or "."):
        module.fail_json(msg="the directory of dest %s does not exist; create it first" % dest)
    if os.path.isdir(dest):
        module.fail_json(msg="dest %s is a directory; give the path of the zip to write" % dest)
    try:
        bundle = build_bundle(
            params["src"],
            dest,
            params["collection_tarball"],
            params["collections_path"],
            params["extra_files"],
            params["exclude"],
        )
    except BundleError as exc:
        module.fail_json(msg=str(exc))

    exists = os.path.isfile(dest)
    changed = not exists or sha256_file(dest) != bundle["sha256"]
    result = {key: bundle[key] for key in ("sha256", "manifest_sha256", "size", "files", "file_count")}
    if bundle["collection"]:
        result["collection"] = bundle["collection"]
    if module._diff:
        result["diff"] = {
            "before_header": "%s (MANIFEST.sha256)" % dest,
            "after_header": "%s (MANIFEST.sha256)" % dest,
            "before": (manifest_of_zip(dest) or "") if exists else "",
            "after": bundle["manifest"],
        }
    if changed and not module.check_mode:
        tmp = os.path.join(module.tmpdir, "bundle.zip")
        with open(tmp, "wb") as handle:
            handle.write(bundle["data"])
        module.atomic_move(tmp, dest)
        exists = True
    if exists:
        file_args = module.load_file_common_arguments(params, path=dest)
        changed = module.set_fs_attributes_if_different(file_args, changed)
    module.exit_json(changed=changed, dest=dest, **result)


if __name__ == "__main__":
    main()
