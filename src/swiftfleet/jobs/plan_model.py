"""The typed job plan: the one thing the node side reads.

plan.build() makes it once per run from the job file, the inventory and what setup recorded on each node
(node_facts). The playbooks get its JSON form through the `swiftfleet_job_plan` filter and the templates render
from that form, in Ansible and in `swiftfleet render` alike: they decide nothing of their own.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NodeFile(_Plan):
    """A rendered file on the node: templates/<template> -> dest."""

    template: str
    dest: str
    mode: str
    owner: str
    secret: bool = False  # holds a key: its task runs with no_log


class Upload(_Plan):
    src: str  # on the controller
    dest: str  # relative to the job directory


class Download(_Plan):
    uri: str  # s3://
    dest: str


class Prefetch(_Plan):
    id: str
    repo_type: Literal["model", "dataset"]
    argv: list[str]  # argv[0] is relative to the environment's bin/


class Output(_Plan):
    mode: Literal["fetch", "keep", "s3"] | None
    uri: str | None
    local_dir: str


class PlanNode(_Plan):
    host: str
    rank: int
    private_ip: str
    user: str  # the job user setup installed the stack for
    home: str
    venv: str  # the ms-swift environment setup made
    env_files: list[str]  # node-wide env files setup wrote (CUDA, NCCL/EFA), sourced before the job's
    job_dir: str
    env: dict[str, str]  # this node's own (hub caches on the storage setup chose); the job's env wins over it
    unit: str
    log: str
    files: list[NodeFile]


class JobPlan(_Plan):
    name: str
    kind: str
    playbook: str  # the playbook that runs this kind (train, export, deploy, eval)
    program: str
    subcommand: str
    torchrun: bool
    ms_swift: str
    nnodes: int
    nproc_per_node: int
    master_addr: str
    master_port: int
    time_limit: str | None
    # A run that ends without a checkpoint-N then did no step, or saved nothing: a failure, not a success.
    expects_checkpoint: bool
    config: dict[str, Any]
    env: dict[str, str]
    api_key: str | None = Field(repr=False)
    port: int | None
    uploads: list[Upload]
    downloads: list[Download]
    prefetch: list[Prefetch]
    prefetch_env: dict[str, str]
    prefetch_once: bool  # the hub cache is shared: only rank 0 downloads
    hub: str
    output: Output
    notes: list[str]
    warnings: list[str]
    nodes: list[PlanNode]

    def for_templates(self) -> dict[str, Any]:
        """The plain form the playbooks and templates read."""
        return self.model_dump(mode="json")
