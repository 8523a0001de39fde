"""Turn pydantic's ValidationError into the one clear line the CLI prints."""

import difflib
import types
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, RootModel, ValidationError
from pydantic_core import ErrorDetails

from swiftfleet.errors import SwiftfleetError

M = TypeVar("M", bound=BaseModel)


def one_line(source: str, exc: ValidationError, root: object, skip: int = 0) -> SwiftfleetError:
    """First error only: the user fixes one thing at a time, and the line stays readable.

    `root` is the type that was validated: an unknown key is named with the closest known key at its place.
    `skip` drops leading location parts that only name a union member or a wrapper key (e.g. `job`).
    """
    errors = exc.errors()
    # A misspelt key also makes its right name "missing": the unknown key is the one to report.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = err["loc"]
    where = ".".join(str(p) for p in loc[skip:])
    msg = err["msg"].removeprefix("Value error, ")
    explained: tuple[Any, ...] = ()
    if err["type"] == "extra_forbidden":
        where = where or str(loc[-1])  # an unknown key always names itself, even at a skipped level
        known = _known_keys(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if close:
            msg = f"unknown key (did you mean {close[0]!r}?)"
            explained = (*loc[:-1], close[0])
        else:
            msg = f"unknown key (known here: {', '.join(known)})"
    # For an unknown union tag, pydantic's own wording names neither the field nor the value well.
    if err["type"] == "union_tag_invalid":
        ctx = err.get("ctx", {})
        where = str(ctx.get("discriminator", "")).strip("'")
        msg = f"{ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}"
    more = sum(1 for e in errors if e is not err and not _is_missing(e, explained))
    suffix = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    return SwiftfleetError(f"{source}: {where or 'file'}: {msg}{suffix}")


def _is_missing(err: ErrorDetails, loc: tuple[Any, ...]) -> bool:
    return err["type"] == "missing" and err["loc"] == loc


def _known_keys(root: object, loc: tuple[Any, ...]) -> list[str]:
    """The keys the mapping at `loc` may hold, found by following `loc` through the validated type."""
    tp = _unwrap(root)
    for part in loc:
        tp = _step(tp, part)
    fields = tp.model_fields if isinstance(tp, type) and issubclass(tp, BaseModel) else {}
    return [f.alias or name for name, f in fields.items()]


def _unwrap(tp: Any) -> Any:
    """Through Annotated, `X | None` and RootModel, which add no location part of their own."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType) and len(args := _members(tp)) == 1:
            tp = args[0]
        elif isinstance(tp, type) and issubclass(tp, RootModel):
            tp = tp.model_fields["root"].annotation
        else:
            return tp


def _members(tp: Any) -> list[Any]:
    return [a for a in get_args(tp) if a is not type(None)]


def _step(tp: Any, part: Any) -> Any:
    """The type one location part down: a field, a list item, a dict value, or a union member picked by its tag
    (the value of a Literal field, as for `provider`) or its class name."""
    origin = get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return _unwrap(field.annotation) if field else None
    if origin in (Union, types.UnionType):
        for member in map(_unwrap, _members(tp)):
            if isinstance(member, type) and issubclass(member, BaseModel):
                tags = [
                    v
                    for f in member.model_fields.values()
                    if get_origin(f.annotation) is Literal
                    for v in get_args(f.annotation)
                ]
                if part == member.__name__ or part in tags:
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


def read_yaml(path: Path, what: str) -> object:
    import yaml

    try:
        text = path.expanduser().read_text()
    except OSError as exc:
        raise SwiftfleetError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SwiftfleetError(f"{what} {path}: not valid YAML ({exc})".replace("\n", " ")) from None
