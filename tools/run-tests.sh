#!/usr/bin/env bash
# Runs the test layers in order, stopping at the first failure. Each layer prints
# one summary line: "== <layer>: PASS|FAIL in <s>s — <what it saw>".
# Usage: tools/run-tests.sh all | lint | ansible-lint | sanity | galaxy | docs | unit | sandbox-test | molecule | integration | ci
set -uo pipefail
# shellcheck source=tools/env.sh
. "$(dirname "$0")/env.sh"
OUT=$ROOT/.build/test-logs
mkdir -p "$OUT"

ALL=(lint ansible-lint sanity galaxy docs unit sandbox-test molecule integration ci)

summary() { printf '== %-13s %s in %ss — %s\n' "$1:" "$2" "$3" "$4"; }

# The layers that need the sandbox start it (idempotent), except in the background of `all`:
# there the sandbox is up already, and another `up` while the integration tests run would
# bring the default fleet back to its count under a test that stopped an instance on purpose.
sandbox_up() { [ "${MLOPS_SANDBOX_IS_UP:-0}" = 1 ] || mlops-sandbox up; }

# pytest: exit code 5 (nothing collected) is a failure of the suite, like any non-zero.
pytest_layer() {
  local name=$1; shift
  local log=$OUT/$name.log rc
  # the slowest tests are listed at the end of each log (where the suite's time goes)
  pytest --durations=25 --durations-min=5 "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  LAYER_INFO=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error).* in [0-9.]+s|no tests ran' "$log" | tail -n1 | sed -E 's/^=+ //; s/ =+$//')
  if [ "$rc" -eq 5 ]; then LAYER_INFO="no tests collected (pytest exit 5): the layer tested nothing"; fi
  return "$rc"
}

layer_lint() {
  local files dirs=()
  for d in plugins roles sandbox tests tools bench demo; do [ -d "$d" ] && dirs+=("$d"); done
  ruff check --output-format concise "${dirs[@]}" || return 1
  ruff format --check "${dirs[@]}" || { echo "ruff format: run 'ruff format ${dirs[*]}' to fix" >&2; return 1; }
  yamllint -s . || return 1
  python tools/iam_docs.py --check || return 1
  # Modules run on the managed host's Python: 3.9 and later (tests/config.yml).
  vermin --no-tips --violations --eval-annotations -t=3.9- -q plugins/modules plugins/module_utils || {
    echo "vermin: plugins/modules and plugins/module_utils must run on Python 3.9 (tests/config.yml)" >&2; return 1; }
  # The docs site's sources: guides, extra-docs.yml, and every module, plugin and role page.
  tools/docs-lint.sh >"$OUT/docs-lint.log" 2>&1 || {
    cat "$OUT/docs-lint.log" >&2; echo "antsibull-docs lint-collection-docs: fix the docs above" >&2; return 1; }
  # The CI templates: the schemas check-jsonschema vendors (GitLab's !reference tags read
  # by its gitlab-ci transform), zizmor's audits of the workflow (offline, every persona's
  # finding), shellcheck-level care of the shared script by bash -n.
  check-jsonschema --builtin-schema vendor.gitlab-ci --data-transform gitlab-ci ci/gitlab-ci.yml || return 1
  check-jsonschema --builtin-schema vendor.github-workflows ci/github-workflow.yml || return 1
  zizmor --offline --persona pedantic --no-progress ci/github-workflow.yml || return 1
  bash -n ci/mlops-ci.sh || return 1
  files=$(git ls-files '*.py' | wc -l)
  LAYER_INFO="ruff clean on $files Python files, modules Python 3.9+ (vermin), yamllint clean on $(git ls-files '*.yml' '*.yaml' | wc -l) YAML files,"
  LAYER_INFO+=" docs lint clean ($(git ls-files 'docs/docsite/rst/*.rst' | wc -l) guides), CI templates valid (GitLab CI and GitHub workflow schemas), zizmor clean"
}

