"""Print the argument names of an installed ms-swift, per command, as the JSON kept in jobs/data/.

Run it with the Python that has ms-swift (stdlib only, so it needs no swiftfleet there):
    /path/to/swift-venv/bin/python src/swiftfleet/jobs/gen_ms_swift_args.py src/swiftfleet/jobs/data/ms_swift_args.json

The swift commands' dataclasses are imported and read with dataclasses.fields(). Megatron's cannot be imported
without transformer_engine (mcore_bridge imports it at import time, and it only builds against CUDA), so their
class bodies are read from source with `ast`, following the bases; `--self-check` runs that reader on the swift
classes too and fails if it disagrees with dataclasses.fields(), which is what keeps the source reader honest.
"""

import ast
import dataclasses
import importlib
import importlib.util
import json
import sys
import typing
from pathlib import Path
from typing import Any

# command -> (module, class); the classes each command's pipeline parses (its `args_class`).
SWIFT_COMMANDS = {
    "swift sft": ("swift.arguments", "SftArguments"),
    "swift pt": ("swift.arguments", "PretrainArguments"),
    "swift rlhf": ("swift.arguments", "RLHFArguments"),
    "swift infer": ("swift.arguments", "InferArguments"),
    "swift deploy": ("swift.arguments", "DeployArguments"),
    "swift rollout": ("swift.arguments", "RolloutArguments"),
    "swift eval": ("swift.arguments", "EvalArguments"),
    "swift export": ("swift.arguments", "ExportArguments"),
}
MEGATRON_COMMANDS = {
    "megatron sft": "MegatronSftArguments",
    "megatron pt": "MegatronPretrainArguments",
    "megatron rlhf": "MegatronRLHFArguments",
    "megatron export": "MegatronExportArguments",
}

Spec = dict[str, list[Any] | None]  # field name -> its Literal choices (strings and numbers), or None


def _choices(tp: Any) -> list[Any] | None:
    """The allowed values of a Literal[...] or Optional[Literal[...]] annotation (None dropped), else None."""
    if typing.get_origin(tp) is typing.Literal:
        return [v for v in typing.get_args(tp) if v is not None]
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1:
            return _choices(inner[0])
    return None


def from_dataclass(cls: type) -> Spec:
    return {f.name: _choices(f.type) for f in dataclasses.fields(cls)}


class SourceReader:
    """Dataclass fields of classes read from source: own annotated names plus those of the bases."""

    def __init__(self, package: str) -> None:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, package
        self.package = package
        self.classes: dict[str, tuple[ast.ClassDef, dict[str, str]]] = {}
        for path in sorted(Path(spec.submodule_search_locations[0]).glob("*.py")):
            tree = ast.parse(path.read_text())
            imports = {
                alias.asname or alias.name: node.module or ""
                for node in tree.body
                if isinstance(node, ast.ImportFrom) and node.level == 0
                for alias in node.names
            }
            for node in tree.body:
                if isinstance(node, ast.ClassDef):
                    self.classes[node.name] = (node, imports)

    def fields(self, name: str) -> Spec:
        node, imports = self.classes[name]
        out: Spec = {}
        for base in reversed(node.bases):  # later bases first, so earlier ones win, as in the MRO
            base_name = ast.unparse(base)
            if base_name in self.classes:
                out.update(self.fields(base_name))
            else:  # a class from an importable package (swift.arguments): ask it directly
                out.update(from_dataclass(getattr(importlib.import_module(imports[base_name]), base_name)))
        for stmt in node.body:
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                if "ClassVar" in ast.unparse(stmt.annotation):
                    continue
                out[stmt.target.id] = _literal_choices(stmt.annotation)
        return out


def _literal_choices(annotation: ast.expr) -> list[Any] | None:
    """Source twin of _choices(): Literal[...] or Optional[Literal[...]] written in the class body."""
    text = ast.unparse(annotation)
    if text.startswith("Optional[") and isinstance(annotation, ast.Subscript):
        return _literal_choices(annotation.slice)
    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) in (
        "Literal",
        "typing.Literal",
    ):
        elts = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
        return [v for v in (ast.literal_eval(e) for e in elts) if v is not None]
    return None


def generate() -> dict[str, Any]:
    from importlib.metadata import version

    commands: dict[str, Spec] = {}
    for command, (module, cls) in SWIFT_COMMANDS.items():
        commands[command] = from_dataclass(getattr(importlib.import_module(module), cls))
    reader = SourceReader("swift.megatron.arguments")
    for command, cls in MEGATRON_COMMANDS.items():
        commands[command] = reader.fields(cls)
    return {
        "ms_swift": version("ms-swift"),
        "commands": {
            command: {
                "args": sorted(spec),
                "choices": {k: v for k, v in sorted(spec.items()) if v},
            }
            for command, spec in commands.items()
        },
    }


def self_check() -> list[str]:
    """Read the swift classes from source the way megatron's are read; list every disagreement."""
    reader = SourceReader("swift.arguments")
    for sub in ("base_args",):  # BaseArguments and its mixins live in a subpackage
        reader.classes.update(SourceReader(f"swift.arguments.{sub}").classes)
    problems = []
    for command, (module, cls) in SWIFT_COMMANDS.items():
        real = from_dataclass(getattr(importlib.import_module(module), cls))
        read = reader.fields(cls)
        diff = sorted(k for k in real.keys() | read.keys() if real.get(k, "absent") != read.get(k, "absent"))
        if diff:
            problems.append(f"{command}: {len(diff)} field(s) differ, e.g. {diff[:5]}")
    return problems


def main() -> None:
    """`gen_ms_swift_args.py OUT.json` or `--self-check`; ms-swift logs to stdout, so the JSON goes to a file."""
    if sys.argv[1:] == ["--self-check"]:
        problems = self_check()
        print("\n".join(problems) or "source reader agrees with dataclasses.fields()")
        sys.exit(1 if problems else 0)
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT.json | --self-check")
    Path(sys.argv[1]).write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
