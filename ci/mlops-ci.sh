#!/usr/bin/env bash
# The deploy steps of the CI templates (ci/gitlab-ci.yml, ci/github-workflow.yml): one
# script that both call, so the two CIs cannot drift apart. Documented in
# docs/docsite/rst/ci.rst.
#
#   mlops-ci.sh test              syntax of the release playbooks on every inventory, then $MLOPS_TEST_COMMAND
#   mlops-ci.sh build             build the images of $MLOPS_IMAGES, push them to $MLOPS_REGISTRY, tagged $MLOPS_IMAGE_TAG
#   mlops-ci.sh deploy ENV        build the release of this commit and deploy it to ENV (site.yml)
#   mlops-ci.sh promote ENV FROM  deploy to ENV the release FROM ran for this commit: same release id, same bundle and digests
#
# Credentials, per step: with MLOPS_ROLE_ARN_<ENV> (MLOPS_ROLE_ARN_REGISTRY for build) the
# script trades the CI's OIDC token for that role's session (STS AssumeRoleWithWebIdentity):
# GitLab's ID token in $MLOPS_ID_TOKEN (`id_tokens:`), or GitHub's, asked from
# $ACTIONS_ID_TOKEN_REQUEST_URL (`permissions: id-token: write`). Without a role, the
# credentials already in the environment are used as they are. Tokens and keys are never
# printed.
#
# Settings (environment variables; defaults in brackets):
#   MLOPS_INVENTORY_PATTERN  inventory of an environment, {env} replaced [inventories/{env}]
#   MLOPS_PLAYBOOK           the release playbook [mlops.deploy.site, this collection's playbooks/site.yml]
#   MLOPS_ENVS               environments `test` checks [dev staging prod]
#   MLOPS_IMAGES             images to build, NAME=CONTEXT_DIR, space separated (build)
#   MLOPS_REGISTRY           the shared registry, ACCOUNT.dkr.ecr.REGION.amazonaws.com (build)
#   MLOPS_IMAGE_TAG          the tag pushed and deployed [$CI_COMMIT_SHA or $GITHUB_SHA]
#   MLOPS_COMMIT             the commit a release is found by when promoted [$CI_COMMIT_SHA or $GITHUB_SHA]
#   MLOPS_TEST_COMMAND       the project's own tests (test), run with bash -c
#   MLOPS_ANSIBLE_ARGS       more ansible-playbook arguments (deploy, promote), e.g. -v
#   AWS_REGION               the region of the CI roles and the registry [eu-west-1]
set -euo pipefail

die() { printf 'mlops-ci: ERROR: %s\n' "$*" >&2; exit 2; }
say() { printf 'mlops-ci: %s\n' "$*"; }

PLAYBOOK=${MLOPS_PLAYBOOK:-mlops.deploy.site}
PATTERN=${MLOPS_INVENTORY_PATTERN:-}
[ -n "$PATTERN" ] || PATTERN='inventories/{env}'
COMMIT=${MLOPS_COMMIT:-${CI_COMMIT_SHA:-${GITHUB_SHA:-}}}
IMAGE_TAG=${MLOPS_IMAGE_TAG:-${CI_COMMIT_SHA:-${GITHUB_SHA:-}}}
export AWS_REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-eu-west-1}}
export AWS_DEFAULT_REGION=$AWS_REGION
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0}

