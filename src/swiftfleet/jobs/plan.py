"""A checked job, the cluster's nodes and their setup record -> the typed plan (plan_model) every template renders from.

The same build() runs in `swiftfleet render` (nodes from the inventory file) and in the playbooks (nodes from
hostvars, through the `swiftfleet_job_plan` filter), so a job is refused the same way by both, before any host
is touched.
"""

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from swiftfleet import node_plugins, paths, ports
from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import Cluster
from swiftfleet.jobs import arg_rules, checkpoints, dataset_check, ms_swift_args, needs, node_facts, sizing
from swiftfleet.jobs.node_facts import NodeFacts
from swiftfleet.jobs.plan_model import (
    SHARE_RESULT,
    SHARE_ROWS,
    Download,
    JobPlan,
    NodeFile,
    Output,
    PlanNode,
    Prefetch,
    RolloutPlan,
    Shares,
    Staging,
    Upload,
)
from swiftfleet.jobs.refs import LOCAL_PREFIXES, Ref, parse_dataset, parse_model
from swiftfleet.jobs.spec import (
    API_KEY_ENV,
    DATA_PARALLEL,
    EXPORTS,
    ROWS_FIELD,
    SERVICES,
    TUNNELED,
    Job,
    playbook_of,
    serves_by_url,
)
from swiftfleet.node_plugins import shard_rows

DEPLOY_PORT = 8000
APP_PORT = 7860  # the Gradio UIs' default (WebUIArguments.server_port)
# What a server answers once it serves: the OpenAI API's model list, the Gradio page, and the rollout server's
# /health that the trainers ask before they start (swift/rlhf_trainers/vllm_client.py check_server; rollout.py:764).
HEALTH_PATHS = {
    "swift deploy": "/v1/models",
    "swift app": "/",
    "swift web-ui": "/",
    "swift rollout": "/health",
}
# ms-swift arguments that name what a job must carry to its nodes (4.6.0's names; tests check they exist).
# Models, like the job's `model`: a hub id downloaded on every node before the launch, s3:// or a local directory.
MODEL_ARGS = frozenset({"ref_model", "reward_model", "teacher_model"})
# Local files and directories that go up with the job: plugins, DeepSpeed configs, Megatron checkpoints, adapters.
FILE_ARGS = frozenset(
    {
        "external_plugins",
        "custom_register_path",
        "deepspeed",
        "teacher_deepspeed",
        "ssl_certfile",
        "ssl_keyfile",
    }
)
DIR_ARGS = frozenset(
    {"mcore_model", "mcore_ref_model", "mcore_adapter", "adapters", "ref_adapters", "teacher_adapters"}
)
# Kinds that serve a model or talk to a server: the API key (env SWIFT_API_KEY) is theirs.
SERVED = frozenset({"swift deploy", "swift eval"})
# The job arguments its rollout servers take too: what loads the model and encodes a prompt, the same on both sides.
ROLLOUT_SHARED_ARGS = frozenset(
    {"model_type", "model_revision", "torch_dtype", "template", "system", "max_length", "truncation_strategy"}
)
SAVES_CHECKPOINTS = frozenset({"swift sft", "swift pt", "swift rlhf"})
CARRIED_ARGS = MODEL_ARGS | FILE_ARGS | DIR_ARGS
# A FILE_ARGS value ending so is a file name, never a preset: without ./ it would be looked for on the node.
FILE_SUFFIXES = (".json", ".py", ".pem", ".crt", ".key")
# Local dataset files ms-swift reads: their extension names the `datasets` builder (txt -> text, jsonl -> json).
DATASET_SUFFIXES = (".jsonl", ".json", ".csv", ".txt", ".parquet", ".arrow")
# How long rank 0's staging daemon may serve beyond the copies' time at their slowest.
STAGING_GRACE_S = 600
# The instance type of hypothetical_nodes(): a dry run without an inventory.
DRY_RUN_TYPE = "dry-run"


class NodeInfo(NamedTuple):
    name: str
    rank: int
    private_ip: str
    user: str
    gpu_count: int
    gpu_memory_gib: float
    instance_type: str
    deploy_port: int | None = None  # the cluster's port for clients (Cluster.deploy_port)


def nodes_from_cluster(cluster: Cluster) -> list[NodeInfo]:
    return [
        NodeInfo(
            n.name,
            n.rank,
            str(n.private_ip),
            n.ssh_user,
            n.gpu_count,
            n.gpu_memory_gib,
            n.instance_type,
            cluster.deploy_port,
        )
        for n in cluster.nodes
    ]


HOST_KEYS = (
    "inventory_hostname",
    "node_rank",
    "private_ip",
    "ansible_user",
    "gpu_count",
    "gpu_memory_gib",
    "instance_type",
    "swiftfleet_deploy_port",
)


def nodes_from_hostvars(hosts: list[dict[str, Any]]) -> list[NodeInfo]:
    """The inventory's host variables as Ansible hands them over (`groups[g] | map('extract', hostvars)`)."""
    nodes = [
        NodeInfo(
            str(h["inventory_hostname"]),
            int(h["node_rank"]),
            str(h["private_ip"]),
            str(h["ansible_user"]),
            int(h["gpu_count"]),
            float(h["gpu_memory_gib"]),
            str(h.get("instance_type", "unknown")),
            h.get("swiftfleet_deploy_port"),
        )
        for h in hosts
    ]
    return sorted(nodes, key=lambda n: n.rank)


