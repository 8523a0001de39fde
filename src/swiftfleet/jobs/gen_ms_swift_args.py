"""Print the argument names of an installed ms-swift, per command, as the JSON kept in jobs/data/.

Run it with the Python that has ms-swift (stdlib only, so it needs no swiftfleet there):
    /path/to/swift-venv/bin/python src/swiftfleet/jobs/gen_ms_swift_args.py src/swiftfleet/jobs/data/ms_swift_args.json

The swift commands' dataclasses are imported and read with dataclasses.fields(). Megatron's cannot be imported
without transformer_engine (mcore_bridge imports it at import time, and it only builds against CUDA), so their
class bodies are read from source with `ast`, following the bases. For each field it records the type ms-swift's
parser (transformers' HfArgumentParser) really parses, its choices and its default when that is plain JSON.
`--self-check` compares parsed() with the parser ms-swift builds for the swift classes, and runs the source reader
on them too against dataclasses.fields() (types, choices and defaults): that is what keeps the reader honest.
"""

import ast
import dataclasses
import enum
import importlib
import importlib.util
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, NamedTuple

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
    "swift merge-lora": ("swift.arguments", "ExportArguments"),  # swift/cli/merge_lora.py: export's own class
    "swift sample": ("swift.arguments", "SamplingArguments"),
    "swift app": ("swift.arguments", "AppArguments"),
    "swift web-ui": ("swift.arguments", "WebUIArguments"),
}
MEGATRON_COMMANDS = {
    "megatron sft": "MegatronSftArguments",
    "megatron pt": "MegatronPretrainArguments",
    "megatron rlhf": "MegatronRLHFArguments",
    "megatron export": "MegatronExportArguments",
}


class Field(NamedTuple):
    """What ms-swift's parser makes of one field: the type it parses (TYPES, `?` when None is allowed, `list[X]`
    for nargs="+"), its Literal/Enum choices, and its default when that is a plain JSON value (else MISSING)."""

    type: str
    choices: list[Any] | None
    default: Any


Spec = dict[str, Field]
TYPES = ("int", "float", "bool", "str", "dict", "any")
MISSING: Any = (
    dataclasses.MISSING
)  # a default that is not plain JSON, or that the source reader cannot evaluate
_NONE = type(None)
_SCALARS = {int: "int", float: "float", bool: "bool", str: "str", dict: "dict"}


def parsed(tp: Any) -> tuple[str, list[Any] | None]:
    """(type, choices) as HfArgumentParser._parse_dataclass_field (transformers 5.19 hf_argparser.py:168-233)
    resolves an annotation, after ms-swift's own patch (swift/utils/utils.py:158-164: Union[str, dict, None] is
    parsed as Union[dict, str, None], that is as a str)."""
    if tp == str | dict | None:
        tp = dict | str | None
    optional = ""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        optional = "?" if _NONE in args else ""
        if _NONE not in args and str not in args:  # the parser refuses such a Union
            return "any", None
        if _NONE not in args:  # Union[X, str] or Union[str, X]: the one that is not the second str
            tp = args[0] if args[1] is str else args[1]
        elif bool not in args:  # Optional[...]: the second member unless it is None
            try:
                tp = args[0] if isinstance(None, args[1]) else args[1]
            except (
                TypeError
            ):  # args[1] is a generic: HfArgumentParser itself raises here, so nothing is known
                return "any" + optional, None
        elif set(args) == {bool, _NONE}:
            tp = bool
        else:  # a Union with bool, None and more: the parser's type is the Union itself, which cannot parse
            return "any" + optional, None
    origin = typing.get_origin(tp) or tp
    if origin is typing.Literal:
        return "any" + optional, [v for v in typing.get_args(tp) if v is not None]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "any" + optional, [m.value for m in tp]
    if isinstance(origin, type) and issubclass(origin, list):
        item = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        return f"list[{_SCALARS.get(item, 'any')}]" + optional, None
    return _SCALARS.get(tp, "any") + optional, None  # dict[str, X] is "any": argparse's dict[...]("{}") fails


def _plain(value: Any) -> Any:
    """`value` when JSON keeps it as it is (the data file is compared with a fresh run), else MISSING."""
    try:
        return value if json.loads(json.dumps(value)) == value else MISSING
    except (TypeError, ValueError):
        return MISSING


def from_dataclass(cls: type) -> Spec:
    hints = typing.get_type_hints(cls)
    out: Spec = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = _plain(f.default_factory())
        else:
            default = MISSING
        tp, choices = parsed(hints[f.name])
        if "choices" in f.metadata:  # argparse choices given beside the type (transformers' log_level)
            choices = list(f.metadata["choices"])
        out[f.name] = Field(tp, choices, default)
    return out


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
                tp, choices = parsed(_annotation(stmt.annotation))
                metadata = _literal(_field_keyword(stmt.value, "metadata"))
                if isinstance(metadata, dict) and "choices" in metadata:
                    choices = metadata["choices"]
                out[stmt.target.id] = Field(tp, choices, _source_default(stmt.value))
        return out


