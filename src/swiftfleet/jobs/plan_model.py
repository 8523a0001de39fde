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
    bytes: int  # its size (a directory: its files'), for the staging's progress line
    is_dir: bool


class Staging(_Plan):
    """How the uploads reach the job's nodes: the controller sends each one once, to rank 0 (a tree of links,
    `tree`, named as the job directory wants them); with more nodes, rank 0 serves them read-only over rsync on its
    private address (`unit`, config file `config`) while the others copy them from it in parallel."""

    tree: str  # on the controller: <dest> -> <src> links, sent with one rsync
    bytes: int
    fan_out: bool  # more than one node: the others copy from rank 0
    address: str  # rank 0's private address
    port: int
    module: str  # the rsync module: rank 0's job directory, of which only `serves` is readable
    serves: list[str]  # the module's filter rules: the uploads and their parents, nothing else (no job.env)
    unit: str  # rank 0's transient unit running the rsync daemon as the job user
    config: str  # rank 0's rsyncd.conf (templates/job/stage_rsyncd.conf.j2)
    allow: list[str]  # the other nodes' private addresses, the only ones the daemon answers
    max_seconds: int  # the daemon never outlives a staging that died: systemd stops it then


class Download(_Plan):
    uri: str  # s3://
    dest: str


class Prefetch(_Plan):
    id: str
    repo_type: Literal["model", "dataset"]
    argv: list[str]  # argv[0] is relative to the environment's bin/


# A data-parallel job's files in its job directory on every node: its share of the rows, and its answers.
SHARE_ROWS = "data/rows.jsonl"
SHARE_RESULT = "output/result.jsonl"


class Shares(_Plan):
    """How a data-parallel job (`swift infer|sample`) splits its rows: rank R does lines bounds[R] = [lo, hi) of the
    sources read as one list; the results come back and are joined in rank order (input order)."""

    script: str  # node_plugins/shard_rows.py in the job directory; run.sh runs it before swift
    mode: Literal["lines", "file"]  # how a share is done and resumed (shard_rows.py)
    key: str  # names the rows and arguments: a re-run with another drops the earlier results
    sources: list[str]  # the uploaded rows files, relative to the job directory
    rows: str  # the node's share, written by the script
    result: str  # the node's results (infer's result_path; sample's output_dir/output_file)
    progress: str  # what the watch counts: infer's results, sample's state (its last batch done)
    total: int
    bounds: list[list[int]]
    fetched: list[str]  # on the controller: each rank's results, fetched
    joined: str  # on the controller: every result in input order (output/result.jsonl of the job's outputs)
    done_exit: int  # the script's exit status when the node's share is already done
    verb: Literal["answered", "sampled"]  # what the watch says of the rows done
    batch: int  # sample: rows per batch of its progress state; 0: progress counts lines


class RolloutPlan(_Plan):
    """GRPO server mode run by the kit: `swift rollout` on the job's last nodes (role rollout), started and
    health-checked before the trainers, which reach them at hosts:port; stopped when the trainers end."""

    config: dict[str, Any]  # the servers' config.yaml
    subcommand: Literal["rollout"] = "rollout"  # what the servers run: `swift rollout config.yaml`
    port: int
    hosts: list[str]  # the servers' private IPs (the trainers' vllm_server_host)
    health: str  # the path that answers 200 once a server serves


class Output(_Plan):
    mode: Literal["fetch", "keep", "s3"] | None
    uri: str | None
    local_dir: str


class PlanNode(_Plan):
    host: str
    rank: int  # the job's node index; torchrun's NODE_RANK on a trainer (the rollout nodes come last)
    role: Literal["train", "rollout"]
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
    launcher: bool  # deploy/eval: one process via swift_launch.py (keeps the API key off the command line)
    fresh_output: bool  # run.sh empties output/ before the run
    shares: Shares | None  # a data-parallel job's split of its rows
    rollout: RolloutPlan | None  # GRPO server mode: the rollout servers the job starts
    ms_swift: str
    nnodes: int  # torchrun's NNODES: the trainers (the job's nodes but its rollout servers)
    nproc_per_node: int
    master_addr: str
    master_port: int
    time_limit: str | None
    # A run that ends without a checkpoint-N then did no step, or saved nothing: a failure, not a success.
    expects_checkpoint: bool
    config: dict[str, Any]
    env: dict[str, str]
    api_key: str | None = Field(repr=False)
    port: int | None  # a service's (deploy, app) or an eval's server
    health: str | None  # a service's path that answers 200 once it serves
    tunnel: bool  # the service listens on its node's 127.0.0.1: reached through a printed SSH tunnel
    uploads: list[Upload]
    staging: Staging
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
