#!/usr/bin/env bash
# `make docs`: the collection's docs site, offline, into .build/docs/html.
# antsibull-docs writes the RST of every module, plugin and role (from ansible-doc, so from
# the code) and of the guides listed in docs/docsite/extra-docs.yml; Sphinx renders it with
# the Ansible docs' theme. Warnings fail the build (-W), so a broken reference shows.
set -euo pipefail
# shellcheck source=tools/env.sh
. "$(dirname "$0")/env.sh"
build=$ROOT/.build/docs
rm -rf "$build"
mkdir -p "$build"
# The site's Sphinx project, as antsibull-docs sets one up for a collection
# (conf.py, the index, the theme's settings), without its network bits.
mkdir -p "$build/project"
antsibull-docs sphinx-init --use-current --squash-hierarchy --dest-dir "$build/project" mlops.deploy >/dev/null
# Offline: no intersphinx inventories fetched from the internet.
printf '\n# tools/docs.sh: offline build, no inventories fetched\nintersphinx_mapping = {}\n' >>"$build/project/conf.py"
chmod og-w "$build/project/rst"  # antsibull-docs wants it writable by itself only
antsibull-docs --config-file "$build/project/antsibull-docs.cfg" collection --use-current --squash-hierarchy \
  --fail-on-error --cleanup everything --dest-dir "$build/project/rst" mlops.deploy
# The pages antsibull-docs writes refer to a few labels of the Ansible docs (intersphinx
# online): offline, a page of the site holds them, each linking to the Ansible docs.
cat >"$build/project/rst/ansible-docs-links.rst" <<'RST'
:orphan:

The Ansible documentation
=========================

.. _common_return_values:

Common return values
--------------------

https://docs.ansible.com/ansible/latest/reference_appendices/common_return_values.html

.. _ansible_configuration_settings:

Configuration settings
----------------------

https://docs.ansible.com/ansible/latest/reference_appendices/config.html

.. _action_plugins:

Action plugins
--------------

https://docs.ansible.com/ansible/latest/plugins/action.html
RST
# So are the modules of other collections that the pages name (M(amazon.aws.x), seealso):
# each gets a label here, linking to its page in the Ansible docs.
grep -rhoE 'ansible_collections\.[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+_module' "$build/project/rst" \
  | grep -v '^ansible_collections\.mlops\.deploy\.' | sort -u | while read -r label; do
  IFS=. read -r _ ns coll module <<<"$label"
  title="$ns.$coll.${module%_module}"
  printf '\n.. _%s:\n\n%s\n%s\n\nhttps://docs.ansible.com/ansible/latest/collections/%s/%s/%s.html\n' \
    "$label" "$title" "$(printf '%*s' ${#title} '' | tr ' ' -)" "$ns" "$coll" "$module"
done >>"$build/project/rst/ansible-docs-links.rst"
sphinx-build -q -W --keep-going -b html -c "$build/project" "$build/project/rst" "$build/html" 2>&1 | tee "$build/sphinx.log"
pages=$(find "$build/html" -name '*.html' | wc -l)
echo "docs: $pages HTML pages in .build/docs/html (index: .build/docs/html/index.html)"
