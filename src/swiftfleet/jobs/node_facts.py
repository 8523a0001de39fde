"""What setup recorded about each node: where the stack is and what it holds.

The stack_check role (the last role of playbooks/setup.yml) writes one report per node to the node
(/etc/swiftfleet/node.json) and all of them to the controller (facts_file(cluster)). The plan reads the
controller's copy, so a job is checked against the nodes' real stack without touching any node.
"""

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from swiftfleet import paths, validation
from swiftfleet.errors import SwiftfleetError

ABSENT = "not installed"  # what stack_report.py says of a package it does not find


class NodeFacts(BaseModel):
    """One node's setup record (roles/stack_check/files/stack_report.py plus the role's paths)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    job_user: str
    home: str
    venv: str
    env_files: list[str]
    ms_swift: str
    torch: str
    gpu_count: int
    consistent: bool = True  # stack_report.py's verdict: False lists its reasons in issues
    issues: list[str] = []
    distributions: dict[str, str] = {}
    # Where setup put the bulky data (roles/node_storage, /etc/swiftfleet/storage.json). Records written before
    # that role existed lack them: the job root is then ~/swiftfleet and the hub cache the job user's default.
    data_dir: str | None = None  # job directories and checkpoints: <data_dir>/jobs/<job>
    scratch: str | None = None  # the local NVMe the data_dir is on, if any
    shared_dir: str | None = None  # the shared file system's swiftfleet directory, if mounted
    hub_cache: str | None = None  # HF_HOME and MODELSCOPE_CACHE live under it; None: the user's default

    def job_dir(self, job: str) -> str:
        return f"{self.data_dir or self.home + '/swiftfleet'}/jobs/{job}"

    @property
    def shared_hub(self) -> bool:
        """Is the hub cache on the shared file system (one download serves every node)?"""
        return bool(self.shared_dir and self.hub_cache and self.hub_cache.startswith(self.shared_dir + "/"))


RECORD = TypeAdapter(dict[str, NodeFacts])  # host name -> its record, as setup.yml saves them


def facts_file(cluster: str) -> Path:
    """The controller's copy of every node's record; setup.yml writes it (filter swiftfleet_facts_file)."""
    return paths.state_dir() / cluster / "stack.json"


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares it (stack_report.py records them so)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def load(cluster: str) -> dict[str, NodeFacts] | None:
    """Host name -> its record, or None when setup never finished on this cluster."""
    path = facts_file(cluster)
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SwiftfleetError(f"setup record {path}: unreadable ({exc}); run make setup again") from None
    try:
        return RECORD.validate_python(data)
    except ValidationError as exc:
        raise SwiftfleetError(
            f"setup record {validation.one_line(str(path), exc, RECORD)}; run make setup again"
        ) from None


def assumed(user: str) -> NodeFacts:
    """The record a node would have with the roles' defaults (roles/README.md: swiftfleet_venv, swiftfleet_job_user,
    the cuda and nccl_efa roles' env files): what a dry run shows when setup has not run."""
    home = "/root" if user == "root" else f"/home/{user}"
    return NodeFacts(
        job_user=user,
        home=home,
        venv=f"{home}/swift-env",
        data_dir=f"{home}/swiftfleet",
        env_files=["/etc/swiftfleet/cuda.env", "/etc/swiftfleet/nccl.env"],
        ms_swift=ABSENT,
        torch=ABSENT,
        gpu_count=0,
    )
