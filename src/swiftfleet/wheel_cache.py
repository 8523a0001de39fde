"""Compiled packages built once per stack: the cache key of a build, the controller's cache entries, and which
node builds what (the wheel_cache role carries it out; roles/wheel_cache/README.md).

A package that compiles at install time (flash-attn, transformer_engine, apex, any sdist with a C extension) is
built as a wheel on one node, kept on the controller under <cache dir>/<key>/ and installed from that file on
every other node and on every later cluster with the same key. The key names everything the binary depends on:
the package and its version (or commit), torch's version with its build (2.13.0+cu130, 2.13.0+cpu), the CUDA
release torch was built for, the Python ABI, and the platform (machine and C library: a wheel built against a
newer glibc does not load on an older one). Build options (apex's --cuda_ext) add a digest of themselves.

An entry is <key>/<wheel file> plus <key>/entry.json, written last (each file by an atomic rename), which
records the wheel's sha256 from the node that built it. An entry without entry.json is an interrupted store, and
one whose wheel does not match the recorded sha256 is corrupt: both count as missing, so the next run builds again
and replaces them instead of installing a broken wheel.
"""

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from swiftfleet.errors import SwiftfleetError

ENTRY_FILE = "entry.json"
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+!-]*$")  # an exact release (PEP 440) or a commit
_PINNED = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.-]*)\s*==\s*([^\s,;]+)\s*$")
_TAG = re.compile(r"^[A-Za-z0-9_.+-]+$")  # what may go into a directory name


class WheelCacheError(SwiftfleetError):
    """A build request that cannot name one exact build, or a node that reported no usable stack."""


class NodeStack(BaseModel):
    """What a node reports about the environment a wheel is built for (the role's probe)."""

    model_config = ConfigDict(extra="forbid")
    torch: str  # torch.__version__ with its local build tag; "none" without torch
    cuda: str  # torch.version.cuda; "none" for a CPU build or without torch
    python: str  # the interpreter's ABI tag, cp311
    platform: str  # sysconfig.get_platform(), linux-x86_64
    libc: str  # glibc2.36

    @field_validator("torch", "cuda", "python", "platform", "libc")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not _TAG.match(value):
            raise ValueError(f"{value!r} is not a plain tag")
        return value


class Build(BaseModel):
    """One package to build once: `name==version` from the index, or a source (a checkout on the node, for
    apex) with the version that pins it (the commit)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    version: str
    source: str = ""  # what pip builds; "" = name==version from the index, built from its sdist
    build_args: list[str] = Field(default_factory=list)  # extra `pip wheel` arguments (--config-settings ...)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        name = canonicalize_name(value)
        if not _TAG.match(name):
            raise ValueError(f"{value!r} is not a package name")
        return name

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _VERSION.match(value):
            raise ValueError(f"{value!r} is not an exact version or commit")
        return value


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def parse_build(entry: str | Mapping[str, Any]) -> Build:
    """`name==version`, or a mapping with name, version and optionally source and build_args."""
    if isinstance(entry, str):
        pinned = _PINNED.match(entry)
        if not pinned:
            raise WheelCacheError(
                f"wheel cache: {entry!r} is not pinned as name==version (a cached build must name one release)"
            )
        entry = {"name": pinned[1], "version": pinned[2]}
    try:
        return Build.model_validate(dict(entry))
    except ValidationError as exc:
        raise WheelCacheError(f"wheel cache: bad build {dict(entry)!r}: {_problems(exc)}") from None


def key(build: Build, stack: NodeStack) -> str:
    """The cache key: one directory name for one build on one stack."""
    parts = [
        build.name,
        build.version,
        f"torch{stack.torch}",
        f"cuda{stack.cuda}",
        stack.python,
        stack.platform,
        stack.libc,
    ]
    if build.build_args:
        parts.append("args" + hashlib.sha256("\0".join(build.build_args).encode()).hexdigest()[:12])
    return "-".join(parts)


def plan(builds: Iterable[str | Mapping[str, Any]], stack: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each build with its key and the pip arguments that build it on this node's stack."""
    try:
        node = NodeStack.model_validate(dict(stack))
    except ValidationError as exc:
        raise WheelCacheError(f"wheel cache: the node reported no usable stack: {_problems(exc)}") from None
    items = []
    for build in map(parse_build, builds):
        items.append(
            {
                **build.model_dump(),
                "key": key(build, node),
                "stack": node.model_dump(),
                # --no-binary: never a prebuilt wheel from the index, the point is a build for this stack.
                "pip_args": [
                    "--no-deps",
                    "--no-build-isolation",
                    "--no-binary",
                    build.name,
                    *build.build_args,
                    build.source or f"{build.name}=={build.version}",
                ],
            }
        )
    return items


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def lookup(cache_dir: str | Path, cache_key: str) -> dict[str, Any]:
    """The entry of cache_key: state hit (with the wheel's path and sha256), or missing, partial or corrupt (with
    why): only a hit may be installed."""
    root = Path(cache_dir).expanduser() / cache_key
    entry_file = root / ENTRY_FILE
    if not entry_file.is_file():
        if root.is_dir() and any(root.iterdir()):
            return {"state": "partial", "why": f"{root} has no {ENTRY_FILE} (an interrupted store)"}
        return {"state": "missing", "why": f"no {root}"}
    try:
        entry = json.loads(entry_file.read_text())
        wheel = root / Path(entry["wheel"]).name
        recorded = str(entry["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"state": "corrupt", "why": f"{entry_file} is unreadable ({exc})"}
    if not wheel.is_file():
        return {"state": "corrupt", "why": f"{wheel} is missing"}
    actual = _sha256(wheel)
    if actual != recorded:
        return {"state": "corrupt", "why": f"{wheel} has sha256 {actual}, {ENTRY_FILE} records {recorded}"}
    return {"state": "hit", "wheel": str(wheel), "sha256": actual, "built_on": entry.get("built_on", "")}


def builds_for(host: str, plans: Iterable[tuple[str, Iterable[Mapping[str, Any]]]]) -> list[dict[str, Any]]:
    """What `host` builds: each key that is not a cache hit is built by the first host (play order) that needs it,
    so one node per stack builds and the others wait for its wheel."""
    builder: dict[str, str] = {}
    mine: list[dict[str, Any]] = []
    for name, items in plans:
        for item in items:
            if item["cache"]["state"] == "hit":
                continue
            builder.setdefault(item["key"], name)
            if name == host and builder[item["key"]] == host:
                mine.append(dict(item))
    return mine


def entry(item: Mapping[str, Any], wheel: str, sha256: str, host: str) -> dict[str, Any]:
    """What entry.json records of a build: the key's parts and the wheel's checksum from the building node."""
    return {
        "key": item["key"],
        "name": item["name"],
        "version": item["version"],
        "build_args": list(item["build_args"]),
        "stack": dict(item["stack"]),
        "wheel": Path(wheel).name,
        "sha256": sha256,
        "built_on": host,
    }
