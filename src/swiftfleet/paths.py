"""Where the kit keeps its files; every location can be moved with an environment variable (tests do)."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _dir(env: str, default: Path) -> Path:
    return Path(os.environ.get(env, default)).expanduser().resolve()


def inventory_dir() -> Path:
    """One `<cluster>.yml` per live cluster; ansible.cfg points Ansible at this directory."""
    return _dir("SWIFTFLEET_INVENTORY_DIR", REPO_ROOT / "ansible" / "inventory")


def state_dir() -> Path:
    """Per-cluster private state: SSH keys of local clusters, pinned known_hosts, reports."""
    return _dir("SWIFTFLEET_STATE_DIR", REPO_ROOT / "ansible" / "state")


def terraform_dir() -> Path:
    """The Terraform module that `cluster up` applies (one workspace per cluster)."""
    return _dir("SWIFTFLEET_TERRAFORM_DIR", REPO_ROOT / "terraform")


def playbooks_dir() -> Path:
    return REPO_ROOT / "playbooks"
