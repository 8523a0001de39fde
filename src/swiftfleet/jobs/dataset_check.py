"""Local dataset files checked on the controller, before they are copied to every node.

A broken line otherwise fails inside ms-swift on each node, as a pyarrow "position 201" error. The rules follow
ms-swift 4.6.0 (swift/dataset/loader.py `_load_dataset_path`), which hands a local file to the `datasets`
library's reader picked by its extension, then to `AutoPreprocessor` (swift/dataset/preprocessor/core.py):

- `.jsonl` and `.json` go to the same JSON reader: a file whose very first byte is `[` is one list of objects
  (or of strings, which become `text`); anything else is JSON lines, one object per non-blank line (a UTF-8 BOM
  is fine there). A list after a BOM or a blank fails in that reader, so it is refused here too.
- `.csv`: a header row names the fields; a row with more fields than the header fails in pandas.
- Any other file (parquet, txt, arrow, ...) and a directory are passed on unchecked: ms-swift reads many formats,
  and these are not ones a hand edit breaks.

The file is read as a stream (one line, or one list element, at a time) and checked whole, also when the job
samples it with `#N`. Every row is checked, for JSON and for the fields its kind needs; the first problem stops it.
"""

import codecs
import csv
import io
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

# AutoPreprocessor._get_preprocessor: any of these columns (exact names) makes it a messages file.
MESSAGE_KEYS = ("messages", "conversation", "conversations")
# ResponsePreprocessor.__init__ maps these (case-insensitively, RowPreprocessor.safe_rename_columns) to the
# query and the response; AlpacaPreprocessor reads instruction/input/output, which are among them.
QUERY_KEYS = ("query", "prompt", "input", "instruction", "question", "problem")
RESPONSE_KEYS = (
    "response", "answer", "output", "targets", "target", "answer_key", "answers", "solution",
    "text", "completion", "content",
)  # fmt: skip
# swift/template/template_inputs.py TemplateInputs.from_dict: the rejected side of a pair; Template._rlhf_encode
# raises "inputs.rejected is None" without it. No `chosen`/`rejected` mapping applies to local files.
REJECTED_KEYS = ("rejected_response", "rejected_messages")
# swift/pipelines/train/rlhf.py: these rlhf types encode pairs (template mode `rlhf`) ...
PAIRED = frozenset({"dpo", "orpo", "simpo", "cpo", "rm"})
# ... grpo, ppo and gkd generate the response themselves (modes train/transformers): a prompt is enough.
PROMPTED = frozenset({"grpo", "ppo", "gkd"})
CHUNK = 1 << 20


class _Bad(Exception):
    def __init__(self, line: int, msg: str) -> None:
        super().__init__(msg)
        self.line = line
        self.msg = msg


@dataclass(frozen=True)
class _Need:
    """What every row of one job kind must hold."""

    what: str  # names the kind in messages: "dpo rows"
    keys: tuple[str, ...]  # in a file without messages, at least one of these (case-insensitive)
    keys_are: str  # what those keys are: "response field"
    rejected: bool = False
    label: bool = False


def _need(command: str, rlhf_type: str | None) -> _Need | None:
    kind = rlhf_type if command.endswith("rlhf") else command.split()[-1]
    what = f"{kind} rows"
    if kind in ("sft", "pt") or kind in PAIRED or kind == "kto":
        return _Need(what, RESPONSE_KEYS, "response field", rejected=kind in PAIRED, label=kind == "kto")
    if kind in PROMPTED:
        return _Need(what, QUERY_KEYS, "prompt field")
    # swift export: awq/gptq calibration rows (swift/pipelines/export/quant.py), encoded in template mode `train`.
    if kind == "export":
        return _Need(what, QUERY_KEYS + RESPONSE_KEYS, "prompt or response field")
    return None


