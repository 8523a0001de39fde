"""The job file: one YAML mapping under a top-level `job:` key, checked before any host is touched.

The `job:` wrapper is what makes `ansible-playbook playbooks/train.yml -e @job.yml` safe: extra vars are global and
outrank every role variable, so bare `model`, `output` or `env` keys would override any role's variable of that name,
and `args` is an Ansible reserved name. Under `job:` the whole file is one variable.

Checks that need only the file live here (parse_job); checks against the cluster live in plan.py.
"""

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from swiftfleet import ports
from swiftfleet.errors import SwiftfleetError
from swiftfleet.jobs import ms_swift_args
from swiftfleet.jobs.refs import S3_URI, parse_dataset, parse_model
from swiftfleet.validation import one_line, read_yaml

Kind = Literal[
    "swift sft",
    "swift pt",
    "swift rlhf",
    "megatron sft",
    "megatron pt",
    "megatron rlhf",
    "swift deploy",
    "swift app",
    "swift web-ui",
    "swift eval",
    "swift export",
    "swift merge-lora",
    "swift infer",
    "swift sample",
    "megatron export",
]
TRAINING: frozenset[str] = frozenset(
    {"swift sft", "swift pt", "swift rlhf", "megatron sft", "megatron pt", "megatron rlhf"}
)
# Each node of the job answers its own contiguous share of the rows (the job field below; ms-swift's argument
# without the s) with one process, and the shares' results are joined in rank order. Not torchrun: ms-swift 4.6.0
# gathers a torchrun infer's answers on rank 0 with accelerate's gather_object, which without a GPU backend returns
# rank 0's own only (measured: 20 of 40 rows from 2 CPU ranks); `swift sample` is never sharded by torchrun (its
# data_range is one process's shard, and drops the last len % shards rows: swift/pipelines/sampling/sampling.py
# _get_dataset). Separate shares also let a re-run skip the nodes that finished.
ROWS_FIELD = {"swift infer": "val_datasets", "swift sample": "datasets"}
DATA_PARALLEL: frozenset[str] = frozenset(ROWS_FIELD)
# Long-running services on rank 0, run by deploy.yml until stop.yml: the OpenAI-compatible server, and the Gradio
# chat (ms-swift's web UI has no authentication: it listens on the node's 127.0.0.1, reached by an SSH tunnel).
SERVICES: frozenset[str] = frozenset({"swift deploy", "swift app", "swift web-ui"})
TUNNELED: frozenset[str] = frozenset({"swift app", "swift web-ui"})
TUNNELED_UI_ARGS = {
    "server_name": "the UI listens on 127.0.0.1 on its node, reached only through the SSH tunnel the kit prints "
    "(ms-swift's web UI has no authentication)",
    "share": "a public gradio.live link would open the UI to the internet: use the SSH tunnel the kit prints",
}
# The environment the kit itself sets for torchrun and the hub; a job's env may not override it.
KIT_ENV = frozenset({"NNODES", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT", "NPROC_PER_NODE", "USE_HF"})
API_KEY_ENV = "SWIFT_API_KEY"
JOB_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Arguments the kit writes from the job's own fields (or refuses for a reason), with the field to use instead.
MANAGED_ARGS = {
    "model": "use the job's `model`",
    "dataset": "use the job's `datasets`",
    "val_dataset": "use the job's `val_datasets`",
    "output_dir": "the kit sets it (the job directory's output/); see `output`",
    "eval_output_dir": "the kit sets it (the job directory's output/); see `output`",
    "result_path": "the kit sets it (output/result.jsonl in the job directory); see `output`",
    "resume_from_checkpoint": "use the job's `resume`",
    "rlhf_type": "use the job's `rlhf_type`",
    "use_hf": "use the job's `hub: huggingface`",
    "api_key": f"put the key in `env: {{{API_KEY_ENV}: ...}}`; it goes to a mode 0600 EnvironmentFile, never a command line",
    "host": "the server listens on 0.0.0.0; the security group decides who reaches it",
    # Secrets: config.yaml is readable by every user of the node and ms-swift logs all its arguments, so a token
    # goes in `env` (the node's mode-0600 job.env), under the name its library reads (ms-swift 4.6.0:
    # swift/arguments/base_args/base_args.py:140 MODELSCOPE_API_TOKEN, sft_args.py:26 SWANLAB_API_KEY).
    "hub_token": "a token goes in `env`, never in args: HF_TOKEN (hub: huggingface) or MODELSCOPE_API_TOKEN",
    "swanlab_token": "a token goes in `env`, never in args: SWANLAB_API_KEY",
    "swanlab_secret": "a secret goes in `env`, never in args; ms-swift takes this one only as an argument, "
    "which would land in config.yaml and every rank's log",
}
# Arguments of one kind that the kit sets (or refuses), with why; other kinds take them as the user gives them.
KIND_MANAGED_ARGS = {
    "swift sample": {
        "data_range": "the kit gives each node its share of the rows (ms-swift's data_range would drop the last "
        "rows of an uneven split)",
        "output_file": "the kit sets it (output/result.jsonl in the job directory); see `output`",
        "resume": "the kit resumes a node's share that stopped, and skips a finished one",
        "override_exist_file": "a re-run with the same rows and arguments skips a node's finished share; one "
        "with other rows or arguments samples anew",
        "dataset_shuffle": "the kit keeps the rows' order, so the joined result follows the input",
        "num_sampling_batches": "it would cut every node's share, not the whole set: give the rows to sample",
    },
    "swift web-ui": TUNNELED_UI_ARGS,
    "swift app": {
        **TUNNELED_UI_ARGS,
        "host": "the app's own model server listens on 127.0.0.1 on its node",
    },
}
# Names that hold secrets: env values masked in `swiftfleet render` output, nested args keys refused. Counts and
# tokenizer settings (max_tokens, pad_token, TOKENIZERS_PARALLELISM, model_author) are not secrets;
# Authorization is.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|AUTH|CREDENTIAL|COOKIE", re.IGNORECASE)
NOT_SECRET_NAME = re.compile(
    r"TOKENS|TOKENIZ|(PAD|EOS|BOS|UNK|SEP|CLS|MASK|STOP|SPECIAL)_TOKEN|AUTHOR(?!I)", re.IGNORECASE
)
# Values that are tokens whatever field holds them, also after an underscore (`x_hf_...`), which `\b` misses.
TOKEN_VALUE = re.compile(
    r"(?<![A-Za-z0-9])(?:"
    r"(?P<huggingface>hf_[A-Za-z0-9]{30,})"
    r"|(?P<openai>sk-[A-Za-z0-9_-]{20,})"
    r"|(?P<github>gh[pousr]_[A-Za-z0-9]{30,})"
    r"|(?P<aws>AKIA[0-9A-Z]{16}))"
)
TOKEN_KINDS = {
    "huggingface": "a Hugging Face token",
    "openai": "an OpenAI API key",
    "github": "a GitHub token",
    "aws": "an AWS access key id",
}
# scheme://user[:password]@host: the userinfo is a credential.
URL_CREDENTIALS = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s]*@")
# The longest time_limit: systemd's RuntimeMaxSec overflows to "no limit" past its range, and a job meant to
# stop billing should stop well before a year.
MAX_TIME_LIMIT_DAYS = 365
TIME_UNITS = {"d": 86400, "h": 3600, "min": 60, "m": 60, "s": 1}


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(NOT_SECRET_NAME.sub("", name)))


