#!/usr/bin/env bash
# antsibull-docs lint-collection-docs on this collection: docs/docsite (extra-docs.yml,
# links.yml, every guide) and every module, plugin and role page (schema, markup,
# references, rstcheck). The collections it may load are this one and what it depends on
# (amazon.aws and the collections the roles use, from the `ansible` package): a collections
# path with only those, sys.path not scanned, so `--validate-collection-refs all` reads
# these few collections rather than every collection the `ansible` package carries.
set -uo pipefail
# shellcheck source=tools/env.sh
. "$(dirname "$0")/env.sh"
tree=$ROOT/.build/docs-lint/ansible_collections
rm -rf "$ROOT/.build/docs-lint"
mkdir -p "$tree/mlops"
ln -sfn "$ROOT" "$tree/mlops/deploy"
site=$(python -c 'import ansible_collections, os; print(os.path.dirname(ansible_collections.__file__))' 2>/dev/null \
  || python -c 'import ansible_collections; print(list(ansible_collections.__path__)[0])')
for dep in amazon/aws community/aws community/docker ansible/posix; do
  mkdir -p "$tree/${dep%/*}"
  ln -sfn "$site/$dep" "$tree/$dep"
done
ANSIBLE_COLLECTIONS_PATH=$ROOT/.build/docs-lint ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=false \
  antsibull-docs lint-collection-docs --plugin-docs --validate-collection-refs all --disallow-unknown-collection-refs .