def check_dataset(path: Path, command: str, rlhf_type: str | None) -> None:
    """Raise ValueError with one line, `PATH:LINE: problem`, for the first bad row of a local dataset file.

    `command` is the job's kind (`swift sft`, `megatron rlhf`, ...) and `rlhf_type` its rlhf type; they decide
    which fields a row needs. Directories and formats other than .jsonl/.json/.csv are not checked.
    """
    if path.is_dir() or path.suffix not in (".jsonl", ".json", ".csv"):
        return
    # A CSV header stands for every row: its values are not known, only its fields.
    rows = _Rows(_need(command, rlhf_type), values=path.suffix != ".csv")
    try:
        with path.open("rb") as f:
            items = _csv_rows(f) if path.suffix == ".csv" else _json_rows(f)
            for line, row in items:
                rows.check(line, row)
    except _Bad as bad:
        raise ValueError(f"{path}:{bad.line}: {bad.msg}") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror})") from None
    if not rows.count:
        raise ValueError(f"{path}: no rows in it")


class _Rows:
    """The field checks, row by row. ms-swift picks one preprocessor per file from the union of its fields, so a
    file mixing `messages` rows and query/response rows loses the rows of the other kind."""

    def __init__(self, need: _Need | None, values: bool) -> None:
        self.need = need
        self.values = values
        self.count = 0
        self.first: tuple[int, str | None] = (
            0,
            None,
        )  # the first row's line and messages key: the file's format

    def check(self, line: int, row: Any) -> None:
        if not isinstance(row, dict):
            raise _Bad(line, f"{_json_type(row)}, not a JSON object")
        self.count += 1
        if self.need is None:
            return
        key = next((k for k in MESSAGE_KEYS if row.get(k) is not None), None)
        if self.count == 1:
            self.first = (line, key)
        elif (key is None) != (self.first[1] is None):
            first_line, first_key = self.first
            raise _Bad(
                line,
                f"{'no `messages`' if key is None else f'`{key}` here'} but line {first_line} has "
                f"{f'`{first_key}`' if first_key else 'none'}: ms-swift reads one format per file "
                "(messages, or query/response fields)",
            )
        if key is not None and self.values:
            value = row[key]
            # A string is allowed: MessagesPreprocessor.repair_messages parses it.
            if not isinstance(value, str) and not (
                isinstance(value, list) and value and all(isinstance(m, dict) for m in value)
            ):
                raise _Bad(line, f"`{key}` must be a non-empty list of message objects")
        elif key is None and not any(
            str(k).lower() in self.need.keys and v is not None for k, v in row.items()
        ):
            raise _Bad(
                line,
                f"no {self.need.keys_are} ({self.need.what} need `messages` or one of "
                f"{', '.join(f'`{k}`' for k in self.need.keys)})",
            )
        if self.need.rejected and all(row.get(k) is None for k in REJECTED_KEYS):
            raise _Bad(
                line,
                f"no `rejected_response` or `rejected_messages` ({self.need.what} need the conversation "
                "and the rejected answer)",
            )
        # swift/pipelines/train/kto.py prepare_kto_dataset sums `label` over the dataset: desirable or not.
        if self.need.label:
            label = row.get("label")
            if label is None:
                raise _Bad(line, f"no `label` ({self.need.what} need label: true or false)")
            if self.values and label not in (True, False):  # 1 and 0 compare equal to them
                raise _Bad(line, f"`label` must be true or false, not {json.dumps(label)}")


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number"}
    return names.get(type(value), "a number" if isinstance(value, float) else "null")


