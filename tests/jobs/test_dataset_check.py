"""check_dataset: the first bad row of a local dataset file as one `PATH:LINE: problem` line, before upload."""

import json
from pathlib import Path

import pytest

from swiftfleet.jobs import dataset_check
from swiftfleet.jobs.dataset_check import check_dataset

CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
PAIR = {**CHAT, "rejected_response": "go away"}
QA = {"query": "2+2?", "response": "4"}


def jsonl(*rows: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


# (case id, command, rlhf_type, file name, content)
GOOD = [
    ("sft-messages", "swift sft", None, "d.jsonl", jsonl(CHAT, CHAT)),
    ("sft-query-response", "swift sft", None, "d.jsonl", jsonl(QA)),
    (
        "sft-alpaca",
        "megatron sft",
        None,
        "d.jsonl",
        jsonl({"instruction": "add", "input": "2 2", "output": "4"}),
    ),
    ("sft-field-case", "swift sft", None, "d.jsonl", jsonl({"Query": "q", "Response": "r"})),
    ("sft-messages-as-text", "swift sft", None, "d.jsonl", jsonl({"messages": json.dumps(CHAT["messages"])})),
    (
        "sft-conversations",
        "swift sft",
        None,
        "d.jsonl",
        jsonl({"conversations": [{"from": "human", "value": "x"}]}),
    ),
    ("pt-text", "swift pt", None, "d.jsonl", jsonl({"text": "once upon a time"})),
    ("dpo-rejected-response", "swift rlhf", "dpo", "d.jsonl", jsonl(PAIR)),
    ("dpo-columns", "swift rlhf", "dpo", "d.jsonl", jsonl({**QA, "rejected_response": "5"})),
    (
        "rm-rejected-messages",
        "megatron rlhf",
        "rm",
        "d.jsonl",
        jsonl({**CHAT, "rejected_messages": CHAT["messages"]}),
    ),
    ("kto-label", "swift rlhf", "kto", "d.jsonl", jsonl({**CHAT, "label": True}, {**CHAT, "label": 0})),
    (
        "grpo-prompt-only",
        "swift rlhf",
        "grpo",
        "d.jsonl",
        jsonl({"messages": [{"role": "user", "content": "1+1"}]}),
    ),
    ("grpo-problem-solution", "swift rlhf", "grpo", "d.jsonl", jsonl({"problem": "1+1", "solution": "2"})),
    ("export-prompt", "swift export", None, "d.jsonl", jsonl({"query": "calibrate me"})),
    ("blank-lines", "swift sft", None, "d.jsonl", jsonl(QA, "", "   ", QA)),
    ("bom", "swift sft", None, "d.jsonl", "\ufeff" + jsonl(QA)),
    ("crlf", "swift sft", None, "d.jsonl", jsonl(QA).replace("\n", "\r\n")),
    ("json-lines-in-json", "swift sft", None, "d.json", jsonl(QA, QA)),
    ("json-list", "swift sft", None, "d.json", json.dumps([QA, QA, QA], indent=2)),
    ("json-list-in-jsonl", "swift sft", None, "d.jsonl", json.dumps([QA, QA])),
    ("json-list-of-strings", "swift pt", None, "d.json", json.dumps(["some text", "more"])),
    ("csv", "swift sft", None, "d.csv", 'query,response\n"a, with comma",b\n\nc,d\n'),
    ("csv-bom-kto", "swift rlhf", "kto", "d.csv", "\ufeffquery,response,label\na,b,true\n"),
    ("csv-short-row", "swift sft", None, "d.csv", "query,response\nq\n"),
    ("deploy-not-field-checked", "swift deploy", None, "d.jsonl", jsonl({"anything": 1})),
    ("parquet-not-read", "swift sft", None, "d.parquet", "PAR1 not json at all"),
    ("txt-not-read", "swift pt", None, "d.txt", "{{{"),
]


@pytest.mark.parametrize(("case", "command", "rlhf_type", "name", "text"), GOOD, ids=[c[0] for c in GOOD])
def test_good_files_pass(
    case: str, command: str, rlhf_type: str | None, name: str, text: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    path.write_text(text, newline="")
    check_dataset(path, command, rlhf_type)


# (case id, command, rlhf_type, file name, content, the expected line after "PATH:")
BAD = [
    (
        "broken-json-line-3",
        "swift sft",
        None,
        "chat.jsonl",
        jsonl(QA, QA, '{"query": "a" "response": "b"}'),
        "3: not valid JSON (Expecting ',' delimiter at column 15)",
    ),
    (
        "broken-after-blank-line",
        "swift sft",
        None,
        "chat.jsonl",
        jsonl(QA, "", '{"query": "a", }'),
        "3: not valid JSON (Expecting property name enclosed in double quotes at column 16)",
    ),
    ("truncated-last-line", "swift sft", None, "d.jsonl", jsonl(QA) + '{"query": "a', "2: not valid JSON"),
    (
        "nan",
        "swift sft",
        None,
        "d.jsonl",
        jsonl({"query": "a"}).replace("}", ', "response": NaN}'),
        "1: not valid JSON (NaN is not JSON)",
    ),
    ("non-object-row", "swift sft", None, "d.jsonl", jsonl(QA, [QA]), "2: a list, not a JSON object"),
    ("string-row", "swift sft", None, "d.jsonl", jsonl(QA, '"just text"'), "2: a string, not a JSON object"),
    ("null-row", "swift sft", None, "d.jsonl", jsonl("null"), "1: null, not a JSON object"),
    ("not-utf8", "swift sft", None, "d.jsonl", None, "2: not UTF-8 text (byte 15 of the line)"),
    ("empty-file", "swift sft", None, "d.jsonl", "\n\n", " no rows in it"),
    ("empty-list", "swift sft", None, "d.json", "[]", " no rows in it"),
    (
        "sft-no-response",
        "swift sft",
        None,
        "d.jsonl",
        jsonl(QA, {"query": "only a question"}),
        "2: no response field (sft rows need `messages` or one of `response`, `answer`",
    ),
    (
        "sft-empty-messages",
        "swift sft",
        None,
        "d.jsonl",
        jsonl({"messages": []}),
        "1: `messages` must be a non-empty list",
    ),
    (
        "sft-mixed-formats",
        "swift sft",
        None,
        "d.jsonl",
        jsonl(CHAT, CHAT, QA),
        "3: no `messages` but line 1 has `messages`: ms-swift reads one format per file",
    ),
    (
        "sft-messages-after-columns",
        "swift sft",
        None,
        "d.jsonl",
        jsonl(QA, CHAT),
        "2: `messages` here but line 1 has none",
    ),
    (
        "dpo-no-rejected",
        "swift rlhf",
        "dpo",
        "prefs.jsonl",
        jsonl(PAIR, PAIR, PAIR, PAIR, {**CHAT, "rejected": "no"}),
        "5: no `rejected_response` or `rejected_messages` (dpo rows need the conversation and the rejected answer)",
    ),
    (
        "orpo-null-rejected",
        "swift rlhf",
        "orpo",
        "d.jsonl",
        jsonl({**CHAT, "rejected_response": None}),
        "1: no `rejected_response`",
    ),
    ("megatron-rm-no-rejected", "megatron rlhf", "rm", "d.jsonl", jsonl(QA), "1: no `rejected_response`"),
    (
        "kto-no-label",
        "swift rlhf",
        "kto",
        "d.jsonl",
        jsonl(CHAT),
        "1: no `label` (kto rows need label: true or false)",
    ),
    (
        "kto-label-text",
        "swift rlhf",
        "kto",
        "d.jsonl",
        jsonl({**CHAT, "label": "yes"}),
        '1: `label` must be true or false, not "yes"',
    ),
    (
        "grpo-no-prompt",
        "swift rlhf",
        "grpo",
        "d.jsonl",
        jsonl({"solution": "2"}),
        "1: no prompt field (grpo rows need `messages` or one of `query`, `prompt`",
    ),
    (
        "json-list-broken-element",
        "swift sft",
        None,
        "d.json",
        "[\n" + json.dumps(QA) + ",\n" + json.dumps(QA) + ',\n  {"query": 1 2}\n]',
        "4: not valid JSON (Expecting ',' delimiter at column 15)",
    ),
    (
        "json-list-trailing-comma",
        "swift sft",
        None,
        "d.json",
        json.dumps([QA])[:-1] + ",]",
        "1: not valid JSON (Expecting value",
    ),
    (
        "json-list-extra-data",
        "swift sft",
        None,
        "d.json",
        json.dumps([QA]) + "\n[]",
        "2: not valid JSON (Extra data at column 1)",
    ),
    (
        "json-list-unclosed",
        "swift sft",
        None,
        "d.json",
        json.dumps([QA])[:-1],
        "1: not valid JSON (Expecting ',' delimiter",
    ),
    (
        "json-list-non-object",
        "swift sft",
        None,
        "d.json",
        json.dumps([QA, 7]),
        "1: a number, not a JSON object",
    ),
    (
        "json-list-mixed-strings",
        "swift pt",
        None,
        "d.json",
        json.dumps(["a", QA]),
        "1: an object in a list of strings",
    ),
    (
        "json-list-after-bom",
        "swift sft",
        None,
        "d.json",
        "\ufeff" + json.dumps([QA]),
        "1: a JSON list must start at the file's first byte",
    ),
    (
        "json-list-after-blank",
        "swift sft",
        None,
        "d.json",
        "\n" + json.dumps([QA]),
        "2: a JSON list must start",
    ),
    (
        "csv-header-lacks-field",
        "swift rlhf",
        "dpo",
        "d.csv",
        "query,response\na,b\n",
        "1: no `rejected_response` or `rejected_messages`",
    ),
    (
        "csv-extra-field",
        "swift sft",
        None,
        "d.csv",
        "query,response\na,b\nc,d,e\n",
        "3: 3 fields, the header has 2",
    ),
    ("csv-header-only", "swift sft", None, "d.csv", "query,response\n", "1: no rows under the header"),
]


@pytest.mark.parametrize(
    ("case", "command", "rlhf_type", "name", "text", "expected"), BAD, ids=[c[0] for c in BAD]
)
def test_bad_files_name_the_line(
    case: str, command: str, rlhf_type: str | None, name: str, text: str | None, expected: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    if text is None:  # not-utf8: a Latin-1 é in line 2
        path.write_bytes(jsonl(QA).encode() + b'{"query": "caf\xe9", "response": "b"}\n')
    else:
        path.write_text(text, newline="")
    with pytest.raises(ValueError) as exc:
        check_dataset(path, command, rlhf_type)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{expected}"), message


def test_a_directory_is_not_checked(tmp_path: Path) -> None:
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    check_dataset(tmp_path, "swift sft", None)


def test_a_huge_line_is_one_row(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    path.write_text(jsonl(QA, {"query": "q", "response": "x" * (8 << 20)}, '{"query": }'))
    with pytest.raises(ValueError, match=r"huge\.jsonl:3: not valid JSON \(Expecting value at column 11\)$"):
        check_dataset(path, "swift sft", None)


def test_a_list_is_read_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Elements, strings and numbers cut by the read size are joined again; lines and columns stay right."""
    monkeypatch.setattr(dataset_check, "CHUNK", 7)
    rows = [{"query": "q" * i, "response": str(i), "n": 1234567890123 * i} for i in range(40)]
    path = tmp_path / "d.json"
    path.write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]\n")
    check_dataset(path, "swift sft", None)
    path.write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + ',\n{"query": "a", "response": b}\n]')
    with pytest.raises(ValueError, match=r"d\.json:42: not valid JSON \(Expecting value at column 28\)$"):
        check_dataset(path, "swift sft", None)
    path.write_text("[" + ",".join(json.dumps(r) for r in rows) + ",7]")
    with pytest.raises(ValueError, match=r"d\.json:1: a number, not a JSON object$"):
        check_dataset(path, "swift sft", None)


def test_the_whole_file_is_checked_on_one_line_per_row(tmp_path: Path) -> None:
    """100k rows: every one parsed (the bad one is the last), in well under the time a node takes to fail."""
    path = tmp_path / "many.jsonl"
    path.write_text(jsonl(*([CHAT] * 100_000), {"messages": None, "query": "q"}))
    with pytest.raises(ValueError, match=r"many\.jsonl:100001: no `messages` but line 1 has `messages`"):
        check_dataset(path, "swift sft", None)


def test_an_unreadable_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "gone.jsonl"
    path.symlink_to(tmp_path / "nowhere.jsonl")
    with pytest.raises(ValueError, match=r"gone\.jsonl: cannot read it \(No such file or directory\)$"):
        check_dataset(path, "swift sft", None)
