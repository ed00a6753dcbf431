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
antsibull-docs sphinx-init --use-current --squash-hierarchy --lenient --dest-dir "$build/project" mlops.deploy >/dev/null
# Offline: no intersphinx inventories fetched from the internet.
printf '\n# tools/docs.sh: offline build, no inventories fetched\nintersphinx_mapping = {}\n' >>"$build/project/conf.py"
antsibull-docs collection --use-current --squash-hierarchy --fail-on-error \
  --dest-dir "$build/project/rst" mlops.deploy
sphinx-build -q -W --keep-going -b html -c "$build/project" "$build/project/rst" "$build/html" 2>&1 | tee "$build/sphinx.log"
pages=$(find "$build/html" -name '*.html' | wc -l)
echo "docs: $pages HTML pages in .build/docs/html (index: .build/docs/html/index.html)"
