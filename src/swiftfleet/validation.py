"""Turn pydantic's ValidationError into the one clear line the CLI prints."""

import difflib
import re
import types
from collections.abc import Hashable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, RootModel, ValidationError
from pydantic_core import ErrorDetails

from swiftfleet.errors import SwiftfleetError

M = TypeVar("M", bound=BaseModel)


def one_line(source: str, exc: ValidationError, root: object, skip: int = 0) -> SwiftfleetError:
    """First error only: the user fixes one thing at a time, and the line stays readable.

    `root` is the type that was validated: an unknown key is named with the closest known key at its place.
    `skip` drops leading location parts that only name a wrapper key (e.g. `job`), unless the error is at it;
    parts that name a union member (`str`, a provider's tag) are dropped wherever they are.
    """
    errors = exc.errors()
    # A misspelt key also makes its right name "missing": the unknown key is the one to report.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = err["loc"]
    path, union = _path(root, loc)
    where = ".".join(str(p) for p in (path[skip:] if len(path) > skip else path))
    msg = err["msg"].removeprefix("Value error, ")
    explained: tuple[Any, ...] = ()
    # The errors that are this one problem: a value that fits no member of a union fails once per member.
    same: list[ErrorDetails] = []
    if err["type"] == "extra_forbidden":
        where = where or str(loc[-1])  # an unknown key always names itself, even at a skipped level
        known = _known_keys(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if close:
            msg = f"unknown key (did you mean {close[0]!r}?)"
            explained = (*loc[:-1], close[0])
        else:
            msg = f"unknown key (known here: {', '.join(known)})"
    elif union is not None and err["type"] in TYPE_ERRORS:
        same = [e for e in errors if _path(root, e["loc"])[0] == path and e["type"] in TYPE_ERRORS]
        msg = f"must be a {_or(_kinds(union))}"
    elif err["type"] == "model_type":
        keys = _known_keys(root, loc, required=True) or _known_keys(root, loc)
        msg = f"must be a mapping ({', '.join(keys[:3])}, ...)"
    elif (named := re.match(r"(\w+): ", msg)) and named[1] in _known_keys(root, loc):
        # A model validator's error has the model's location; the field it is about leads its message.
        where = ".".join(filter(None, (where, named[1])))
        msg = msg[named.end() :]
    # For an unknown union tag, pydantic's own wording names neither the field nor the value well.
    if err["type"] == "union_tag_invalid":
        ctx = err.get("ctx", {})
        where = str(ctx.get("discriminator", "")).strip("'")
        msg = f"{ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}"
    more = sum(1 for e in errors if e is not err and e not in same and not _is_missing(e, explained))
    suffix = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    return SwiftfleetError(f"{source}: {where or 'file'}: {msg}{suffix}")


# pydantic's error types for a value of the wrong type: for a union, one per member.
TYPE_ERRORS = frozenset(
    {
        "string_type",
        "int_type",
        "int_parsing",
        "float_type",
        "float_parsing",
        "bool_type",
        "bool_parsing",
        "dict_type",
        "list_type",
        "model_type",
        "model_attributes_type",
    }
)
KIND_NAMES = {str: "string", int: "number", float: "number", bool: "boolean", dict: "mapping", list: "list"}


def _path(root: object, loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """`loc` without the parts that name a union member, and the union the value itself had to fit (or None)."""
    tp, path, union = _unwrap(root), [], None
    for part in loc:
        union = None
        if _union_size(tp) > 1 and (member := _step(tp, part)) is not None:
            union, tp = tp, member
            continue
        path.append(part)
        tp = _step(tp, part)
    return tuple(path), union


def _kinds(union: Any) -> list[str]:
    """What the members of a union take, in words: string, number, boolean, mapping, list."""
    names = []
    for member in map(_unwrap, _members(union)):
        base = get_origin(member) or member
        name = "mapping" if isinstance(base, type) and issubclass(base, BaseModel) else KIND_NAMES.get(base)
        if name and name not in names:
            names.append(name)
    return names


def _or(words: list[str]) -> str:
    return " or ".join(filter(None, (", ".join(words[:-1]), words[-1])))


def _is_missing(err: ErrorDetails, loc: tuple[Any, ...]) -> bool:
    return err["type"] == "missing" and err["loc"] == loc


def _known_keys(root: object, loc: tuple[Any, ...], required: bool = False) -> list[str]:
    """The keys (or only the required ones) the mapping at `loc` may hold, found by following `loc` through the
    validated type."""
    tp = _unwrap(root)
    for part in loc:
        tp = _step(tp, part)
    fields = tp.model_fields if isinstance(tp, type) and issubclass(tp, BaseModel) else {}
    return [f.alias or name for name, f in fields.items() if f.is_required() or not required]


def _unwrap(tp: Any) -> Any:
    """Through Annotated, `X | None` and RootModel, which add no location part of their own."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif _union_size(tp) == 1:
            tp = _members(tp)[0]
        elif isinstance(tp, type) and issubclass(tp, RootModel):
            tp = tp.model_fields["root"].annotation
        else:
            return tp


def _members(tp: Any) -> list[Any]:
    return [a for a in get_args(tp) if a is not type(None)]


def _union_size(tp: Any) -> int:
    """The members of a union besides None (with several, pydantic names the member in the location); 0 if `tp`
    is no union."""
    return len(_members(tp)) if get_origin(tp) in (Union, types.UnionType) else 0


def _step(tp: Any, part: Any) -> Any:
    """The type one location part down: a field, a list item, a dict value, or a union member picked by its tag
    (the value of a Literal field, as for `provider`) or its type's name (`str`, a model's class name)."""
    origin = get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return _unwrap(field.annotation) if field else None
    if origin in (Union, types.UnionType):
        for member in map(_unwrap, _members(tp)):
            if part == getattr(member, "__name__", None):
                return member
            if isinstance(member, type) and issubclass(member, BaseModel):
                tags = [
                    v
                    for f in member.model_fields.values()
                    if get_origin(f.annotation) is Literal
                    for v in get_args(f.annotation)
                ]
                if part in tags:
                    return member
        return None
    if origin in (list, dict):  # the item, or the value
        return _unwrap(get_args(tp)[-1])
    return None


def parse(model: type[M], data: object, source: str, skip: int = 0) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise one_line(source, exc, model, skip) from None


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, first: yaml.Mark, again: yaml.Mark) -> None:
        lines = sorted({first.line + 1, again.line + 1})
        where = f"line {lines[0]}" if len(lines) == 1 else f"lines {lines[0]} and {lines[1]}"
        super().__init__(f"{key}: given twice ({where}); YAML would silently keep the last, so keep one")


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping, which PyYAML would take as the last one given."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[object, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` overrides by design
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                if key in seen:
                    raise _DuplicateKey(key, seen[key], key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def read_yaml(path: Path, what: str) -> object:
    try:
        text = path.expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise SwiftfleetError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise SwiftfleetError(f"{what} {path}: not UTF-8 text (line {line}); save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except _DuplicateKey as exc:
        raise SwiftfleetError(f"{what} {path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise SwiftfleetError(f"{what} {path}: not valid YAML ({exc})".replace("\n", " ")) from None
