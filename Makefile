# swiftfleet: run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    ?= .venv
VENV_SWIFT ?= .venv-swift
PYTHON  ?= python3.11
CLUSTER ?=
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
CONFIG_ARG := $(if $(CLUSTER),--config $(CLUSTER),)
APT_PACKAGES := docker.io mmdebstrap iproute2 iptables openssh-client

.PHONY: help deps apt-deps venv venv-swift dockerd image cluster-up cluster-down cluster-status check demo \
        lint test test-fast tf-check

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

deps: apt-deps venv venv-swift dockerd ## Install everything (apt packages, Python venvs) and start dockerd

apt-deps: ## Install the Debian packages the kit needs (docker.io, mmdebstrap, ...)
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed ## Create the Python virtual environment with the kit and its dev tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

venv-swift: $(VENV_SWIFT)/.installed ## A controller-side ms-swift (CPU torch) for argument lists and the tiny model

# torch==2.13.0 first: pip takes the CPU wheel lying on this kind of machine, not a multi-GB CUDA build.
$(VENV_SWIFT)/.installed: roles/ms_swift/defaults/main.yml
	$(PYTHON) -m venv $(VENV_SWIFT)
	$(VENV_SWIFT)/bin/pip install -q --upgrade pip
	$(VENV_SWIFT)/bin/pip install -q torch==2.13.0
	$(VENV_SWIFT)/bin/pip install -q "ms-swift[megatron]==$$(sed -n 's/^ms_swift_version: *"\{0,1\}\([0-9.]*\).*/\1/p' roles/ms_swift/defaults/main.yml)"
	touch $@

dockerd: ## Start a Docker engine if none is running
	@bash scripts/start-dockerd.sh

image: venv ## Build the Debian node image for local clusters and Molecule (offline, ~30 s)
	swiftfleet image

cluster-up: venv ## Create the cluster (CLUSTER=file.yml; default: 2 local nodes) and write the inventory
	swiftfleet cluster up $(CONFIG_ARG)

cluster-down: venv ## Remove every resource of the cluster and its inventory
	swiftfleet cluster down $(CONFIG_ARG)

cluster-status: venv ## Show the cluster's nodes
	swiftfleet cluster status $(CONFIG_ARG)

check: venv ## Connectivity and GPU report over SSH (JSON=1 for JSON)
	swiftfleet check $(CONFIG_ARG) $(if $(JSON),--json,)

demo: cluster-up check ## The main job on the local default: cluster up, then the connectivity report

lint: venv ## ruff, mypy, terraform fmt/validate, checkov, ansible-lint
	ruff check src tests bench
	ruff format --check src tests bench
	mypy src
	$(MAKE) tf-check

tf-check: venv ## terraform fmt -check, validate, test and the checkov scan
	bash scripts/tf-check.sh

test: venv dockerd ## The whole suite: lint, then pytest (Terraform on moto, local cluster, Molecule)
	$(MAKE) lint
	pytest -ra

test-fast: venv ## Only the tests that need neither Docker nor Terraform
	pytest -ra -m "not docker and not moto"

# Jobs. SWIFT_PY: a Python with the pinned ms-swift installed (regenerates the argument list the checks use).
JOB     ?= jobs/tiny-lora.yml
NODES   ?= 2
INVENTORY ?=
SWIFT_PY ?=
.PHONY: render schema

render: venv ## Check a job, render every node's files locally (JOB=jobs/x.yml; INVENTORY=cluster name or NODES=N)
	swiftfleet render $(JOB) $(if $(INVENTORY),--inventory-cluster $(INVENTORY),--nodes $(NODES))

schema: venv ## Regenerate jobs/job.schema.json (and, with SWIFT_PY=..., the ms-swift argument list)
	$(if $(SWIFT_PY),$(SWIFT_PY) src/swiftfleet/jobs/gen_ms_swift_args.py src/swiftfleet/jobs/data/ms_swift_args.json)
	python -c 'from swiftfleet.jobs.spec import schema_text; open("jobs/job.schema.json", "w").write(schema_text())'

# Hosts: the stack on every node of a cluster (roles/, playbooks/setup.yml) and the role tests.
ROLE ?=
CLUSTER_INVENTORY = python -c 'import sys; from pathlib import Path; from swiftfleet.settings import load_cluster; \
  from swiftfleet.inventory import inventory_path; print(inventory_path(load_cluster(Path(sys.argv[1]) if sys.argv[1] else None).name))'
.PHONY: setup molecule

setup: venv ## Install uv, ms-swift (and CUDA/EFA/TE/apex on GPU nodes) on every node, then the stack table (CLUSTER=file.yml)
	@inventory=$$($(CLUSTER_INVENTORY) "$(CLUSTER)") && ansible-playbook -i "$$inventory" playbooks/setup.yml

molecule: venv dockerd image ## molecule test of every role's scenario (ROLE=name for one)
	@set -e; for scenario in roles/$(or $(ROLE),*)/molecule/default; do \
	  role=$$(basename $$(dirname $$(dirname $$scenario))); echo "== molecule test $$role"; \
	  (cd roles/$$role && SWIFTFLEET_MOLECULE_ID=$$role molecule test); done
