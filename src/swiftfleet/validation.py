"""Turn pydantic's ValidationError into the one clear line the CLI prints."""

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from swiftfleet.errors import SwiftfleetError

M = TypeVar("M", bound=BaseModel)
U = TypeVar("U")


def one_line(source: str, exc: ValidationError, skip: int = 0) -> SwiftfleetError:
    """First error only: the user fixes one thing at a time, and the line stays readable.

    `skip` drops leading location parts that only name a union member (e.g. the provider tag).
    """
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"][skip:])
    msg = err["msg"].removeprefix("Value error, ")
    # For an unknown union tag, pydantic's own wording names neither the field nor the value well.
    if err["type"] == "union_tag_invalid":
        ctx = err.get("ctx", {})
        where = str(ctx.get("discriminator", "")).strip("'")
        msg = f"{ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
    return SwiftfleetError(f"{source}: {where or 'file'}: {msg}{suffix}")


def parse(model: type[M], data: object, source: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise one_line(source, exc) from None


def parse_union(adapter: TypeAdapter[U], data: object, source: str) -> U:
    """Like parse() for a tagged union: the tag is dropped from the reported location."""
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise one_line(source, exc, skip=1) from None


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
