# mlops.deploy — the README's two commands are `make demo` and `make test`.
# Every target sets up what it needs first (idempotent; the second run skips it).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(ROOT)/.build/collections
export ANSIBLE_CONFIG := $(ROOT)/tests/ansible.cfg
export DOCKER_BUILDKIT := 0

.PHONY: help setup test lint ansible-lint sanity galaxy unit integration sandbox-test molecule ci-test \
        docs sandbox-up sandbox-down build lock clean bench demo demo-train demo-down

help:
	@echo "make demo         sandbox up, model deployed to a local fleet and tested (make demo-down removes it)"
	@echo "make demo-train   the Titanic model trained as an ECS task (log lines here), the serving image built with it"
	@echo "make test         every test layer, in order, stopping at the first failure"
	@echo "make lint | ansible-lint | sanity | galaxy | unit | sandbox-test | molecule | integration   one layer"
	@echo "make ci-test      the CI templates run with gitlab-ci-local against the sandbox's three accounts"
	@echo "make docs         the docs site (modules, plugins, roles, guides) into .build/docs/html"
	@echo "make sandbox-up | sandbox-down   the local AWS stand-in (.sandbox/env)"
	@echo "make build        the collection tarball"
	@echo "make bench        every bench/bench_*.py in turn (figures and ratios, sandbox up first)"

setup:
	@tools/setup.sh

test: setup
	@tools/run-tests.sh all

lint ansible-lint sanity galaxy unit integration sandbox-test molecule: setup
	@tools/run-tests.sh $@

ci-test: setup
	@tools/run-tests.sh ci

docs: setup
	@tools/docs.sh

demo: setup
	@tools/demo.sh

demo-train: setup
	@tools/demo.sh train

demo-down:
	@tools/demo.sh down

sandbox-up: setup
	@mlops-sandbox up

sandbox-down:
	@if [ -x $(VENV)/bin/mlops-sandbox ]; then mlops-sandbox down; else echo "sandbox: nothing set up"; fi

# Benchmarks print figures against a baseline measured in the same run; never timed tests.
bench: setup
	@mlops-sandbox up
	@for script in bench/bench_*.py; do echo "---- $$script"; python "$$script" || exit 1; done

build: setup
	@ansible-galaxy collection build --force --output-path .build/dist . >/dev/null
	@ls .build/dist/mlops-deploy-*.tar.gz

lock:
	@tools/lock.sh

clean: sandbox-down
	rm -rf .build .cache .pytest_cache .ruff_cache tests/output