def outputs_dir(job_name: str) -> Path:
    """Where `output: fetch` copies a job's results back to, and where `resume: latest` looks."""
    return Path(os.environ.get("SWIFTFLEET_OUTPUTS_DIR", paths.REPO_ROOT / "outputs")).expanduser() / job_name


def latest_checkpoint(root: Path) -> Path | None:
    """The checkpoint-N with the highest N under root (ms-swift writes output/vX-date/checkpoint-N)."""
    found = [p for p in root.glob("**/checkpoint-*") if p.is_dir() and p.name.rsplit("-", 1)[-1].isdigit()]
    return max(found, key=lambda p: (int(p.name.rsplit("-", 1)[-1]), str(p)), default=None)


def hub_download_argv(hub: str, repo_id: str, repo_type: str) -> list[str]:
    """The download command of one hub repo, its program relative to the ms-swift environment's bin/.
    Both CLIs take the same form (modelscope's `--model ID` is its deprecated spelling)."""
    return ["hf" if hub == "huggingface" else "modelscope", "download", repo_id, "--repo-type", repo_type]


def hub_env(job: Job, prefetch: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
    """The environment of the launch and of the hub downloads before it: the job's env plus the hub's switches.

    A Hugging Face job whose hub repos are all models launches with HF_HUB_OFFLINE=1 (unless the job sets it):
    every node has just downloaded them, and N ranks asking the hub again at once gain nothing and can fail on
    its rate limits. Not when a dataset comes from the hub: `datasets` offline reads only its own prepared
    cache, never the files `hf download` put in the hub cache. ModelScope has no offline switch.
    """
    env = {k: str(v) for k, v in job.env.items() if k != API_KEY_ENV}
    if job.hub == "huggingface":
        env["USE_HF"] = "1"
    downloads = {"HF_HUB_DISABLE_UPDATE_CHECK": "1", **env} if job.hub == "huggingface" else dict(env)
    if job.hub == "huggingface" and prefetch and all(p["repo_type"] == "model" for p in prefetch):
        env.setdefault("HF_HUB_OFFLINE", "1")
    return env, downloads


# Where the hubs' libraries put their caches: a job's env naming any of them moves that cache.
CACHE_VARS = {"HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "MODELSCOPE_CACHE"}


def cache_env(job: Job, f: NodeFacts) -> dict[str, str]:
    """The hub caches on the node's storage that setup chose (node_storage: the shared file system or the local
    NVMe), unless the job's env names its own."""
    if f.hub_cache is None:
        return {}
    env = {"HF_HOME": f"{f.hub_cache}/huggingface", "MODELSCOPE_CACHE": f"{f.hub_cache}/modelscope"}
    return {k: v for k, v in env.items() if k not in job.env}


def _visible_gpus(job: Job, nodes: list[NodeInfo]) -> int:
    gpus = min(n.gpu_count for n in nodes)
    if "CUDA_VISIBLE_DEVICES" in job.env:
        listed = [d for d in str(job.env["CUDA_VISIBLE_DEVICES"]).split(",") if d.strip()]
        return min(gpus, len(listed))
    return gpus


class _Builder:
    def __init__(self, job: Job, nodes: list[NodeInfo], source: str) -> None:
        self.job, self.all_nodes, self.source = job, nodes, source
        self.uploads: list[Upload] = []
        self.downloads: list[dict[str, str]] = []
        self.prefetch: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.warnings: list[str] = []

    def fail(self, where: str, msg: str) -> SwiftfleetError:
        return SwiftfleetError(f"{self.source}: {where}: {msg}")

    def upload(self, src: Path, dest: str) -> None:
        """`src` (on the controller) goes to <job dir>/<dest> on every node; links are followed, as rsync -L does."""
        src = src.resolve()
        if src.is_dir():
            size = sum(p.stat().st_size for p in src.rglob("*") if p.is_file())
        else:
            size = src.stat().st_size
        self.uploads.append(Upload(src=str(src), dest=dest, bytes=size, is_dir=src.is_dir()))

    def place(self, ref: Ref, dest: str) -> str:
        """Where a model or dataset is read from on the node: uploaded, downloaded from S3, or the hub id."""
        if ref.source == "local":
            self.upload(Path(ref.path).expanduser(), dest)
        elif ref.source == "s3":
            self.downloads.append({"uri": ref.path, "dest": dest})
        else:
            # The hub: every node downloads it into its own cache before the launch (no shared storage).
            # The repo is the id without ms-swift's `:subset` (the `#count` is not in ref.path); one download each.
            kind, repo = ("dataset" if dest.startswith("data/") else "model"), ref.path.split(":", 1)[0]
            if not any((p["id"], p["repo_type"]) == (repo, kind) for p in self.prefetch):
                argv = hub_download_argv(self.job.hub, repo, kind)
                self.prefetch.append({"id": repo, "repo_type": kind, "argv": argv})
            dest = ref.path
        return dest + (f"#{ref.samples}" if ref.samples else "")

    def chosen_nodes(self) -> list[NodeInfo]:
        job, have = self.job, len(self.all_nodes)
        if not self.all_nodes:
            raise self.fail("nodes", "the cluster has no nodes")
        want = job.nodes or (have if job.on_every_node else 1)
        if want > have:
            raise self.fail("nodes", f"the job wants {want} nodes, the cluster has {have}")
        return self.all_nodes[:want]

    def trainers(self, nodes: list[NodeInfo]) -> list[NodeInfo]:
        """The nodes that run the job's own command: all of them, but for a job's rollout servers on its last
        nodes."""
        servers = self.job.rollout.nodes if self.job.rollout else 0
        if len(nodes) <= servers:
            raise self.fail(
                "nodes",
                f"{len(nodes)} node(s) and rollout.nodes {servers} leave no trainer: the job's nodes count both",
            )
        return nodes[: len(nodes) - servers]

    def rollout(self, cfg: dict[str, Any], servers: list[NodeInfo]) -> RolloutPlan | None:
        """`swift rollout` on the server nodes, and the trainers pointed at their private IPs. The server loads the
        job's model with the job's model and template arguments, so both sides encode prompts alike."""
        rollout = self.job.rollout
        if rollout is None:
            return None
        problem = arg_rules.check_layout(
            "swift rollout",
            rollout.args,
            nnodes=1,
            nproc_per_node=1,
            gpus_per_node=_visible_gpus(self.job, servers),
        ) or arg_rules.check_rollout_server(rollout.args)
        if problem:
            raise self.fail(f"rollout.{problem[0]}", problem[1])
        port = int(rollout.args.get("port", DEPLOY_PORT))
        known = ms_swift_args.names("swift rollout")
        shared = {k: v for k, v in self.job.args.items() if k in ROLLOUT_SHARED_ARGS and k in known}
        hosts = [n.private_ip for n in servers]
        cfg.update(
            use_vllm=True, vllm_mode="server", vllm_server_host=hosts, vllm_server_port=[port] * len(hosts)
        )
        return RolloutPlan(
            config={"model": cfg["model"], **shared, **rollout.args, "host": "0.0.0.0", "port": port},
            port=port,
            hosts=hosts,
            health=HEALTH_PATHS["swift rollout"],
        )

    def nproc(self, nodes: list[NodeInfo]) -> int:
        counts = sorted({n.gpu_count for n in nodes})
        gpus = _visible_gpus(self.job, nodes)
        if self.job.nproc_per_node is None:
            if len(counts) > 1:
                raise self.fail(
                    "nproc_per_node", f"the nodes have {counts} GPUs; set nproc_per_node (same on every node)"
                )
            return max(gpus, 1)
        if gpus and self.job.nproc_per_node > gpus:
            raise self.fail(
                "nproc_per_node",
                f"{self.job.nproc_per_node} processes per node, but the nodes have {gpus} usable GPUs",
            )
        return self.job.nproc_per_node

    def resume_args(self) -> dict[str, Any]:
        job = self.job
        if job.resume is None:
            return {}
        if job.resume == "latest":
            if job.output not in (None, "fetch"):
                raise self.fail(
                    "resume",
                    "`latest` looks in the fetched outputs (output: fetch); name the checkpoint directory instead",
                )
            ckpt = checkpoints.latest_complete(outputs_dir(job.name))
            if ckpt is None:
                raise self.fail(
                    "resume",
                    f"`latest`, but there is no checkpoint-N under {outputs_dir(job.name)} that was copied "
                    f"complete from every node (marked {checkpoints.MARKER})",
                )
        else:
            ckpt = Path(job.resume).expanduser()
            if not (ckpt.is_dir() and any(ckpt.iterdir())):
                raise self.fail("resume", f"{job.resume!r} is not a checkpoint directory here")
        self.upload(ckpt, f"resume/{ckpt.name}")
        if job.command.startswith("megatron"):
            return {"mcore_model": f"resume/{ckpt.name}", "finetune": False}
        return {"resume_from_checkpoint": f"resume/{ckpt.name}"}

    def checkpoint_args(self) -> dict[str, Any]:
        """A job's `checkpoint` as --adapters: a local directory, or a training job's newest fetched one."""
        text = self.job.checkpoint
        if text is None:
            return {}
        if not text.startswith(LOCAL_PREFIXES) and "/" in text:
            raise self.fail(
                "checkpoint",
                f"{text!r} is neither a local directory (start it with ./, / or ~) nor a job's name",
            )
        ckpt = (
            Path(text).expanduser()
            if text.startswith(LOCAL_PREFIXES)
            else latest_checkpoint(outputs_dir(text))
        )
        if ckpt is None:
            raise self.fail(
                "checkpoint", f"no checkpoint-N under {outputs_dir(text)} (train {text!r} with output: fetch)"
            )
        if not (ckpt / "adapter_config.json").is_file():  # what peft saves with every LoRA checkpoint
            raise self.fail("checkpoint", f"{text!r} is not a LoRA checkpoint here (no adapter_config.json)")
        self.upload(ckpt, f"adapters/{ckpt.name}")
        return {"adapters": [f"adapters/{ckpt.name}"]}

    def eval_local_paths(self, dataset_args: dict[str, Any]) -> dict[str, Any]:
        """evalscope's custom datasets (`eval_dataset_args: {NAME: {local_path: DIR}}`) are read on the node:
        a local directory goes up with the job, like a training dataset."""
        out = {}
        for name, opts in dataset_args.items():
            path = opts.get("local_path") if isinstance(opts, dict) else None
            if isinstance(path, str) and path.startswith(LOCAL_PREFIXES):
                if not Path(path).expanduser().is_dir():
                    raise self.fail(
                        f"args.eval_dataset_args.{name}.local_path", f"{path!r} is not a directory here"
                    )
                self.upload(Path(path).expanduser(), f"eval_data/{name}")
                opts = {**opts, "local_path": f"eval_data/{name}"}
            out[name] = opts
        return out

    def check_data(self, ref: Ref, field: str) -> None:
        """A local dataset file is read here, before it is copied to every node: a bad row is one line, file:line."""
        path = Path(ref.path).expanduser()
        if ref.source != "local":
            return
        if path.is_dir() and not any(path.iterdir()):
            raise self.fail(field, f"{ref.path!r} is an empty directory")
        if not (path.is_dir() or path.is_file()):
            raise self.fail(field, f"{ref.path!r} is neither a file nor a directory")
        if path.is_dir():
            return
        if path.suffix not in DATASET_SUFFIXES:
            # ms-swift picks the `datasets` reader by the extension as written (swift/dataset/loader.py:52-59, 4.6.0)
            hint = f"; name it {path.suffix.lower()}" if path.suffix.lower() in DATASET_SUFFIXES else ""
            raise self.fail(
                field,
                f"{ref.path!r}: ms-swift reads local files ending {', '.join(DATASET_SUFFIXES)} only{hint}",
            )
        if "columns" in self.job.args:  # renamed fields: ms-swift maps them, the field check cannot know them
            self.notes.append(f"{ref.path}: fields not checked (args.columns renames them)")
            return
        try:
            dataset_check.check_dataset(path, self.job.command, self.job.rlhf_type)
        except ValueError as exc:
            raise self.fail(field, str(exc)) from None

    def carry(self, arg: str, value: Any) -> Any:
        """An argument naming models or files: each goes with the job, and the argument names it on the node."""
        items = value if isinstance(value, list) else [value]
        if arg in MODEL_ARGS and not all(isinstance(text, str) for text in items):
            raise self.fail(f"args.{arg}", f"{value!r}: name models by hub id, s3:// URI or local directory")
        carried = [
            self.carry_one(arg, text, f"{arg}-{i}" if len(items) > 1 else arg)
            if isinstance(text, str)
            else text
            for i, text in enumerate(items)
        ]
        return carried if isinstance(value, list) else carried[0]

    def carry_one(self, arg: str, text: str, slot: str) -> str:
        where = f"args.{arg}"
        if (
            arg in MODEL_ARGS
        ):  # like `model`: a hub id is downloaded on every node, s3:// too, a directory goes up
            try:
                return self.place(parse_model(text), f"models/{slot}")
            except ValueError as exc:
                raise self.fail(where, str(exc)) from None
        # adapters may be `name=path` (ms-swift's deploy form)
        name, sep, path = text.partition("=") if "=" in text and arg.endswith("adapters") else ("", "", text)
        if path.startswith("s3://"):
            raise self.fail(
                where, "s3:// is read for `model`, `datasets` and model arguments only; sync it here"
            )
        if not path.startswith(LOCAL_PREFIXES):
            if arg in FILE_ARGS and path.endswith(FILE_SUFFIXES):
                raise self.fail(
                    where, f"{path!r}: start a local path with ./, / or ~ so that it goes up with the job"
                )
            return text  # not a path: a preset (deepspeed: zero3) or a hub id of adapters
        local = Path(path).expanduser()
        if not local.exists():
            raise self.fail(where, f"{path!r} does not exist here (local paths go up with the job)")
        if (
            local.is_file() and local.suffix == ".json"
        ):  # a DeepSpeed config: ms-swift parses it on every rank
            try:
                json.loads(local.read_text())
            except (ValueError, UnicodeDecodeError) as exc:
                raise self.fail(where, f"{path!r} is not valid JSON ({exc})") from None
        dest = f"files/{slot}/{local.name}"
        self.upload(local, dest)
        return f"{name}{sep}{dest}"

    def save_on_notice(self, cfg: dict[str, Any]) -> None:
        """HF-Trainer training jobs that save carry the callback saving at a spot interruption notice (after the
        user's own plugins and callbacks); Megatron kinds do not. Every such job, not only those on spot nodes:
        whether a node watches is setup's (roles/spot_watch) and may change after the plan; without a notice the
        callback costs a file read and a 1-element all_reduce per step."""
        dest = f"files/swiftfleet/{node_plugins.SAVE_ON_NOTICE.name}"
        # A checkpoint's args.json names the plugin (relative to the job directory), and ms-swift imports it again
        # wherever a model saved from it is loaded: a checkpoint, adapters, a merged export, a model path on the
        # node. The file (3 KB) goes with every job, unused by those that do not train.
        self.upload(node_plugins.SAVE_ON_NOTICE, dest)
        if self.job.command not in SAVES_CHECKPOINTS or cfg.get("save_strategy", "steps") == "no":
            return
        for arg, value in (("external_plugins", dest), ("callbacks", node_plugins.SAVE_ON_NOTICE_CALLBACK)):
            have = cfg.get(arg) or []
            cfg[arg] = [*([have] if isinstance(have, str) else have), value]

    def shares(self, cfg: dict[str, Any], nodes: int) -> Shares:
        """A data-parallel job's rows split over its nodes: each does lines [lo, hi) of its rows field's files read
        as one list (node_plugins/shard_rows.py cuts them out on the node, and counts them here)."""
        cmd, field = self.job.command, ROWS_FIELD[self.job.command]
        arg = field.removesuffix("s")  # ms-swift's argument: dataset, val_dataset
        paths = []
        for text in getattr(self.job, field):
            ref = parse_dataset(text)
            path = Path(ref.path).expanduser()
            if ref.source != "local" or path.suffix != ".jsonl" or ref.samples:
                raise self.fail(
                    field,
                    f"{text!r}: `{cmd}` splits the rows over the nodes itself, so it takes local .jsonl "
                    "files whole (no hub id, s3:// or #N)",
                )
            paths.append(str(path))
        total = shard_rows.count(paths)
        if total < nodes:
            raise self.fail(
                "nodes", f"{total} rows cannot be shared by {nodes} nodes: set nodes: {total} or fewer"
            )
        bounds = shard_rows.split(total, nodes)
        sampling = cmd == "swift sample"
        if sampling:
            self.check_sample_batches(bounds)
            self.sample_engine_template(cfg)
            cfg.update(output_dir=str(Path(SHARE_RESULT).parent), output_file=Path(SHARE_RESULT).name)
            cfg.update(resume=True, dataset_shuffle=False)
        else:
            cfg["result_path"] = SHARE_RESULT
        sources, cfg[arg] = cfg[arg], [SHARE_ROWS]
        key = hashlib.sha256(json.dumps([cfg, bounds], sort_keys=True).encode())
        for source in paths:
            key.update(Path(source).read_bytes())
        script, local = f"files/swiftfleet/{node_plugins.SHARD_ROWS.name}", outputs_dir(self.job.name)
        self.upload(node_plugins.SHARD_ROWS, script)
        return Shares(
            script=script, mode="file" if sampling else "lines", key=key.hexdigest()[:16], sources=sources,
            rows=SHARE_ROWS, result=SHARE_RESULT, total=total, bounds=[list(b) for b in bounds],
            progress=str(Path(SHARE_RESULT).with_name(shard_rows.SAMPLE_CKPT)) if sampling else SHARE_RESULT,
            done_exit=shard_rows.DONE, verb="sampled" if sampling else "answered",
            batch=int(cfg.get("num_sampling_batch_size", 1)) if sampling else 0,
            fetched=[str(local / "shares" / f"rank{r}.jsonl") for r in range(nodes)],
            joined=str(local / SHARE_RESULT),
        )  # fmt: skip

    def sample_engine_template(self, cfg: dict[str, Any]) -> None:
        """ms-swift 4.6.0's sampler hands its template to TransformersEngine, which ignores it for a model path and
        matches one again from its own template_type (swift/infer_engine/transformers_engine.py:101-103): a model
        whose template ms-swift cannot guess fails there though the job names it. The engine gets the job's."""
        if "template" not in cfg or cfg.get("sampler_engine", "transformers") != "transformers":
            return
        try:
            kwargs = json.loads(cfg.get("engine_kwargs") or "{}")
        except ValueError as exc:
            raise self.fail("args.engine_kwargs", f"not JSON ({exc})") from None
        if not isinstance(kwargs, dict):
            raise self.fail("args.engine_kwargs", "a JSON object of the engine's keyword arguments")
        kwargs.setdefault("template_type", cfg["template"])
        cfg["engine_kwargs"] = json.dumps(kwargs)

    def check_sample_batches(self, bounds: list[tuple[int, int]]) -> None:
        """ms-swift 4.6.0 samples whole batches only (sampling.py run(): len(dataset) // num_sampling_batch_size),
        so a share that is not a multiple of the batch would silently lose its last rows."""
        batch = int(self.job.args.get("num_sampling_batch_size", 1))
        lost = [(r, hi - lo) for r, (lo, hi) in enumerate(bounds) if (hi - lo) % batch]
        if lost:
            rank, rows = lost[0]
            raise self.fail(
                "args.num_sampling_batch_size",
                f"{batch}: rank {rank}'s share of {rows} rows is not whole batches, and ms-swift samples whole "
                f"batches only (its last {rows % batch} rows would be skipped); use a batch size that divides "
                f"every share ({', '.join(str(hi - lo) for lo, hi in bounds)} rows), e.g. 1",
            )

    def deploy_port(self) -> int:
        """The server's port: the job's, else the cluster's; where the cluster opens one port to clients, that one."""
        opened = self.all_nodes[0].deploy_port if self.all_nodes else None
        port = int(self.job.args.get("port", opened or DEPLOY_PORT))
        if opened is not None and port != opened:
            raise self.fail(
                "args.port",
                f"{port}, but the cluster opens {opened} to clients (deploy_port in its cluster file): "
                f"leave port out or use {opened}",
            )
        return port

    def config(self) -> dict[str, Any]:
        job = self.job
        cfg: dict[str, Any] = {}
        if job.model is not None:  # none for the web UI
            cfg["model"] = job.model if serves_by_url(job) else self.place(parse_model(job.model), "model")
        if job.rlhf_type:
            cfg["rlhf_type"] = job.rlhf_type
        for key, refs in (("dataset", job.datasets), ("val_dataset", job.val_datasets)):
            if refs:
                parsed = [parse_dataset(r) for r in refs]
                for ref in parsed:
                    self.check_data(ref, f"{key}s")
                cfg[key] = [self.place(r, f"data/{i}-{r.basename}") for i, r in enumerate(parsed)]
        cfg.update(job.args)
        cfg.update({arg: self.carry(arg, value) for arg, value in job.args.items() if arg in CARRIED_ARGS})
        cfg.update(self.resume_args())
        cfg.update(self.checkpoint_args())
        self.save_on_notice(cfg)
        if job.is_training:
            cfg["output_dir"] = "output"
        elif job.command in EXPORTS:
            cfg["output_dir"] = "output"
            cfg["exist_ok"] = True  # the kit's own job directory: a re-run replaces the last export
        elif job.command == "swift eval":
            cfg["eval_output_dir"] = "output"
            if isinstance(cfg.get("eval_dataset_args"), dict):
                cfg["eval_dataset_args"] = self.eval_local_paths(cfg["eval_dataset_args"])
        if job.command == "swift deploy":
            cfg["host"] = "0.0.0.0"
            cfg["port"] = self.deploy_port()
        if job.command in TUNNELED:
            # The Gradio UI (and the app's own model server: swift/pipelines/app/app.py) stay on the node's loopback.
            cfg.update(
                server_name="127.0.0.1", **({"host": "127.0.0.1"} if job.command == "swift app" else {})
            )
            cfg["server_port"] = int(job.args.get("server_port", APP_PORT))
        return cfg

    def gpu_only(self, nodes: list[NodeInfo]) -> None:
        """Refused on CPU nodes: every quant_method of `swift export` (awq, gptq, bnb, fp8) runs CUDA kernels,
        `megatron export` builds Megatron-Core's model, which needs transformer_engine and CUDA, and GRPO server
        mode's `swift rollout` serves with vLLM."""
        method = self.job.args.get("quant_method")
        if _visible_gpus(self.job, nodes) > 0:
            return
        if self.job.command == "swift export" and method is not None:
            where, message = (
                "args.quant_method",
                f"{method} quantization needs a GPU, and the nodes have none",
            )
        elif self.job.command == "megatron export":
            where, message = (
                "kind",
                "`megatron export` needs GPUs (Megatron-Core with transformer_engine), and the nodes have none",
            )
        elif self.job.rollout is not None:
            where, message = (
                "rollout",
                "GRPO server mode needs GPUs: `swift rollout` serves with vLLM and the trainers sync their weights "
                "to it over NCCL, and the nodes have none (on CPU nodes, train without use_vllm)",
            )
        else:
            return
        if nodes[0].instance_type == DRY_RUN_TYPE:
            self.notes.append(f"{message} in this dry run: run it on a GPU cluster")
        else:
            raise self.fail(where, f"{message} (make check counts each node's GPUs)")

    def size(self, nodes: list[NodeInfo], nproc: int) -> None:
        job, args = self.job, self.job.args
        if _visible_gpus(job, nodes) == 0:
            self.notes.append("sizing skipped: CPU nodes (no GPU memory to check)")
            return
        if serves_by_url(job):
            self.notes.append("sizing skipped: eval against a running endpoint uses no GPU here")
            return
        if job.model is None:
            return
        params = sizing.parse_params(job.model)
        if params is None:
            self.notes.append(
                f"sizing skipped: no parameter count (like 7B or 30B-A3B) in the model name {job.model!r}"
            )
            return
        have = min(n.gpu_memory_gib for n in nodes)
        world = len(nodes) * nproc
        if job.is_training:
            split = None
            if job.command.startswith("megatron"):
                split = 1
                for key in (
                    "tensor_model_parallel_size",
                    "pipeline_model_parallel_size",
                    "expert_model_parallel_size",
                ):
                    split *= int(args.get(key, 1))
                split = min(split, world)
            tuner = str(args.get("tuner_type", ms_swift_args.default(job.command, "tuner_type")))
            need = sizing.training_gib(
                params,
                tuner=tuner,
                quant_bits=args.get("quant_bits"),
                deepspeed=args.get("deepspeed"),
                megatron_split=split,
                world=world,
                refs=sizing.reference_models(job.rlhf_type),
            )
            what = f"{job.model} {tuner} on {world} GPU(s)"
            hint = "use LoRA/QLoRA, DeepSpeed zero3 (Megatron: more TP/PP/EP), more GPUs or larger ones"
        else:
            tp = int(args.get("vllm_tensor_parallel_size", 1))
            need, what = sizing.serving_gib(params, tp), f"serving {job.model} on {tp} GPU(s)"
            hint = "raise vllm_tensor_parallel_size or use larger GPUs"
        level, message = sizing.verdict(need, have, what)
        message += f" ({nodes[0].instance_type})"
        if level == "refuse":
            raise self.fail("model", f"too big: {message}; {hint}")
        (self.warnings if level == "warn" else self.notes).append(message)


def facts_for(cluster: str | None, nodes: list[NodeInfo], *, required: bool) -> dict[str, NodeFacts]:
    """Every node's setup record. A run needs the real one (the plan must not guess where setup put the stack);
    a dry run without it shows the roles' defaults."""
    recorded = node_facts.load(cluster) if cluster else None
    if recorded is None and not required:
        return {n.name: node_facts.assumed(n.user) for n in nodes}
    where = node_facts.facts_file(cluster) if cluster else "no cluster"
    missing = [n.name for n in nodes if recorded is None or n.name not in recorded]
    if recorded is None or missing:
        raise SwiftfleetError(
            f"cluster {cluster}: no setup record for {', '.join(missing)} ({where}): "
            f"run make setup CLUSTER=<cluster file> first"
        )
    return recorded


def _check_stack(b: "_Builder", nodes: list[NodeInfo], facts: Mapping[str, NodeFacts]) -> None:
    """The nodes must run the ms-swift the job was checked against."""
    pinned = ms_swift_args.pinned_version()
    for n in nodes:
        if not facts[n.name].consistent:
            raise b.fail(
                "nodes", f"{n.name}'s stack is broken ({'; '.join(facts[n.name].issues)}): fix it, make setup"
            )
        have = facts[n.name].ms_swift
        if have == node_facts.ABSENT:
            continue  # a dry run's assumed record
        if have.split("+")[0] != pinned:
            raise b.fail(
                "kind",
                f"{n.name} has ms-swift {have}, but jobs are checked against {pinned}: run make setup again",
            )


def _check_needs(b: "_Builder", nodes: list[NodeInfo], facts: Mapping[str, NodeFacts]) -> None:
    """What the job needs beyond ms-swift (needs.py, from the role's table) against what setup installed on each
    node: refused before any upload, naming the field, the package and the fix. A dry run lists them."""
    job = b.job
    sources = needs.of_job(job)
    table = needs.extra_table()
    for need, where in sources.items():
        blocked = needs.unavailable(need)
        if blocked:
            raise b.fail(where, blocked)
        for n in nodes:
            f = facts[n.name]
            if f.ms_swift == node_facts.ABSENT:  # a dry run's assumed record
                b.notes.append(
                    f"{where} needs {need} ({' '.join(needs.specs(need))}): make setup JOB=<job file>"
                )
                break
            lacking = needs.missing([need], f.distributions)
            if lacking:
                gpu_only = bool(table[need].get("gpu_only"))
                raise b.fail(where, needs.refusal(need, lacking[0][1], n.name, gpu_only, n.gpu_count > 0))


def _node_file(template: str, dest: str, owner: str, mode: str = "0644", secret: bool = False) -> NodeFile:
    return NodeFile(template=template, dest=dest, mode=mode, owner=owner, secret=secret)


def build(
    job: Job, all_nodes: list[NodeInfo], source: str, facts: Mapping[str, NodeFacts] | None = None
) -> JobPlan:
    """The plan: what every node runs, and what the playbooks copy, start and collect.
    Without facts, a dry run: the nodes as the roles' defaults would set them up."""
    b = _Builder(job, all_nodes, source)
    nodes = b.chosen_nodes()
    trainers = b.trainers(nodes)
    servers = nodes[len(trainers) :]
    facts = facts if facts is not None else facts_for(None, nodes, required=False)
    _check_stack(b, nodes, facts)
    if API_KEY_ENV in job.env and job.command not in SERVED:
        raise b.fail(f"env.{API_KEY_ENV}", f"only {' and '.join(sorted(SERVED))} jobs use the API key")
    b.gpu_only(nodes)
    _check_needs(b, nodes, facts)
    torchrun = job.runs_torchrun
    nproc = b.nproc(trainers) if torchrun else 1
    problem = (
        arg_rules.check_steps(job.command, job.args)
        or arg_rules.check_quant(job.command, job.args)
        or arg_rules.check_rollout(job.command, job.args, served=job.rollout is not None)
    )
    if problem:
        raise b.fail(*problem)
    layout = arg_rules.check_layout(
        job.command,
        job.args,
        nnodes=len(trainers),
        nproc_per_node=nproc,
        gpus_per_node=_visible_gpus(job, trainers),
    )
    if layout and nodes[0].instance_type == DRY_RUN_TYPE:  # a layout for GPUs this dry run does not have
        b.notes.append(f"{layout[0]}: {layout[1]} in this dry run; check it against a real inventory")
    elif layout:
        raise b.fail(*layout)
    config = b.config()
    rollout = b.rollout(config, servers)
    shares = b.shares(config, len(nodes)) if job.command in DATA_PARALLEL else None
    b.size(trainers, nproc)
    env, prefetch_env = hub_env(job, b.prefetch)
    program, sub = job.command.split(" ", 1)
    out = job.output or ("fetch" if job.command not in SERVICES else None)
    served = job.command in SERVED
    plan_nodes = []
    for n in nodes:
        f = facts[n.name]
        job_dir = f.job_dir(job.name)
        unit = f"swiftfleet-{job.name}-rank{n.rank}.service"

        files = [
            _node_file("job/config.yaml.j2", f"{job_dir}/config.yaml", f.job_user),
            _node_file("job/job.env.j2", f"{job_dir}/job.env", f.job_user, "0600", secret=True),
            _node_file("job/run.sh.j2", f"{job_dir}/run.sh", f.job_user, "0755"),
        ]
        if served:
            files.append(_node_file("job/swift_launch.py.j2", f"{job_dir}/swift_launch.py", f.job_user))
        if served and API_KEY_ENV in job.env:
            files.append(
                _node_file("job/api-key.env.j2", f"{job_dir}/api-key.env", f.job_user, "0600", secret=True)
            )
        if n.rank == 0 and len(nodes) > 1 and b.uploads:  # it serves the uploads to the others (staging)
            files.append(_node_file("job/stage_rsyncd.conf.j2", f"{job_dir}/stage-rsyncd.conf", f.job_user))
        unit_template = "job/deploy.service.j2" if job.command in SERVICES else "job/run.service.j2"
        files.append(_node_file(unit_template, f"/etc/systemd/system/{unit}", "root"))
        plan_nodes.append(
            PlanNode(
                host=n.name,
                rank=n.rank,
                role="rollout" if n in servers else "train",
                private_ip=n.private_ip,
                user=f.job_user,
                home=f.home,
                venv=f.venv,
                env_files=f.env_files,
                job_dir=job_dir,
                env=cache_env(job, f),
                unit=unit,
                log=f"{job_dir}/rank{n.rank}.log",
                files=files,
            )
        )
    s3_out = out is not None and out.startswith("s3://")
    return JobPlan(
        name=job.name,
        kind=job.command,
        playbook=playbook_of(job.command),
        program=program,
        subcommand=sub,
        torchrun=torchrun,
        launcher=served,
        # ms-swift skips a merge whose output_dir exists (swift/pipelines/export/merge_lora.py:31), so a re-run
        # of an export would keep the last one: run.sh empties output/ first.
        fresh_output=job.command in EXPORTS,
        shares=shares,
        rollout=rollout,
        ms_swift=ms_swift_args.pinned_version(),
        nnodes=len(trainers),
        nproc_per_node=nproc,
        master_addr=nodes[0].private_ip,
        master_port=job.master_port,
        time_limit=job.time_limit,
        # Trainer-based kinds save checkpoint-N at the end at least; Megatron's layout differs and is not checked.
        expects_checkpoint=job.command in SAVES_CHECKPOINTS and config.get("save_strategy", "steps") != "no",
        config=config,
        env=env,
        api_key=str(job.env[API_KEY_ENV]) if API_KEY_ENV in job.env else None,
        port=config.get("server_port" if job.command in TUNNELED else "port"),
        health=HEALTH_PATHS.get(job.command),
        tunnel=job.command in TUNNELED,
        uploads=b.uploads,
        staging=staging(job.name, b.uploads, plan_nodes),
        downloads=[Download(**d) for d in b.downloads],
        prefetch=[Prefetch(**p) for p in b.prefetch],
        prefetch_env=prefetch_env,
        # Every node reads one shared hub cache: rank 0 downloads, the others find the files there. Not when the
        # job's env moves a cache elsewhere (node-local, as far as the kit knows).
        prefetch_once=all(facts[n.name].shared_hub for n in nodes)
        and len({facts[n.name].hub_cache for n in nodes}) == 1
        and not CACHE_VARS.intersection(job.env),
        hub=job.hub,
        output=Output(
            mode="s3" if s3_out else out,  # type: ignore[arg-type]
            uri=out if s3_out else None,
            local_dir=str(outputs_dir(job.name)),
        ),
        notes=b.notes,
        warnings=b.warnings,
        nodes=plan_nodes,
    )


def staging(job: str, uploads: list[Upload], nodes: list[PlanNode]) -> Staging:
    """Rank 0 gets each upload from the controller once; the others copy them from rank 0 (plan_model.Staging)."""
    rank0 = nodes[0]
    size = sum(u.bytes for u in uploads)
    return Staging(
        tree=str(paths.state_dir() / "staging" / job),
        bytes=size,
        fan_out=len(nodes) > 1 and bool(uploads),
        address=rank0.private_ip,
        port=ports.staging_port(job),
        module=job,
        serves=_served(uploads),
        unit=f"swiftfleet-stage-{job}.service",
        config=f"{rank0.job_dir}/stage-rsyncd.conf",
        allow=[n.private_ip for n in nodes[1:]],
        # Copies between nodes run at 10 MB/s at the very least; past that the staging died with the play.
        max_seconds=STAGING_GRACE_S + size // 10_000_000,
    )


def _served(uploads: list[Upload]) -> list[str]:
    """rsync filter rules that let the other nodes read the uploads (and the directories above them) only."""
    rules: dict[str, None] = {}
    for u in uploads:
        parts = u.dest.split("/")
        for depth in range(1, len(parts)):
            rules[f"+ /{'/'.join(parts[:depth])}/"] = None
        rules[f"+ /{u.dest}/***" if u.is_dir else f"+ /{u.dest}"] = None
    return [*rules, "- *"]


def hypothetical_nodes(count: int) -> list[NodeInfo]:
    """A CPU cluster that exists only for a dry run; its addresses are from TEST-NET-1 (RFC 5737), never reached."""
    return [NodeInfo(f"node{i}", i, f"192.0.2.{10 + i}", "root", 0, 0.0, DRY_RUN_TYPE) for i in range(count)]
