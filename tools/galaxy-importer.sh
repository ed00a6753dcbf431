#!/usr/bin/env bash
# galaxy-importer (the checks Galaxy runs on upload) on the tarball `make build` writes.
# Offline: its ansible-doc and ansible-lint runs find amazon.aws (the dependency) in the
# `ansible` package's collections on the virtualenv's sys.path, as an install resolves it;
# ansible-lint runs --offline. Fails on an ERROR line in its log, not only on its exit code
# (it ends "completed successfully" even when its ansible-doc run failed).
set -uo pipefail
# shellcheck source=tools/env.sh
. "$(dirname "$0")/env.sh"
OUT=$ROOT/.build/test-logs
mkdir -p "$OUT" "$ROOT/.build/galaxy-importer"
log=$OUT/galaxy-importer.log
ansible-galaxy collection build --force --output-path "$ROOT/.build/dist" . >/dev/null || exit 1
tarball=$(ls -t "$ROOT"/.build/dist/mlops-deploy-*.tar.gz | head -n1)
cfg=$ROOT/.build/galaxy-importer/galaxy-importer.cfg
printf '[galaxy-importer]\nRUN_ANSIBLE_DOC = True\nRUN_ANSIBLE_LINT = True\nOFFLINE_ANSIBLE_LINT = True\nRUN_ANSIBLE_TEST = False\nANSIBLE_LOCAL_TMP = %s\n' \
  "$ROOT/.build/galaxy-importer/tmp" >"$cfg"
# ANSIBLE_HOME per checkout: ansible-lint puts ~/.ansible/collections first, where another
# checkout (or molecule) may have left an older copy of this collection.
(cd "$ROOT/.build/galaxy-importer" && ANSIBLE_HOME=$ROOT/.build/galaxy-importer/ansible-home ANSIBLE_COLLECTIONS_SCAN_SYS_PATH=true GALAXY_IMPORTER_CONFIG=$cfg \
  python -m galaxy_importer.main "$tarball") >"$log" 2>&1
rc=$?
errors=$(grep -cE '^ERROR|\bERROR\b' "$log")
warnings=$(grep -cE '^WARNING|\bWARNING\b' "$log")
echo "galaxy-importer $(basename "$tarball"): exit $rc, $errors errors, $warnings warnings (log: .build/test-logs/galaxy-importer.log)" | tee "$OUT/galaxy.summary"
# Warnings (ansible-lint's findings, as Galaxy shows them) are listed; an error fails.
grep -E 'WARNING' "$log" | head -n 20 >&2
if [ "$rc" -ne 0 ] || [ "$errors" -gt 0 ]; then
  grep -E 'ERROR' "$log" | head -n 20 >&2
  exit 1
fi
