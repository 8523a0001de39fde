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
APT_PACKAGES := docker.io mmdebstrap iproute2 iptables openssh-client rsync

.PHONY: help deps apt-deps venv venv-swift dockerd image cluster-up cluster-down cluster-status cluster-ttl check nccl-test demo \
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
# bitsandbytes at the role's pin (its bnb need): tests/jobs/test_tiny_qlora.py trains a 4-bit QLoRA with it.
$(VENV_SWIFT)/.installed: roles/ms_swift/defaults/main.yml roles/ms_swift/vars/main.yml
	$(PYTHON) -m venv $(VENV_SWIFT)
	$(VENV_SWIFT)/bin/pip install -q --upgrade pip
	$(VENV_SWIFT)/bin/pip install -q torch==2.13.0
	$(VENV_SWIFT)/bin/pip install -q "ms-swift[megatron]==$$(sed -n 's/^ms_swift_version: *"\{0,1\}\([0-9.]*\).*/\1/p' roles/ms_swift/defaults/main.yml)" \
	  "$$(sed -n 's/.*"\(bitsandbytes==[0-9.]*\)".*/\1/p' roles/ms_swift/vars/main.yml)"
	touch $@

dockerd: ## Start a Docker engine if none is running
	@bash scripts/start-dockerd.sh

image: venv ## Build the Debian node image for local clusters and Molecule (offline, ~30 s)
	swiftfleet image

# Baked images (CLUSTER=file.yml): local Docker images, or the aws cluster file's region's AMIs.
.PHONY: image-bake image-list image-rm
image-bake: venv ## Make an idle, set-up node into an image whose nodes skip setup (CLUSTER=... NODE=0; aws: the node reboots)
	swiftfleet image bake $(CONFIG_ARG) --node $(or $(NODE),0)

image-list: venv ## The baked images (local, or with an aws CLUSTER file its region's AMIs)
	swiftfleet image list $(CONFIG_ARG)

image-rm: venv ## Remove a baked image (IMAGE=tag or ami-...; aws: deregister and delete its snapshots)
	swiftfleet image rm $(CONFIG_ARG) $(IMAGE)

cluster-up: venv ## Create the cluster (CLUSTER=file.yml; default: 2 local nodes) and write the inventory
	swiftfleet cluster up $(CONFIG_ARG)

cluster-down: venv ## Remove every resource of the cluster and its inventory (asks while a job runs; FORCE=1 does not)
	swiftfleet cluster down $(CONFIG_ARG) $(if $(FORCE),--force,)

cluster-status: venv ## Show the cluster's nodes
	swiftfleet cluster status $(CONFIG_ARG)

cluster-ttl: venv ## Move every node's TTL deadline to now + HOURS (CLUSTER=file.yml HOURS=N; aws nodes have a TTL)
	swiftfleet cluster ttl $(CONFIG_ARG) $(if $(HOURS),--hours $(HOURS))

check: venv ## Connectivity and GPU report over SSH (JSON=1 for JSON)
	swiftfleet check $(CONFIG_ARG) $(if $(JSON),--json,)

nccl-test: venv ## all_reduce_perf over every GPU, EFA plugin forced; bus bandwidth vs expected (CLUSTER=...; DRY_RUN=1: command only)
	swiftfleet nccl-test $(CONFIG_ARG) $(if $(DRY_RUN),--dry-run,) $(if $(FORCE),--force,)

demo: cluster-up check ## The main job on the local default: cluster up, then the connectivity report

lint: venv ## ruff, mypy, terraform fmt/validate, checkov, ansible-lint
	ruff check src tests bench callback_plugins playbooks/action_plugins playbooks/files
	ruff format --check src tests bench callback_plugins playbooks/action_plugins playbooks/files
	mypy src
	$(MAKE) tf-check

tf-check: venv ## terraform fmt -check, validate, test and the checkov scan
	bash scripts/tf-check.sh

test: venv dockerd ## The whole suite: lint, then pytest (Terraform on moto, local cluster, Molecule)
	$(MAKE) lint
	pytest -ra --durations=40

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

# JOB given (command line or environment, not the default above): also the ms_swift extras that job needs, as
# `swiftfleet needs` derives them from its kind and arguments (roles/ms_swift/vars/main.yml: ms_swift_extra_map).
SETUP_JOB = $(if $(filter-out file,$(origin JOB)),$(JOB))
setup: venv ## Install uv, ms-swift (and CUDA/EFA/TE/apex on GPU nodes) on every node, then the stack table (CLUSTER=file.yml; JOB=jobs/x.yml also installs what that job needs)
	@inventory=$$($(CLUSTER_INVENTORY) "$(CLUSTER)") && \
	$(if $(SETUP_JOB),extras=$$(swiftfleet needs $(SETUP_JOB)) && echo "$(SETUP_JOB) needs the extras $$extras" &&) \
	ansible-playbook -i "$$inventory" playbooks/setup.yml $(if $(SETUP_JOB),-e "{\"ms_swift_extras\": $$extras}")

