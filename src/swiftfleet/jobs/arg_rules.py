"""Rules between a job's ms-swift arguments and the cluster it runs on, which no single value shows.

ms_swift_args.check_value() judges each value alone; check_steps() and check_layout() see them together with the world the job gets
(nodes x processes per node, and the GPUs per node), so a job that would fail at ms-swift's or megatron-core's
start-up fails here, before any node is paid for. Arguments a job leaves out count with ms-swift's default.
"""

from collections.abc import Mapping
from typing import Any

from swiftfleet.jobs import ms_swift_args

Problem = tuple[str, str]  # (where, e.g. "args.global_batch_size", message)
_MEGATRON_TRAINING = ("megatron sft", "megatron pt", "megatron rlhf")


def _value(command: str, args: Mapping[str, Any], arg: str, fallback: Any = None) -> Any:
    """The job's value, else ms-swift's default, else `fallback`; only for names `command` has."""
    if arg in args:
        return args[arg]
    found = ms_swift_args.default(command, arg)
    return fallback if found is None else found


def _number(value: Any) -> float:
    """A value check_value() already accepted as a number (YAML's, or a numeric string)."""
    return float(str(value))


def check_steps(command: str, args: Mapping[str, Any]) -> Problem | None:
    """Bounds lifted by a positive step count (ms_swift_args.BOUNDS `unless`), and streaming's need of one."""
    names = ms_swift_args.names(command)
    for arg, bound in ms_swift_args.BOUNDS.items():
        if not bound.unless or arg not in args or arg not in names:
            continue
        if any(_number(_value(command, args, s, 0)) > 0 for s in bound.unless if s in names):
            continue
        problem = ms_swift_args.bound_problem(arg, args[arg], bound)
        if problem:
            steps = " or ".join(s for s in bound.unless if s in names)
            return f"args.{arg}", f"{problem}; set {steps} to train by steps instead"
    if not ms_swift_args.string_to_bool(str(_value(command, args, "streaming", False))):
        return None
    if "max_steps" in names and _number(_value(command, args, "max_steps", -1)) <= 0:
        # data_args.py:46 (4.6.0): "`--max_steps` must be set as the dataset length is unknown"; transformers
        # refuses to start without it (trainer.py:729).
        return "args.streaming", "a streaming dataset has no length: set max_steps (ms-swift's rule)"
    if "train_iters" in names:
        # swift/megatron/arguments/megatron_args.py:1142-1155 (4.6.0).
        if str(_value(command, args, "save_strategy")) == "epoch":
            return "args.streaming", "a streaming dataset has no epochs: Megatron refuses save_strategy epoch"
        if _value(command, args, "train_iters") is None:
            return "args.streaming", "a streaming dataset has no length: set train_iters (ms-swift's rule)"
    return None


def check_rollout(command: str, args: Mapping[str, Any], served: bool = False) -> Problem | None:
    """vLLM rollouts of `swift rlhf` (GRPO and the other online kinds): swift/arguments/rlhf_args.py:444-458 (4.6.0)
    refuses a vllm_mode without use_vllm and use_vllm without a vllm_mode, asserts a server in server mode, and
    async_generate needs server mode. `served`: the job's own rollout servers, for which the kit sets them all."""
    if command != "swift rlhf" or served:
        return None
    use_vllm = ms_swift_args.is_on(args.get("use_vllm", False))
    mode = args.get("vllm_mode")
    if mode is not None and not use_vllm:
        return "args.vllm_mode", "vLLM rollouts need use_vllm: true (ms-swift refuses vllm_mode without it)"
    if use_vllm and mode is None:
        return (
            "args.use_vllm",
            "say where vLLM runs: vllm_mode: colocate (in the training processes) or server",
        )
    server = args.get("vllm_server_host") is not None or args.get("vllm_server_base_url") is not None
    if use_vllm and mode == "server" and not server:
        return "args.vllm_mode", (
            "server mode needs a running `swift rollout`: let the job start it on its last node(s) with "
            "`rollout: {nodes: 1}`, or name one with vllm_server_host (its private IP) and vllm_server_port, "
            "or vllm_server_base_url"
        )
    if ms_swift_args.is_on(args.get("async_generate", False)) and mode != "server":
        return "args.async_generate", "async_generate needs vllm_mode: server (ms-swift's rule)"
    return None


def check_rollout_server(args: Mapping[str, Any]) -> Problem | None:
    """What `swift rollout` refuses at start (swift/arguments/deploy_args.py RolloutArguments._check_args, 4.6.0)."""
    if int(args.get("vllm_pipeline_parallel_size", 1)) > 1:
        return (
            "args.vllm_pipeline_parallel_size",
            "swift rollout has no pipeline parallelism (ms-swift refuses it)",
        )
    if args.get("vllm_reasoning_parser") is not None:
        return "args.vllm_reasoning_parser", "swift rollout takes no reasoning parser (ms-swift refuses it)"
    if args.get("multi_turn_scheduler") and args.get("vllm_use_async_engine") is False:
        return "args.vllm_use_async_engine", "a multi_turn_scheduler needs the async engine (ms-swift's rule)"
    return None