inventory_of() {
  local env=$1 path
  path=${PATTERN//\{env\}/$env}
  [ -d "$path" ] || [ -f "$path" ] || die "no inventory for environment '$env' at $path (MLOPS_INVENTORY_PATTERN=$PATTERN)"
  printf '%s\n' "$path"
}

valid_env() {
  [[ $1 =~ ^[a-z][a-z0-9_-]*$ ]] || die "environment name '$1' is not valid (lower-case letters, digits, - and _)"
}

# The CI's OIDC token: GitLab's ID token variable, or GitHub's from the Actions runtime.
oidc_token() {
  if [ -n "${MLOPS_ID_TOKEN:-}" ]; then
    printf '%s' "$MLOPS_ID_TOKEN"
  elif [ -n "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" ] && [ -n "${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-}" ]; then
    python3 - <<'PY'
import json, os, urllib.parse, urllib.request
url = os.environ["ACTIONS_ID_TOKEN_REQUEST_URL"]
url += ("&" if "?" in url else "?") + urllib.parse.urlencode({"audience": os.environ.get("MLOPS_OIDC_AUDIENCE", "sts.amazonaws.com")})
request = urllib.request.Request(url, headers={"Authorization": "Bearer " + os.environ["ACTIONS_ID_TOKEN_REQUEST_TOKEN"]})
with urllib.request.urlopen(request, timeout=30) as resp:
    print(json.load(resp)["value"], end="")
PY
  else
    return 1
  fi
}

# Credentials of one environment's CI role (or of the registry's, for build), exported.
assume() {
  local name=$1 var role token answer
  var=MLOPS_ROLE_ARN_$(printf '%s' "$name" | tr '[:lower:]-' '[:upper:]_')
  role=${!var:-}
  if [ -z "$role" ]; then
    say "no $var: using the credentials of the environment as they are"
  else
    token=$(oidc_token) || die "$var is set but there is no OIDC token: GitLab needs id_tokens: MLOPS_ID_TOKEN on the job, GitHub needs permissions: id-token: write"
    # Unsigned: AssumeRoleWithWebIdentity is authorised by the token alone.
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE
    answer=$(aws sts assume-role-with-web-identity --role-arn "$role" \
      --role-session-name "mlops-ci-${name}-${CI_JOB_ID:-${GITHUB_RUN_ID:-local}}" \
      --web-identity-token "$token" --duration-seconds 3600 \
      --query '[Credentials.AccessKeyId, Credentials.SecretAccessKey, Credentials.SessionToken]' --output text) \
      || die "could not assume $role with the CI's OIDC token; check the role's trust policy (issuer, audience, subject) in docs/docsite/rst/ci.rst"
    read -r AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN <<<"$answer"
    export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
  fi
  say "acting as $(aws sts get-caller-identity --query Arn --output text)" \
    || die "the credentials for $name do not work (sts get-caller-identity failed)"
}

play() {
  local env=$1; shift
  local inventory
  inventory=$(inventory_of "$env")
  # shellcheck disable=SC2086  # MLOPS_ANSIBLE_ARGS is a list of words
  say "ansible-playbook -i $inventory $PLAYBOOK $* ${MLOPS_ANSIBLE_ARGS:-}"
  # shellcheck disable=SC2086
  ansible-playbook -i "$inventory" "$PLAYBOOK" "$@" ${MLOPS_ANSIBLE_ARGS:-}
}

cmd_test() {
  local env inventory
  for env in ${MLOPS_ENVS:-dev staging prod}; do
    valid_env "$env"
    inventory=${PATTERN//\{env\}/$env}
    if [ ! -e "$inventory" ]; then
      say "no inventory $inventory: $env skipped"
      continue
    fi
    # The settings file must be YAML; the playbook's syntax is checked without asking AWS
    # for hosts (the aws_ec2 inventory needs credentials this stage does not have).
    find "$inventory" -name '*.yml' -print0 | xargs -0 -r python3 -c 'import sys, yaml; [yaml.safe_load(open(p)) for p in sys.argv[1:]]' \
      || die "a YAML file under $inventory does not parse"
    ansible-playbook --syntax-check -i localhost, "$PLAYBOOK" >/dev/null || die "$PLAYBOOK does not pass --syntax-check"
    say "$inventory: YAML ok; $PLAYBOOK: syntax ok"
  done
  if [ -n "${MLOPS_TEST_COMMAND:-}" ]; then
    say "project tests: $MLOPS_TEST_COMMAND"
    bash -c "$MLOPS_TEST_COMMAND"
  fi
}

cmd_build() {
  [ -n "${MLOPS_IMAGES:-}" ] || die "MLOPS_IMAGES is empty: say what to build, NAME=CONTEXT_DIR (e.g. titanic-api=model)"
  [ -n "${MLOPS_REGISTRY:-}" ] || die "MLOPS_REGISTRY is empty: the shared registry, ACCOUNT.dkr.ecr.REGION.amazonaws.com"
  [ -n "$IMAGE_TAG" ] || die "no image tag: set MLOPS_IMAGE_TAG (default the commit, CI_COMMIT_SHA / GITHUB_SHA)"
  assume registry
  local account=${MLOPS_REGISTRY%%.*} item name context uri
  # The collection's own ECR login: docker credentials for the registry, the token never printed.
  ansible localhost -c local -m mlops.deploy.ecr_login -a "registry_ids=$account region=$AWS_REGION" >/dev/null \
    || die "ECR login to $MLOPS_REGISTRY failed; run with ANSIBLE_VERBOSITY=1 to see why"
  for item in $MLOPS_IMAGES; do
    name=${item%%=*}
    context=${item#*=}
    [ "$name" != "$item" ] && [ -d "$context" ] || die "MLOPS_IMAGES entry '$item' is not NAME=CONTEXT_DIR with an existing directory"
    uri=$MLOPS_REGISTRY/$name:$IMAGE_TAG
    say "docker build $uri from $context"
    docker build --quiet --tag "$uri" "$context" >/dev/null
    say "docker push $uri"
    docker push "$uri" | grep -E 'digest: sha256:' || die "docker push $uri reported no digest"
  done
}

cmd_deploy() {
  local env=${1:-}
  [ -n "$env" ] || die "deploy needs an environment: mlops-ci.sh deploy dev"
  valid_env "$env"
  [ -n "$IMAGE_TAG" ] || die "no image tag: set MLOPS_IMAGE_TAG (default the commit, CI_COMMIT_SHA / GITHUB_SHA)"
  assume "$env"
  play "$env" -e "image_tag=$IMAGE_TAG" ${COMMIT:+-e "release_commit=$COMMIT"}
}

cmd_promote() {
  local env=${1:-} from=${2:-}
  [ -n "$env" ] && [ -n "$from" ] || die "promote needs the environment and the one it promotes from: mlops-ci.sh promote prod staging"
  valid_env "$env"
  valid_env "$from"
  [ -n "$COMMIT" ] || die "no commit to find the release by: set MLOPS_COMMIT (default CI_COMMIT_SHA / GITHUB_SHA)"
  assume "$env"
  # The release is found in $from's bucket by this commit (release_commit): the bundle
  # $from ran, copied byte for byte; nothing is built.
  play "$env" -e "release_promote_from=$from" -e "release_commit=$COMMIT"
}

main() {
  local step=${1:-}
  [ $# -gt 0 ] && shift
  case $step in
    test) cmd_test "$@" ;;
    build) cmd_build "$@" ;;
    deploy) cmd_deploy "$@" ;;
    promote) cmd_promote "$@" ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; [ -z "$step" ] || die "unknown step '$step'"; exit 2 ;;
  esac
}

main "$@"