layer_ansible-lint() {
  local log=$OUT/ansible-lint.log
  # Offline, ansible-lint installs the collection under test into $ANSIBLE_HOME and puts
  # ~/.ansible/collections first (shared by every checkout, and where molecule installs a
  # copy): keep it per checkout so no other copy shadows this one.
  ANSIBLE_HOME=$ROOT/.build/ansible-home ansible-lint --profile production --offline --nocolor 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  LAYER_INFO=$(grep -E '^(Passed|Failed):' "$log" | tail -n1 | sed -E "s/ Profile 'production' was required.*//")
  return "$rc"
}

layer_sanity() { tools/sanity.sh; local rc=$?; LAYER_INFO=$(cat "$OUT/sanity.summary" 2>/dev/null); return $rc; }

# galaxy-importer, the checks Galaxy runs on upload, on the built tarball: no error, no warning.
layer_galaxy() { tools/galaxy-importer.sh; local rc=$?; LAYER_INFO=$(cat "$OUT/galaxy.summary" 2>/dev/null); return $rc; }

# The docs site (`make docs`): Sphinx with -W, so a page that does not render or a broken
# reference fails the suite, not only the next person building the docs.
layer_docs() {
  tools/docs.sh >"$OUT/docs.log" 2>&1
  local rc=$?
  LAYER_INFO=$(tail -n1 "$OUT/docs.log")
  [ $rc -eq 0 ] || { grep -E 'WARNING|ERROR' "$OUT/docs.log" | head -n 20; LAYER_INFO="the docs do not build: $(grep -cE 'WARNING|ERROR' "$OUT/docs.log") warnings/errors (log: .build/test-logs/docs.log)"; }
  return $rc
}

layer_unit() { pytest_layer unit tests/unit demo/tests -q -p no:cacheprovider; }

layer_sandbox-test() {
  sandbox_up || return 1
  pytest_layer sandbox-test sandbox/tests -q -p no:cacheprovider
}

# Molecule: every scenario of each role (docker driver). ec2_host and bastion_efs_sync run on
# the sandbox's systemd image (systemd as PID 1, as on EC2; `mlops-sandbox image systemd`
# builds it once, cached by content), ec2_host's no_systemd scenario on the plain base
# image (the role's branch for containers and image bakes). Containers are named and
# labelled with MLOPS_SANDBOX_NAME, so helpers sharing the engine never collide; leftovers
# of an interrupted run of a scenario are removed before it starts.
# apt (archives, lists) and pip in the containers use caches on the machine (MLOPS_MOLECULE_CACHE), kept
# between runs: a rerun downloads nothing. MOLECULE_ROLES narrows the run (role, or role/scenario).
layer_molecule() {
  sandbox_up || return 1
  set -a; . "$ROOT/.sandbox/env"; set +a
  MLOPS_SANDBOX_SYSTEMD_IMAGE=$(mlops-sandbox image systemd) || return 1
  export MLOPS_SANDBOX_SYSTEMD_IMAGE
  export MLOPS_MOLECULE_CACHE=${MLOPS_MOLECULE_CACHE:-/var/cache/mlops-deploy/molecule}
  mkdir -p "$MLOPS_MOLECULE_CACHE"/{apt-archives,apt-lists/partial,pip}
  # Molecule installs the collection under $ANSIBLE_HOME and puts it first: per checkout, so
  # that another checkout's copy (~/.ansible/collections is shared) never shadows this one.
  export ANSIBLE_HOME=$ROOT/.build/ansible-home
  local entry role scenario dir name start rc passed=0 times=() failed=() runs=()
  for entry in ${MOLECULE_ROLES:-ec2_host bastion_efs_sync ecs_exec}; do
    role=${entry%%/*}
    if [ "$entry" != "$role" ]; then
      runs+=("$role/${entry#*/}")
    else
      for dir in "roles/$role"/molecule/*/; do runs+=("$role/$(basename "$dir")"); done
    fi
  done
  for entry in "${runs[@]}"; do
    role=${entry%%/*} scenario=${entry#*/}
    name=$role; [ "$scenario" = default ] || name=$role-$scenario
    docker ps -aq --filter "label=io.mlops-deploy.molecule=$MLOPS_SANDBOX_NAME" \
      --filter "label=io.mlops-deploy.molecule-scenario=$role-$scenario" | xargs -r docker rm -f >/dev/null
    start=$SECONDS
    echo "-- molecule test: roles/$role, scenario $scenario (log: .build/test-logs/molecule-$name.log)"
    (cd "roles/$role" && MOLECULE_EPHEMERAL_DIRECTORY=$ROOT/.build/molecule/$name molecule test -s "$scenario") \
      >"$OUT/molecule-$name.log" 2>&1
    rc=$?
    times+=("$name $((SECONDS - start))s")
    if [ "$rc" -eq 0 ]; then
      passed=$((passed + 1))
    else
      failed+=("$name"); tail -n 40 "$OUT/molecule-$name.log"
    fi
  done
  LAYER_INFO="$passed of ${#runs[@]} scenarios passed ($(IFS=,; echo "${times[*]}" | sed 's/,/, /g'))"
  [ "${#failed[@]}" -eq 0 ] || { LAYER_INFO+="; failed: ${failed[*]}"; return 1; }
}

