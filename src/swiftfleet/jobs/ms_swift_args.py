"""Argument names of the pinned ms-swift, per command, read from data/ms_swift_args.json.

The JSON is generated from an installed ms-swift by gen_ms_swift_args.py (tests/jobs compare it with a fresh run),
so a job's arguments are checked against the version the nodes run, not against memory.
"""

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

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


def check_value(command: str, arg: str, value: object) -> str | None:
    """A message when a Literal-typed argument gets a value outside its choices, else None."""
    allowed = choices(command, arg)
    if allowed is None or value in allowed or str(value) in [str(a) for a in allowed]:
        return None
    return f"{value!r} is not one of {allowed}{suggest(str(value), allowed)}"