# The names annotations in ms-swift's argument classes use; any other name (torch.dtype, an Enum) is not known.
_NAMES: dict[str, Any] = {
    **{t.__name__: t for t in (int, float, bool, str, dict, list)},
    "None": None,
    "Any": Any,
    "Optional": typing.Optional,
    "Union": typing.Union,
    "List": typing.List,  # noqa: UP006 (the names ms-swift writes)
    "Dict": typing.Dict,  # noqa: UP006
    "Literal": typing.Literal,
}


def _annotation(node: ast.expr) -> Any:
    """The typing object a source annotation stands for, so parsed() reads source and classes alike."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return _NAMES.get(node.id, object)  # object: parsed() says "any"
    if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "typing":
        return _NAMES.get(node.attr, object)
    if isinstance(node, ast.Tuple):
        return tuple(_annotation(e) for e in node.elts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return typing.Union[_annotation(node.left), _annotation(node.right)]  # noqa: UP007 (a value, not an annotation)
    if isinstance(node, ast.Subscript):
        outer = _annotation(node.value)
        if outer is not object:
            return outer[_annotation(node.slice)]
    return object


def _literal(node: ast.expr | None) -> Any:
    try:
        return MISSING if node is None else _plain(ast.literal_eval(node))
    except ValueError:
        return MISSING


def _field_keyword(node: ast.expr | None, name: str) -> ast.expr | None:
    """Keyword `name` of `field(...)`, if `node` is such a call and has it."""
    if isinstance(node, ast.Call) and ast.unparse(node.func) in ("field", "dataclasses.field"):
        return next((kw.value for kw in node.keywords if kw.arg == name), None)
    return None


def _source_default(node: ast.expr | None) -> Any:
    """The literal default of `x: T = 1` or `x: T = field(default=1 | default_factory=list | lambda: [1])`."""
    default, factory = _field_keyword(node, "default"), _field_keyword(node, "default_factory")
    if isinstance(factory, ast.Lambda):
        return _literal(factory.body)
    if factory is not None:
        return {"list": [], "dict": {}}.get(ast.unparse(factory), MISSING)
    return _literal(default if default is not None else node)  # field() without a default: not a literal


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
                "choices": {k: f.choices for k, f in sorted(spec.items()) if f.choices},
                "types": {k: f.type for k, f in sorted(spec.items())},
                "defaults": {k: f.default for k, f in sorted(spec.items()) if f.default is not MISSING},
            }
            for command, spec in commands.items()
        },
    }


def _parser_types(cls: type) -> dict[str, str]:
    """The type of each argument of the argparse parser ms-swift really builds (swift.utils.parse_args), without
    the `?` (argparse does not say whether None is allowed): the ground truth parsed() mirrors."""
    from swift.utils.utils import _patch_get_type_hints
    from transformers.hf_argparser import HfArgumentParser, string_to_bool

    with _patch_get_type_hints():
        parser = HfArgumentParser([cls])
    out: dict[str, str] = {}
    for action in parser._actions:
        # Literal and Enum choices parse with a function of their own: "any", as parsed() says
        name = "bool" if action.type is string_to_bool else _SCALARS.get(action.type, "any")
        out.setdefault(action.dest, f"list[{name}]" if action.nargs == "+" else name)  # --no_X comes second
    return out


def self_check() -> list[str]:
    """Every disagreement between parsed() and the parser ms-swift builds, and between the source reader (used
    for megatron) and dataclasses.fields() on the swift classes: type, choices and default, field by field. A
    default the reader cannot evaluate (an expression, a call) counts as a disagreement too, so the data never
    claims more than the reader knows; the list of such fields is what to look at if this fails."""
    reader = SourceReader("swift.arguments")
    for sub in ("base_args",):  # BaseArguments and its mixins live in a subpackage
        reader.classes.update(SourceReader(f"swift.arguments.{sub}").classes)
    problems = []
    for command, (module, cls_name) in SWIFT_COMMANDS.items():
        cls = getattr(importlib.import_module(module), cls_name)
        real = from_dataclass(cls)
        argparse_types = _parser_types(cls)
        wrong = sorted(k for k, f in real.items() if f.type.rstrip("?") != argparse_types.get(k))
        if wrong:
            problems.append(f"{command}: parsed() differs from HfArgumentParser for {wrong[:5]}")
        read = reader.fields(cls_name)
        diff = sorted(k for k in real.keys() | read.keys() if real.get(k) != read.get(k))
        if diff:
            problems.append(
                f"{command}: {len(diff)} field(s) differ, e.g. {[(k, real.get(k), read.get(k)) for k in diff[:3]]}"
            )
    return problems


def main() -> None:
    """`gen_ms_swift_args.py OUT.json` or `--self-check`; ms-swift logs to stdout, so the JSON goes to a file."""
    if sys.argv[1:] == ["--self-check"]:
        problems = self_check()
        print(
            "\n".join(problems)
            or "parsed() agrees with HfArgumentParser, the source reader with dataclasses.fields()"
        )
        sys.exit(1 if problems else 0)
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} OUT.json | --self-check")
    Path(sys.argv[1]).write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