def token_kind(value: str) -> str | None:
    """What kind of token `value` holds (e.g. "a Hugging Face token"), or None."""
    found = TOKEN_VALUE.search(value)
    return TOKEN_KINDS[str(found.lastgroup)] if found else None


# `swift merge-lora` is export's merge as a command of its own (ms-swift 4.6.0 swift/cli/merge_lora.py parses
# ExportArguments and runs export's merge_lora): one process on rank 0, as an export.
# `megatron export` (HF <-> Megatron-Core weights) runs under torchrun on rank 0's GPUs (swift/cli/main.py: every
# megatron command does once NPROC_PER_NODE is set), its tensor/pipeline split fitting one node.
EXPORTS: frozenset[str] = frozenset({"swift export", "swift merge-lora", "megatron export"})
TORCHRUN: frozenset[str] = TRAINING | {"megatron export"}
# What a one-node kind takes beyond its own arguments: an export's calibration set, megatron export's processes.
ONE_NODE_TAKES = {"swift export": {"datasets"}, "megatron export": {"nproc_per_node"}}


def job_name(text: str) -> str:
    """A job's name given on the command line, checked as a job file's `name` is (it names directories)."""
    if not JOB_NAME.match(text):
        raise SwiftfleetError(
            f"{text!r} is neither a job file (.yml) nor a job's name (lowercase letters, digits and -, up to 40)"
        )
    return text