layer_integration() {
  sandbox_up || return 1
  pytest_layer integration tests/integration -q -p no:cacheprovider
}

# The CI templates run for real: gitlab-ci-local (shell executor) and the GitHub workflow's
# deploy steps against the sandbox's dev, staging and prod accounts (tests/ci).
layer_ci() {
  sandbox_up || return 1
  pytest_layer ci tests/ci -q -p no:cacheprovider
}

run_layer() {
  local name=$1 start rc
  start=$SECONDS
  LAYER_INFO=""
  echo "---- $name"
  "layer_$name"
  rc=$?
  local line
  line=$(summary "$name" "$([ $rc -eq 0 ] && echo PASS || echo FAIL)" $((SECONDS - start)) "${LAYER_INFO:-exit code $rc}")
  echo "$line"
  echo "$line" >>"$OUT/summary.txt"
  return $rc
}

# `all`: the layers in order, except the BESIDE ones, which run one after the other in the
# background beside the sandbox-backed pytest layers from BESIDE_FROM on (their own
# containers and accounts, the same sandbox; on 2 cores most of the foreground's time is
# waiting on containers). The static layers (GATE) go first there: they need no sandbox,
# and the foreground waits for them to pass before GATED starts, so a lint error still
# stops the suite within minutes, not after the integration tests. molecule's scenarios
# use containers of their own; the CI layer's pipelines run in the sandbox's dev, staging
# and prod accounts, whose SSM calls the integration tests' throttling and call counts
# leave alone (they are narrowed to moto's default account). Their output goes to
# .build/test-logs/<layer>.out, their summary lines join the others as they end.
# MLOPS_TEST_SERIAL=1 runs everything in order.
BESIDE=(lint ansible-lint sanity galaxy docs unit molecule ci)
BESIDE_FROM=sandbox-test
GATE=(lint ansible-lint sanity galaxy docs unit)
GATED=integration

failed() {
  echo; echo "Summary:"; cat "$OUT/summary.txt"
  echo "FAILED at layer '$1' after $((SECONDS - total))s; logs in .build/test-logs/"
  exit 1
}

is_beside() { local l; for l in "${BESIDE[@]}"; do [ "$l" = "$1" ] && return 0; done; return 1; }