def check_quant(command: str, args: Mapping[str, Any]) -> Problem | None:
    """Quantizing on load: swift/arguments/base_args/quant_args.py:46-57 (4.6.0) wants quant_bits for bnb, hqq,
    eetq and quanto, and bnb loads 4 or 8 bits only ("bnb not support quant_bits")."""
    method = args.get("quant_method")
    if method not in ("bnb", "hqq", "eetq", "quanto") or command == "swift export":
        return None
    bits = args.get("quant_bits")
    if bits is None:
        return "args.quant_method", f"{method} quantizes on load to quant_bits bits: set quant_bits"
    if method == "bnb" and str(bits) not in ("4", "8"):
        return "args.quant_bits", f"{bits!r}: bnb loads 4 or 8 bits only"
    return None


def _megatron(command: str, args: Mapping[str, Any], nnodes: int, nproc_per_node: int) -> Problem | None:
    """megatron-core's parallel layout and ms-swift's batch arithmetic for the world size."""
    world = nnodes * nproc_per_node
    tp, pp, cp, ep, etp, micro, global_ = (
        int(_value(command, args, arg, 1))
        for arg in (
            "tensor_model_parallel_size",
            "pipeline_model_parallel_size",
            "context_parallel_size",
            "expert_model_parallel_size",
            "expert_tensor_parallel_size",
            "micro_batch_size",
            "global_batch_size",
        )
    )
    layout = f"the world size {world} ({nnodes} nodes x {nproc_per_node} processes)"
    # megatron-core 0.16 parallel_state.py:738-741: world_size % (TP * PP * CP) == 0.
    if world % (tp * pp * cp):
        where = next(
            (
                a
                for a in (
                    "tensor_model_parallel_size",
                    "pipeline_model_parallel_size",
                    "context_parallel_size",
                )
                if a in args
            ),
            "tensor_model_parallel_size",
        )
        return f"args.{where}", f"TP {tp} x PP {pp} x CP {cp} = {tp * pp * cp} does not divide {layout}"
    # parallel_state.py:786-794: world_size % (ETP * EP * PP) == 0 (ms-swift defaults ETP to 1, not to TP).
    if world % (etp * ep * pp):
        return (
            "args.expert_model_parallel_size",
            f"ETP {etp} x EP {ep} x PP {pp} = {etp * ep * pp} does not divide {layout}",
        )
    # swift/megatron/arguments/megatron_args.py:997-1011 (4.6.0): whole micro-batches per data-parallel rank.
    dp = world // (tp * pp * cp)
    if command in _MEGATRON_TRAINING and global_ % (micro * dp):
        return (
            "args.global_batch_size",
            f"{global_} is not a multiple of micro_batch_size {micro} x data-parallel size {dp} "
            f"({layout} / TP {tp} x PP {pp} x CP {cp})",
        )
    return None


def _vllm(command: str, args: Mapping[str, Any], gpus_per_node: int) -> Problem | None:
    """vLLM's GPUs come from one node: ms-swift serves one model per machine, and a colocated engine's TP group
    lives beside its trainer ranks on the node."""
    sizes = ["vllm_tensor_parallel_size", "vllm_pipeline_parallel_size"]
    if command in ("swift deploy", "swift infer", "swift eval", "swift rollout"):
        sizes.append("vllm_data_parallel_size")  # one process drives every replica, on this node
    present = [s for s in sizes if s in ms_swift_args.names(command)]
    need = 1
    for arg in present:
        need *= int(_value(command, args, arg, 1))
    if need <= gpus_per_node or not any(a in args for a in present):
        return None
    where = next(a for a in present if a in args)
    product = " x ".join(f"{a} {int(_value(command, args, a, 1))}" for a in present)
    return f"args.{where}", f"{product} needs {need} GPUs on one node, the nodes have {gpus_per_node}"


def check_layout(
    command: str, args: Mapping[str, Any], *, nnodes: int, nproc_per_node: int, gpus_per_node: int
) -> Problem | None:
    """The first problem between the job's parallel layout and the world it runs in (nodes x processes per node,
    GPUs per node), as (where, message), else None. gpus_per_node 0 is a CPU node: no GPU arithmetic, the
    world's still."""
    problem = _megatron(command, args, nnodes, nproc_per_node) if command.startswith("megatron") else None
    if problem is None and gpus_per_node > 0:
        problem = _vllm(command, args, gpus_per_node)
    return problem
