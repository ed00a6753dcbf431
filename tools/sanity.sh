#!/usr/bin/env bash
# ansible-test sanity on the installed Python, on a copy of the collection laid out as
# ansible_collections/mlops/deploy (ansible-test needs that path), with the collections
# it depends on beside it. No entries in tests/sanity/ignore-*.txt, ever.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=$ROOT/.venv/bin:$PATH
OUT=$ROOT/.build/test-logs
mkdir -p "$OUT"
# Outside this git work tree: inside it, ansible-test would see the copy as ignored files.
tree=${TMPDIR:-/tmp}/mlops-deploy-sanity/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)/ansible_collections
dest=$tree/mlops/deploy
rm -rf "$dest"
mkdir -p "$dest"
# Files of the collection as the build sees them (tracked and new, not ignored), minus
# what galaxy.yml's build_ignore leaves out of the collection.
git ls-files -z --cached --others --exclude-standard \
  | grep -zvE '^(sandbox|tools|bench|demo|\.ci)/|^(Makefile|pyproject\.toml|requirements-dev\.(txt|lock)|\.gitignore)$' \
  | xargs -0 -I{} cp --parents -P {} "$dest/" 2>/dev/null
site=$("$ROOT/.venv/bin/python" -c 'import ansible_collections, os; print(os.path.dirname(ansible_collections.__file__))' 2>/dev/null \
  || "$ROOT/.venv/bin/python" -c 'import ansible_collections; print(list(ansible_collections.__path__)[0])')
for dep in amazon/aws community/aws community/docker ansible/posix; do
  mkdir -p "$tree/${dep%/*}"
  ln -sfn "$site/$dep" "$tree/$dep"
done
if compgen -G "$dest/tests/sanity/ignore-*.txt" >/dev/null && grep -qv '^\s*$' "$dest"/tests/sanity/ignore-*.txt; then
  echo "sanity: tests/sanity/ignore-*.txt holds entries; fix the code instead" >&2
  echo "ignore entries present" >"$OUT/sanity.summary"
  exit 1
fi
cd "$dest" || exit 1
log=$OUT/sanity.log
ansible-test sanity --python 3.11 --requirements --color no 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
n=$(grep -cE '^Running sanity test ' "$log")
if [ "$rc" -eq 0 ]; then
  echo "$n sanity tests passed, no ignore entries" >"$OUT/sanity.summary"
else
  echo "$(grep -cE '^ERROR: ' "$log") errors across $n sanity tests (see .build/test-logs/sanity.log)" >"$OUT/sanity.summary"
fi
exit "$rc"
