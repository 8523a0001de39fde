"""Arguments of the pinned ms-swift, per command, read from data/ms_swift_args.json: names, the type ms-swift's
parser gives each, Literal choices and plain defaults.

The JSON is generated from an installed ms-swift by gen_ms_swift_args.py (tests/jobs compare it with a fresh run),
so a job's arguments are checked against the version the nodes run, not against memory. check_value() judges one
value the way the nodes would: ms-swift turns each YAML value of config.yaml into command-line words
(swift/cli/main.py:61-70: a list gives one word per item, a mapping its JSON, anything else str()) and argparse
applies the field's type to each word.
"""

import difflib
import json
import math
import re
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

from swiftfleet import ports

DATA_FILE = "ms_swift_args.json"


@cache
def _data() -> dict[str, Any]:
    text = resources.files("swiftfleet.jobs").joinpath("data", DATA_FILE).read_text()
    data: dict[str, Any] = json.loads(text)
    return data


def pinned_version() -> str:
    return str(_data()["ms_swift"])


def names(command: str) -> frozenset[str]:
    return frozenset(_data()["commands"][command]["args"])


def choices(command: str, arg: str) -> list[Any] | None:
    found: list[Any] | None = _data()["commands"][command]["choices"].get(arg)
    return found


def arg_type(command: str, arg: str) -> str:
    """The parsed type: int, float, bool, str or any (choices, or nothing to check), `list[X]` for a list of X,
    with `?` when None is allowed."""
    return str(_data()["commands"][command]["types"].get(arg, "any"))


def default(command: str, arg: str) -> Any:
    """ms-swift's default for the argument when it is a plain value, else None (also when the default is None)."""
    return _data()["commands"][command]["defaults"].get(arg)