def playbook_of(kind: str) -> str:
    """The playbook that runs a kind (playbooks/<it>.yml): train.yml every training kind, export.yml the exports,
    infer.yml the data-parallel kinds, deploy.yml the services, the others their own."""
    if kind in TRAINING:
        return "train"
    if kind in DATA_PARALLEL:
        return "infer"
    if kind in SERVICES:
        return "deploy"
    return "export" if kind in EXPORTS else kind.split(" ", 1)[1]


# GRPO server mode run by the kit: the rlhf types ms-swift 4.6.0 serves from `swift rollout`
# (swift/arguments/rlhf_args.py:13 rlhf_support_vllm_types), and the trainer arguments the kit then sets itself.
ROLLOUT_TYPES = ("grpo", "gkd")
ROLLOUT_MANAGED_ARGS = (
    "vllm_server_host",
    "vllm_server_port",
    "vllm_server_base_url",
    "vllm_server_group_port",
)


class Rollout(BaseModel):
    """`swift rollout` servers on the job's last nodes; the trainers (the nodes before them) reach them by their
    private IPs (vllm_server_host) after every server has answered its health check."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: Annotated[
        int, Field(ge=1, strict=True, description="How many of the job's nodes serve rollouts.")
    ] = 1
    args: Annotated[
        dict[str, Any],
        Field(
            description="`swift rollout`'s own arguments (vllm_tensor_parallel_size, vllm_data_parallel_size, port, ...)."
        ),
    ] = {}


class Job(BaseModel):
    """What to run. `args` are ms-swift's own arguments, checked against the pinned version's argument classes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=JOB_NAME.pattern, description="Names the job dir and units.")]
    kind: Kind
    rlhf_type: Annotated[
        str | None,
        Field(
            description="Required for rlhf kinds.",
            json_schema_extra={"enum": ms_swift_args.choices("swift rlhf", "rlhf_type")},
        ),
    ] = None
    model: Annotated[
        str | None,
        Field(
            description="Hub id (org/name), s3:// URI, or a local directory (/, ./ or ~); "
            "for an eval with eval_url, the served model name. Every kind but swift web-ui needs one."
        ),
    ] = None
    hub: Literal["modelscope", "huggingface"] = "modelscope"
    datasets: Annotated[
        list[str], Field(description="Local files, s3:// URIs or hub ids; `#N` samples N.")
    ] = []
    val_datasets: Annotated[
        list[str],
        Field(
            description="A training job's validation rows; for `swift infer`, the rows to answer (local .jsonl "
            "files, shared out over the nodes)."
        ),
    ] = []
    # strict: YAML's true is no node count (lax pydantic would read it as 1)
    nodes: Annotated[
        int | None,
        Field(
            ge=1,
            strict=True,
            description="Default: every node of the inventory for training and swift infer, else rank 0 alone.",
        ),
    ] = None
    nproc_per_node: Annotated[
        int | None, Field(ge=1, strict=True, description="Default: the GPUs each node has (1 on CPU nodes).")
    ] = None
    args: dict[str, Any] = {}
    env: dict[str, str | int | float | bool] = {}
    output: Annotated[
        str | None,
        Field(
            description="fetch (default: copy back to outputs/NAME), keep (on rank 0), or s3://bucket/prefix"
        ),
    ] = None
    resume: Annotated[str | None, Field(description="`latest` or a local checkpoint directory.")] = None
    rollout: Annotated[
        Rollout | None,
        Field(
            description="GRPO/GKD in vLLM server mode as one job: `swift rollout` on the job's last `nodes`, "
            "started and health-checked before the trainers, stopped with them."
        ),
    ] = None
    recover: Annotated[
        bool,
        Field(
            description="Training only: when a node is lost mid-run, `swiftfleet train` (make train) brings the "
            "cluster back to its size, sets the new node up and resumes from the newest checkpoint copied off "
            "the nodes (output: fetch), up to 3 times."
        ),
    ] = False
    checkpoint: Annotated[
        str | None,
        Field(
            description="LoRA adapters for export, merge-lora, deploy or eval: a local checkpoint directory (/, ./ or ~), "
            "or a training job's name (its newest checkpoint-N fetched under outputs/NAME)."
        ),
    ] = None
    time_limit: Annotated[
        str | None,
        Field(
            pattern=r"^([1-9][0-9]*(d|h|min|m|s) ?)+$",
            description="Longest run, e.g. 90m, 12h or 1h30m: systemd stops every rank then (RuntimeMaxSec) and "
            "the run is reported as timed out, so a hung job stops billing. Not for deploy (use stop.yml).",
        ),
    ] = None
    master_port: Annotated[
        int,
        Field(
            ge=ports.RENDEZVOUS.start,
            le=ports.RENDEZVOUS.stop - 1,
            description="The security group opens 29500-29600 between members.",
        ),
    ] = ports.RENDEZVOUS.start

    @field_validator("datasets", "val_datasets")
    @classmethod
    def _datasets(cls, v: list[str]) -> list[str]:
        for item in v:
            parse_dataset(item)
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, value in v.items():
            if not ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not an environment variable name")
            if key in KIT_ENV:
                raise ValueError(f"{key} is set by the kit (from the inventory and the job's fields)")
            if "\n" in str(value) or "\0" in str(value):
                raise ValueError(f"{key}: values must be one line")
        return v

    @field_validator("time_limit")
    @classmethod
    def _time_limit(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from swiftfleet.ttl import duration_seconds

        seconds = duration_seconds(v)
        if seconds > MAX_TIME_LIMIT_DAYS * TIME_UNITS["d"]:
            raise ValueError(
                f"{v!r} is over {MAX_TIME_LIMIT_DAYS} days, the most it may be (past systemd's range RuntimeMaxSec "
                "would mean no limit at all); give the longest the job may really run, e.g. 12h"
            )
        return v

    @field_validator("output")
    @classmethod
    def _output(cls, v: str | None) -> str | None:
        if v is None or v in ("fetch", "keep"):
            return v
        m = S3_URI.match(v) if v.startswith("s3://") else None
        if not m or ".." in m["bucket"]:
            raise ValueError(f"{v!r} is not fetch, keep or an s3://bucket/prefix URI")
        return v

    @property
    def is_training(self) -> bool:
        return self.kind in TRAINING

    @property
    def runs_torchrun(self) -> bool:
        return self.kind in TORCHRUN

    @property
    def on_every_node(self) -> bool:
        """By default the job takes every node of the cluster (training: one torchrun group; infer: a share each)."""
        return self.kind in TRAINING or self.kind in DATA_PARALLEL

    @property
    def command(self) -> str:
        return str(self.kind)


class JobFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    job: Job


def serves_by_url(job: Job) -> bool:
    """An eval against a running server: `model` is then the served name, not something to load."""
    return job.command == "swift eval" and "eval_url" in job.args


def _fail(source: str, where: str, msg: str) -> NoReturn:
    raise SwiftfleetError(f"{source}: {where}: {msg}")


def check(job: Job, source: str) -> None:
    """The checks that span fields; each failure is one line naming the field."""
    cmd = job.command
    if cmd == "swift web-ui":
        for field in ("model", "checkpoint"):
            if getattr(job, field) is not None:
                _fail(
                    source, field, "the web UI picks its models in the browser (hub ids or paths on the node)"
                )
    elif job.model is None:
        _fail(
            source, "model", f"`{cmd}` needs a model: a hub id (org/name), an s3:// URI or a local directory"
        )
    elif not serves_by_url(job):
        try:
            parse_model(job.model)
        except ValueError as exc:
            _fail(source, "model", str(exc))
    if cmd.endswith("rlhf"):
        if job.rlhf_type is None:
            _fail(
                source,
                "rlhf_type",
                f"`{cmd}` needs rlhf_type: one of {ms_swift_args.choices(cmd, 'rlhf_type')}",
            )
        bad = ms_swift_args.check_value(cmd, "rlhf_type", job.rlhf_type)
        if bad:
            _fail(source, "rlhf_type", f"{bad} (for `{cmd}`)")
    elif job.rlhf_type is not None:
        _fail(source, "rlhf_type", f"only rlhf kinds take rlhf_type, not `{cmd}`")
    if job.is_training and not job.datasets:
        _fail(source, "datasets", f"`{cmd}` needs at least one dataset")
    if job.rollout is not None:
        _check_rollout(job, source)
    if cmd in DATA_PARALLEL:
        rows_field = ROWS_FIELD[cmd]
        other = "val_datasets" if rows_field == "datasets" else "datasets"
        if getattr(job, other):
            _fail(source, other, f"`{cmd}` takes its rows from {rows_field}: put them there")
        if not getattr(job, rows_field):
            _fail(source, rows_field, f"`{cmd}` needs the rows to work on: at least one {rows_field} entry")
        for field in ("resume", "recover", "nproc_per_node"):
            if getattr(job, field):
                _fail(
                    source,
                    field,
                    f"`{cmd}` is one process per node, each on its share of the rows, and a re-run does only "
                    f"what is not yet done: it takes no {field}",
                )
        if job.output not in (None, "fetch"):
            _fail(source, "output", f"`{cmd}` joins the nodes' results on this machine: output: fetch")
    elif not job.is_training:
        for field in ("datasets", "val_datasets", "resume", "nproc_per_node", "recover"):
            if getattr(job, field) and field not in ONE_NODE_TAKES.get(cmd, ()):
                _fail(source, field, f"`{cmd}` runs on rank 0 alone, it takes no {field}")
        if job.nodes not in (None, 1):
            _fail(source, "nodes", f"`{cmd}` runs on one node (ms-swift serves one model per machine)")
        if cmd == "megatron export" and not any(
            ms_swift_args.is_on(job.args.get(k)) for k in ("to_mcore", "to_hf")
        ):
            _fail(
                source,
                "args",
                "`megatron export` converts weights: to_mcore: true (the HF `model` to Megatron-Core) or "
                "to_hf: true (args.mcore_model back to HF)",
            )
    if job.recover and job.output not in (None, "fetch"):
        _fail(
            source, "recover", "a recovery resumes from the checkpoints copied to this machine: output: fetch"
        )
    if job.checkpoint is not None:
        if job.is_training:
            _fail(source, "checkpoint", f"`{cmd}` continues from a checkpoint with `resume`")
        if serves_by_url(job):
            _fail(
                source, "checkpoint", "an eval with eval_url scores the served model; deploy the checkpoint"
            )
        if "adapters" in job.args:
            _fail(source, "checkpoint", "give the checkpoint or args.adapters, not both")
    elif cmd == "swift merge-lora" and "adapters" not in job.args:
        _fail(
            source,
            "checkpoint",
            "`swift merge-lora` merges LoRA adapters into the model: name them with `checkpoint` (a training "
            "job's name, or a ./local checkpoint directory) or args.adapters",
        )
    _check_no_token(job, source)
    _check_no_secret_args(job, source)
    if cmd in SERVICES and job.output is not None:
        _fail(source, "output", f"a `{cmd}` job is a service: it has no output to collect")
    if cmd in SERVICES and job.time_limit is not None:
        _fail(source, "time_limit", "a server runs until stop.yml (the cluster's ttl_hours bounds it)")
    _check_args(job, source)


def _check_rollout(job: Job, source: str) -> None:
    rollout = job.rollout
    assert rollout is not None
    if job.command != "swift rlhf" or job.rlhf_type not in ROLLOUT_TYPES:
        _fail(
            source,
            "rollout",
            f"rollout servers feed `swift rlhf` with rlhf_type {' or '.join(ROLLOUT_TYPES)} (vLLM server mode), "
            f"not `{job.command}`" + (f" {job.rlhf_type}" if job.rlhf_type else ""),
        )
    if job.nodes is not None and job.nodes <= rollout.nodes:
        _fail(
            source,
            "nodes",
            f"{job.nodes} node(s) with rollout.nodes {rollout.nodes} leave no trainer: the job's nodes count both",
        )
    for arg in ROLLOUT_MANAGED_ARGS:
        if arg in job.args:
            _fail(
                source, f"args.{arg}", "the kit points the trainers at the rollout nodes it starts (rollout)"
            )
    if "use_vllm" in job.args and not ms_swift_args.is_on(job.args["use_vllm"]):
        _fail(
            source,
            "args.use_vllm",
            "rollout servers are vLLM's: leave use_vllm out (the kit sets it) or true",
        )
    if job.args.get("vllm_mode", "server") != "server":
        _fail(
            source, "args.vllm_mode", "with rollout servers the mode is server: leave vllm_mode out or server"
        )
    if job.recover:
        _fail(source, "recover", "a lost rollout node is not brought back: run the job again to resume it")
    _check_arg_map("swift rollout", rollout.args, "rollout.args", source)


def _walk(value: Any, where: str, key: object = None) -> Iterator[tuple[str, object, Any]]:
    """(location, key, value) of `value` and of everything under it: mapping values with their key, list items
    (key None). A string holding JSON counts as what it holds, since ms-swift json.loads a dict argument given as
    text."""
    if isinstance(value, str) and value.lstrip().startswith(("{", "[")):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    yield where, key, value
    if isinstance(value, dict):
        for k, item in value.items():
            yield from _walk(item, f"{where}.{k}", k)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{where}.{i}")


def _check_no_token(job: Job, source: str) -> None:
    """A token pasted into any field but `env` would be written to world-readable files and logs."""
    for name, field in job.model_dump(exclude={"env"}).items():
        for where, _, value in _walk(field, name):
            kind = token_kind(value) if isinstance(value, str) else None
            if kind:
                _fail(
                    source,
                    where,
                    f"holds what looks like {kind}: secrets go in `env` (the node's mode-0600 job.env)",
                )


def _check_no_secret_args(job: Job, source: str) -> None:
    """A secret under a secret-looking key nested in args, or in a URL's user:password@, would be written to
    config.yaml. Top-level names are ms-swift's own arguments (max_new_tokens, ssl_keyfile are not secrets; the
    secret ones are in MANAGED_ARGS), so the name rule is for nested keys only."""
    tops = [(f"args.{a}", v) for a, v in job.args.items()]
    tops += [(f"rollout.args.{a}", v) for a, v in (job.rollout.args.items() if job.rollout else ())]
    for place, top in tops:
        for where, key, value in _walk(top, place):
            if not isinstance(value, str) or not value:
                continue
            if isinstance(key, str) and is_secret_name(key):
                _fail(
                    source,
                    where,
                    "a secret in args lands in config.yaml (readable by every user of the node) and in "
                    "ms-swift's log; put it in `env` (the node's mode-0600 job.env) under the name its library "
                    "reads",
                )
            if URL_CREDENTIALS.match(value):
                _fail(
                    source,
                    where,
                    "credentials do not go in URLs: config.yaml is readable by every user of the node and "
                    "ms-swift logs it; drop the user:password@ and give the secret in `env`",
                )


def _check_arg_map(cmd: str, args: dict[str, Any], prefix: str, source: str) -> None:
    """ms-swift arguments of `cmd` (a job's args, or its rollout's): known names, values of the pinned version's
    types and choices, none of those the kit sets."""
    known = ms_swift_args.names(cmd)
    managed = {**MANAGED_ARGS, **KIND_MANAGED_ARGS.get(cmd, {})}
    for arg, value in args.items():
        where = f"{prefix}.{arg}"
        if arg in managed and arg in known:
            _fail(source, where, f"not allowed here: {managed[arg]}")
        if arg not in known:
            _fail(source, where, ms_swift_args.unknown_arg_message(cmd, arg))
        if value is None:
            _fail(source, where, "null is not a value; leave the argument out for ms-swift's default")
        bad = ms_swift_args.check_value(cmd, arg, value)
        if bad:
            _fail(source, where, bad)


def _check_args(job: Job, source: str) -> None:
    cmd = job.command
    _check_arg_map(cmd, job.args, "args", source)
    url = job.args.get("eval_url")
    if url is not None and not re.match(r"^https?://[^/\s]+(/[^\s]*)?/v1$", str(url)):
        _fail(
            source,
            "args.eval_url",
            f"{url!r} must be an http(s) URL ending in /v1, e.g. http://10.0.0.5:8000/v1",
        )
    if job.resume is not None and cmd.startswith("megatron") and "mcore_model" in job.args:
        _fail(source, "resume", "resume loads the checkpoint as mcore_model; drop args.mcore_model")


def parse_job(data: object, source: str) -> Job:
    """Validate a loaded job file (the whole mapping, with its `job:` key)."""
    if not isinstance(data, dict) or (set(data) <= {"job"} and not data.get("job")):
        empty = "empty: " if isinstance(data, dict) or not data else ""
        raise SwiftfleetError(f"{source}: file: {empty}it needs a `job:` mapping (name, kind, model, ...)")
    if isinstance(data, dict) and "job" not in data and "kind" in data:
        raise SwiftfleetError(f"{source}: file: put the job's settings under a top-level `job:` key")
    try:
        job = JobFile.model_validate(data).job
    except ValidationError as exc:
        raise one_line(source, exc, JobFile, skip=1) from None
    check(job, source)
    return job


def load_job(path: Path) -> Job:
    source = f"job file {path}"
    return parse_job(read_yaml(path, "job file"), source)


def name_in(path: Path) -> str:
    """A job file's name, the rest unchecked: what reads a job's fetched results needs no more (its data may be
    elsewhere by now)."""
    data = read_yaml(path, "job file")
    job = data.get("job") if isinstance(data, dict) else None
    name = job.get("name") if isinstance(job, dict) else None
    if not isinstance(name, str):
        raise SwiftfleetError(f"job file {path}: job.name: missing (a `job:` mapping with a name)")
    return job_name(name)


def job_json_schema() -> dict[str, Any]:
    schema = JobFile.model_json_schema()
    schema["title"] = "swiftfleet job file"
    schema["$comment"] = (
        f"Generated by `make schema` for ms-swift {ms_swift_args.pinned_version()}; do not edit."
    )
    return schema


def schema_text() -> str:
    """jobs/job.schema.json, for editors (`# yaml-language-server: $schema=job.schema.json`); `make schema`."""
    return json.dumps(job_json_schema(), indent=2) + "\n"