molecule: venv dockerd image ## molecule test of every role's scenario (ROLE=name for one)
	@set -e; for scenario in roles/$(or $(ROLE),*)/molecule/default; do \
	  role=$$(basename $$(dirname $$(dirname $$scenario))); echo "== molecule test $$role"; \
	  (cd roles/$$role && SWIFTFLEET_MOLECULE_ID=$$role molecule test); done

# Jobs on a cluster: playbooks/<target>.yml with JOB (a job file) on CLUSTER's inventory; ARGS for more -e.
PLAYBOOK = inventory=$$($(CLUSTER_INVENTORY) "$(CLUSTER)") && ansible-playbook -i "$$inventory"
.PHONY: train plot status logs stop infer export deploy eval rehearsal

train: venv ## Train a job on the cluster (JOB=jobs/x.yml; ARGS="-e wait=false" returns once started; recover: true in the job brings a lost node back)
	swiftfleet train $(JOB) $(CONFIG_ARG) $(ARGS)

plot: venv ## A fetched training job's loss and learning-rate curves as outputs/NAME/curves.png (JOB=jobs/x.yml or its name)
	swiftfleet plot $(JOB)

status: ## Every rank's unit state, its node's load, memory and GPU use, and last progress line (JOB=...)
logs: ## The last lines of every rank's log, tagged (JOB=...; ARGS="-e lines=100 -e fetch=true")
stop: ## Stop a job on every rank (JOB=...; FORCE=1 also when someone else started it)
infer: ## swift infer|sample on every node (data-parallel): results to outputs/NAME/output/result.jsonl in input order (JOB=jobs/infer.yml, jobs/sample.yml)
export: ## swift export|merge-lora on rank 0: merge LoRA, quantize (JOB=jobs/rehearsal/tiny-merge.yml, jobs/quantize-awq.yml)
deploy: ## swift deploy|app|web-ui as a service, health-checked; prints the URL, or the SSH tunnel to a UI (JOB=jobs/deploy.yml, jobs/app.yml)
eval: ## swift eval against a server or checkpoint; prints the scores (JOB=jobs/eval.yml)
status logs stop infer export deploy eval: venv
	@$(PLAYBOOK) playbooks/$@.yml -e @$(JOB) $(if $(and $(FORCE),$(filter stop,$@)),-e force=true,) $(ARGS)

# The whole rehearsal on the local default cluster (CPU): each step is a real command a user runs.
rehearsal: venv venv-swift dockerd ## Up, setup, tiny model, train (2 nodes), plot, export, infer (2 nodes), deploy, chat, eval
	@set -e; export SWIFT_API_KEY=$${SWIFT_API_KEY:-$$(python -c 'import secrets; print(secrets.token_hex(16))')}; \
	step() { printf '\n== %s\n' "$$*"; }; \
	step "1/10 cluster up"; swiftfleet cluster up $(CONFIG_ARG); \
	inventory=$$($(CLUSTER_INVENTORY) "$(CLUSTER)"); \
	step "2/10 setup (uv, ms-swift, evalscope on every node)"; \
	ansible-playbook -i "$$inventory" playbooks/setup.yml -e '{"ms_swift_extras": ["eval"]}'; \
	step "3/10 tiny model and data (no download)"; \
	$(VENV_SWIFT)/bin/python tests/jobs/make_tiny_model.py build/tiny; \
	python tests/e2e/make_eval_set.py build/tiny/eval.jsonl build/tiny/evalset; \
	step "4/10 train LoRA on every node"; ansible-playbook -i "$$inventory" playbooks/train.yml -e @jobs/tiny-lora.yml; \
	step "5/10 plot the loss and learning rate"; swiftfleet plot jobs/tiny-lora.yml; \
	step "6/10 export: merge the LoRA"; ansible-playbook -i "$$inventory" playbooks/export.yml -e @jobs/rehearsal/tiny-merge.yml; \
	step "7/10 batch inference on every node"; ansible-playbook -i "$$inventory" playbooks/infer.yml -e @jobs/rehearsal/tiny-infer.yml; \
	step "8/10 deploy"; ansible-playbook -i "$$inventory" playbooks/deploy.yml -e @jobs/rehearsal/tiny-server.yml; \
	rank0=$$(python -c 'import sys, yaml; inv = yaml.safe_load(open(sys.argv[1]))["all"]["children"]; \
	  print(next(iter(inv.values()))["vars"]["master_addr"])' "$$inventory"); \
	step "9/10 chat with http://$$rank0:8000/v1"; python tests/e2e/chat.py "http://$$rank0:8000/v1" tiny "alpha beta gamma"; \
	step "10/10 eval"; ansible-playbook -i "$$inventory" playbooks/eval.yml -e @jobs/rehearsal/tiny-eval.yml; \
	step "done: the server still runs (make stop JOB=jobs/rehearsal/tiny-server.yml); make cluster-down removes it all (it asks first while the server runs)"