# The BESIDE layers of this run, each to its own .out; the names of those that failed
# go to beside.failed.
# gate.done is written once the GATE layers among them have run (passed or not); when one
# of them failed, the layers after them are not started.
run_beside() {
  local layer gate_left=0
  export MLOPS_SANDBOX_IS_UP=1
  : >"$OUT/beside.failed"
  for layer in "$@"; do is_gate "$layer" && gate_left=$((gate_left + 1)); done
  [ "$gate_left" -gt 0 ] || : >"$OUT/gate.done"
  for layer in "$@"; do
    run_layer "$layer" >"$OUT/$layer.out" 2>&1 || echo "$layer" >>"$OUT/beside.failed"
    if is_gate "$layer"; then
      gate_left=$((gate_left - 1))
      [ "$gate_left" -gt 0 ] && continue
      : >"$OUT/gate.done"
      [ -s "$OUT/beside.failed" ] && return 1  # the suite stops: the rest is not started
    fi
  done
  [ ! -s "$OUT/beside.failed" ]
}

is_gate() { local l; for l in "${GATE[@]}"; do [ "$l" = "$1" ] && return 0; done; return 1; }

# Before GATED: the GATE layers running beside have ended (bounded by the background job
# itself: it writes gate.done or exits), and none failed; else the suite stops here.
wait_gate() {
  local pid=$1 layer
  [ -n "$pid" ] || return 0
  echo "---- waiting for ${GATE[*]} (beside) to pass before $GATED"
  while [ ! -e "$OUT/gate.done" ] && kill -0 "$pid" 2>/dev/null; do sleep 1; done
  while read -r layer; do is_gate "$layer" && return 1; done <"$OUT/beside.failed"
  return 0
}

# The background layers end before the suite does (pass or fail): nothing of them is left running.
join_beside() {
  local pid=$1 layer
  [ -n "$pid" ] || return 0
  echo "---- waiting for ${beside_layers[*]} (running beside; output: .build/test-logs/<layer>.out)"
  wait "$pid" && return 0
  while read -r layer; do
    echo "---- $layer (beside) failed:"; tail -n 40 "$OUT/$layer.out"
  done <"$OUT/beside.failed"
  return 1
}

layers=("$@")
mode=given
if [ "${layers[0]:-all}" = all ]; then layers=("${ALL[@]}"); mode=all; fi
[ "${MLOPS_TEST_SERIAL:-0}" = 1 ] && mode=given
: >"$OUT/summary.txt"
rm -f "$OUT/gate.done" "$OUT/beside.failed"
total=$SECONDS
beside_pid="" beside_layers=()
for layer in "${layers[@]}"; do
  declare -F "layer_$layer" >/dev/null || { echo "unknown layer: $layer (one of: ${ALL[*]})" >&2; exit 2; }
done
if [ "$mode" = all ]; then
  for layer in "${layers[@]}"; do is_beside "$layer" && beside_layers+=("$layer"); done
fi
for layer in "${layers[@]}"; do
  if [ "$mode" = all ] && is_beside "$layer"; then continue; fi
  if [ "$mode" = all ] && [ "$layer" = "$BESIDE_FROM" ] && [ -z "$beside_pid" ]; then
    # One `up` before both sides, so they never race to start the sandbox.
    mlops-sandbox up || failed "$layer"
    echo "---- ${beside_layers[*]}: started beside the next layers, one after the other (output: .build/test-logs/<layer>.out)"
    : >"$OUT/beside.failed"
    run_beside "${beside_layers[@]}" &
    beside_pid=$!
  fi
  if [ "$mode" = all ] && [ "$layer" = "$GATED" ] && ! wait_gate "$beside_pid"; then
    join_beside "$beside_pid"
    failed "$(paste -sd, "$OUT/beside.failed")"
  fi
  if ! run_layer "$layer"; then
    join_beside "$beside_pid"
    failed "$layer"
  fi
done
join_beside "$beside_pid" || failed "$(paste -sd, "$OUT/beside.failed")"
echo; echo "Summary:"; cat "$OUT/summary.txt"
echo "ALL PASSED (${layers[*]}) in $((SECONDS - total))s"