def suggest(word: str, options: frozenset[str] | list[Any]) -> str:
    """' (did you mean X?)' for the closest option, or '' when nothing is close."""
    close = difflib.get_close_matches(word, [str(o) for o in options], n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_arg_message(command: str, arg: str) -> str:
    """Why `arg` is not an argument of `command`, with the most useful hint this version allows."""
    base = f"{arg!r} is not a `{command}` argument of ms-swift {pinned_version()}"
    if arg == "train_type" and "tuner_type" in names(command):
        return f"{base}: ms-swift 4 renamed --train_type to --tuner_type"
    hint = suggest(arg, names(command))
    if hint:
        return base + hint
    program, sub = command.split(" ", 1)
    other = "swift" if program == "megatron" else "megatron"
    if f"{other} {sub}" in _data()["commands"] and arg in names(f"{other} {sub}"):
        return f"{base}: it belongs to `{other} {sub}`"
    return base


def string_to_bool(text: str) -> bool:
    """transformers' hf_argparser.string_to_bool (5.19, hf_argparser.py:36-46), the type of bool arguments."""
    if text.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if text.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise ValueError(text)


def is_on(value: object) -> bool:
    """A boolean ms-swift argument as ms-swift's parser reads it (true, "yes", "y", 1, ...); not a boolean: False
    (check_value refuses it)."""
    try:
        return string_to_bool(str(value))
    except ValueError:
        return False


# type -> (argparse's type function, what a value must be, how the message names the type)
_PARSERS: dict[str, tuple[Callable[[str], object], str, str]] = {
    "int": (int, "a whole number", "an int"),
    "float": (float, "a number", "a float"),
    "bool": (string_to_bool, "true or false", "a bool"),
}


class Bound(NamedTuple):
    ok: Callable[[float], bool]
    need: str  # what the value must be, for the message
    why: str
    unless: tuple[str, ...] = ()  # a positive value of one of these lifts the bound (arg_rules.check_steps)


_PORT = Bound(
    lambda p: ports.server_port_problem(int(p)) is None,
    f"{ports.UNPRIVILEGED.start}-{ports.UNPRIVILEGED.stop - 1}, outside "
    f"{ports.RENDEZVOUS.start}-{ports.RENDEZVOUS.stop - 1}",
    "below 1024 needs root and 22 is sshd; the other range is torchrun's rendezvous (master_port), where a "
    "server would take the port a training job's rank 0 listens on",
)
_AT_LEAST_ONE = Bound(lambda n: n >= 1, ">= 1", "each step needs at least one sample")
_ROWS = Bound(lambda n: n >= 1, ">= 1", "a batch holds at least one row")
# A parallel group of fewer than one GPU is no layout (megatron-core and vLLM divide by these sizes).
_GROUP = Bound(lambda n: n >= 1, ">= 1", "a parallel group holds at least one GPU")
# Values ms-swift accepts but that cannot train or serve, found before any node is paid for.
BOUNDS: dict[str, Bound] = {
    "learning_rate": Bound(lambda x: x > 0, "> 0", "a zero or negative step size never learns"),
    "lr": Bound(
        lambda x: x > 0, "> 0", "a zero or negative step size never learns (Megatron's learning_rate)"
    ),
    "num_train_epochs": Bound(
        lambda x: x > 0, "> 0", "there would be no training step", unless=("max_steps", "train_iters")
    ),
    "max_steps": Bound(
        lambda n: n != 0,
        "a positive step count or -1 (train by num_train_epochs)",
        "0 reads as no training, but transformers then trains for num_train_epochs",
    ),
    "train_iters": Bound(lambda n: n >= 1, ">= 1", "there would be no training step"),
    "lora_rank": Bound(lambda n: n >= 1, ">= 1", "a rank 0 adapter has no parameters to train"),
    "per_device_train_batch_size": _AT_LEAST_ONE,
    "per_device_eval_batch_size": _AT_LEAST_ONE,
    "micro_batch_size": _AT_LEAST_ONE,
    "global_batch_size": _AT_LEAST_ONE,
    "gradient_accumulation_steps": Bound(
        lambda n: n >= 1, ">= 1", "an optimizer step needs at least one batch"
    ),
    **dict.fromkeys(
        (
            "tensor_model_parallel_size",
            "pipeline_model_parallel_size",
            "context_parallel_size",
            "expert_model_parallel_size",
            "expert_tensor_parallel_size",
            "vllm_tensor_parallel_size",
            "vllm_pipeline_parallel_size",
            "vllm_data_parallel_size",
        ),
        _GROUP,
    ),
    "port": _PORT,
    "server_port": _PORT,  # swift app's Gradio
    "num_sampling_batch_size": _ROWS,
    "num_return_sequences": _ROWS,
    "vllm_server_port": _PORT,
    "vllm_server_group_port": _PORT,
}


def bound_problem(arg: str, value: object, bound: Bound) -> str | None:
    """The message when a number (YAML's, or a string argparse reads as one) is outside `bound`."""
    try:
        number = float(str(value))
    except ValueError:
        return None  # the type check speaks for non-numbers
    return (
        None if bound.ok(number) else f"{value!r} is out of range: {arg} must be {bound.need} ({bound.why})"
    )


DEEPSPEED_PRESETS = ("zero0", "zero1", "zero2", "zero3", "zero2_offload", "zero3_offload")
# flash_attn is ms-swift's alias for flash_attention_2 (swift/model/utils.py:31-34, 4.6.0); the rest are what
# transformers 5.19 accepts: eager plus its attention registry (modeling_utils.py:1851 and :5118-5124).
ATTN_IMPLS = (
    "flash_attn",
    "eager",
    "sdpa",
    "flex_attention",
    "flash_attention_2",
    "flash_attention_3",
    "flash_attention_4",
    "paged|eager",
)
# swift/arguments/base_args/base_args.py:56-58 (4.6.0) get_supported_tuners(): the built-in names and
# swift.tuners' tuners_map (dummy, ia3, lora_llm). A tuner that an external plugin registers is not known here.
TUNERS = frozenset(
    {
        "lora",
        "full",
        "longlora",
        "adalora",
        "llamapro",
        "adapter",
        "vera",
        "boft",
        "fourierft",
        "reft",
        "bone",
    }
    | {"dummy", "ia3", "lora_llm"}
)
# A hub kernel, org/repo[@revision][:name] (transformers 5.19 integrations/hub_kernels.py:811).
_HUB_KERNEL = re.compile(r"^[^/:]+/[^/:]+(?:@[^/:]+)?(?::[^/:]+)?$")


def _documented_choice(arg: str, value: object) -> str | None:
    """Strings ms-swift checks only at run time (typed str, not Literal)."""
    text = str(value)
    if arg in ("deepspeed", "teacher_deepspeed"):
        # swift/arguments/sft_args.py:261-270 (rlhf_args.py:734-746 for the teacher): a preset name becomes
        # swift/config/NAME.json, anything else goes to json_parse_to_dict: a file path or a JSON object.
        if (
            isinstance(value, dict)
            or text in DEEPSPEED_PRESETS
            or text.endswith(".json")
            or text.startswith("{")
        ):
            return None
        return (
            f"{value!r} is not a DeepSpeed preset ({', '.join(DEEPSPEED_PRESETS)}), a *.json config path or a "
            f"JSON object{suggest(text, list(DEEPSPEED_PRESETS))}"
        )
    if arg == "tuner_type" and text not in TUNERS:
        return f"{value!r} is not one of ms-swift's tuners {sorted(TUNERS)}{suggest(text, sorted(TUNERS))}"
    if arg == "attn_impl" and text not in ATTN_IMPLS and not _HUB_KERNEL.match(text):
        return f"{value!r} is not one of {list(ATTN_IMPLS)} or a hub kernel (org/repo){suggest(text, list(ATTN_IMPLS))}"
    return None


def _type_problem(arg: str, kind: str, value: object) -> str | None:
    """Why argparse would refuse str(value) for one word of type `kind`, else None."""
    if kind not in _PARSERS:
        return None
    parse, need, name = _PARSERS[kind]
    try:
        parsed = parse(str(value))
    except ValueError:
        return f"{value!r} is not {need} ({arg} is {name})"
    # argparse takes inf and nan, and the config.yaml ms-swift reads would hold null instead
    if isinstance(parsed, float) and not math.isfinite(parsed):
        return f"{value!r} is not a finite number ({arg} is {name})"
    return None


def check_value(command: str, arg: str, value: object) -> str | None:
    """Why ms-swift would refuse `value` for `arg` of `command` (type, choices, documented strings, BOUNDS), as one
    line without the location, else None. Bounds that depend on other arguments are left to arg_rules."""
    kind = arg_type(command, arg).rstrip("?")
    item_kind = kind.removeprefix("list[").removesuffix("]")
    if isinstance(value, list):
        if item_kind == kind:
            return f"{value!r} is a list, but {arg} takes one value"
        if not value:
            return f"[] is empty: {arg} takes at least one value (leave it out for ms-swift's default)"
    elif isinstance(value, dict) and item_kind in _PARSERS:
        return f"a mapping is not {_PARSERS[item_kind][1]} ({arg} is {_PARSERS[item_kind][2]})"
    allowed = choices(command, arg)
    bound = BOUNDS.get(arg)
    for item in value if isinstance(value, list) else [value]:
        if allowed is not None and item not in allowed and str(item) not in [str(a) for a in allowed]:
            return f"{item!r} is not one of {allowed}{suggest(str(item), allowed)}"
        problem = _type_problem(arg, item_kind, item) or _documented_choice(arg, item)
        if problem is None and bound is not None and not bound.unless:
            problem = bound_problem(arg, item, bound)
        if problem:
            return problem
    return None