def _refuse_constant(name: str) -> object:
    # Python's json reads NaN and Infinity; the JSON reader ms-swift uses (pyarrow) does not.
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _json_rows(f: IO[bytes]) -> Iterator[tuple[int, Any]]:
    head = f.read(3)
    f.seek(0)
    if head.startswith(b"["):
        yield from _json_list(f)
        return
    first = True
    for line, raw in enumerate(f, 1):
        try:
            text = raw.removeprefix(codecs.BOM_UTF8 if line == 1 else b"").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Bad(line, f"not UTF-8 text (byte {exc.start + 1} of the line)") from None
        if not text.strip():
            continue
        if first and text.lstrip().startswith("["):
            raise _Bad(
                line,
                "a JSON list must start at the file's first byte (no BOM or blank before `[`): "
                "the JSON reader takes anything else for JSON lines",
            )
        first = False
        try:
            row = _DECODER.decode(text)
        except json.JSONDecodeError as exc:
            raise _Bad(line, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        except ValueError as exc:
            raise _Bad(line, f"not valid JSON ({exc})") from None
        yield line, row


def _json_list(f: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """The elements of one JSON list, decoded one at a time from a sliding buffer, with the line each starts on.
    Elements that are strings become `text` rows, as the JSON reader makes them."""
    reader = codecs.getreader("utf-8")(f)
    buf, pos, base = "", 0, 0  # base: the file offset (in characters) of buf[0]
    line, line_start = 1, 0  # line_start: the file offset of the current line
    eof = False
    strings: bool | None = None

    def fill(more: int = 0) -> None:
        nonlocal buf, pos, base, eof
        try:
            chunk = reader.read(max(CHUNK, more))
        except UnicodeDecodeError:
            raise _Bad(line, "not UTF-8 text") from None
        base += pos
        buf, pos, eof = buf[pos:] + chunk, 0, not chunk

    def advance(to: int) -> None:
        nonlocal pos, line, line_start
        newlines = buf.count("\n", pos, to)
        if newlines:
            line += newlines
            line_start = base + buf.rfind("\n", pos, to) + 1
        pos = to

    def next_char() -> str:
        while True:
            while pos < len(buf) and buf[pos] in " \t\r\n":
                advance(pos + 1)
            if pos < len(buf) or eof:
                return buf[pos] if pos < len(buf) else ""
            fill()

    def bad_json(msg: str, at: int) -> _Bad:
        advance(at)
        return _Bad(line, f"not valid JSON ({msg} at column {base + at - line_start + 1})")

    fill()
    pos = 1  # past the `[`
    expect_value, first = True, True
    while True:
        char = next_char()
        if not expect_value:
            if char == "]":
                advance(pos + 1)
                if next_char():
                    raise bad_json("Extra data", pos)
                return
            if char != ",":
                raise bad_json("Expecting ',' delimiter", pos)
            advance(pos + 1)
            expect_value = True
            continue
        if char == "]" and first:
            advance(pos + 1)
            return
        try:
            value, end = _DECODER.raw_decode(buf, pos)
        except json.JSONDecodeError as exc:
            # An element cut by the buffer's end: read on (an unterminated string is reported where it starts),
            # doubling the buffer so that one huge element is decoded a few times, not once per chunk.
            if not eof and (exc.pos >= len(buf) - 8 or exc.msg.startswith("Unterminated string")):
                fill(len(buf))
                continue
            raise bad_json(exc.msg, exc.pos) from None
        except ValueError as exc:
            raise _Bad(line, f"not valid JSON ({exc})") from None
        if end == len(buf) and not eof:  # a number may go on in the next chunk
            fill(len(buf))
            continue
        if strings is None:
            strings = isinstance(value, str)
        if strings:
            if not isinstance(value, str):
                raise _Bad(line, f"{_json_type(value)} in a list of strings")
            value = {"text": value}
        yield line, value
        advance(end)
        expect_value, first = False, False


@contextmanager
def _csv_field_limit() -> Iterator[None]:
    # pandas has no field size limit; the csv module's default (128 KiB) would refuse long texts.
    old = csv.field_size_limit(sys.maxsize)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _csv_rows(f: IO[bytes]) -> Iterator[tuple[int, Any]]:
    """The header as the one row whose fields are checked, then each row's field count."""
    text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
    reader = csv.reader(text)
    header: list[str] | None = None
    data_rows = 0
    with _csv_field_limit():
        try:
            for row in reader:
                if not row:
                    continue
                if header is None:
                    header = row
                    yield reader.line_num, dict.fromkeys(header, "")
                elif len(row) > len(header):
                    raise _Bad(reader.line_num, f"{len(row)} fields, the header has {len(header)}")
                else:
                    data_rows += 1
        except UnicodeDecodeError:
            raise _Bad(reader.line_num + 1, "not UTF-8 text") from None
        except csv.Error as exc:
            raise _Bad(reader.line_num, f"not valid CSV ({exc})") from None
    if header is not None and not data_rows:
        raise _Bad(reader.line_num, "no rows under the header")
