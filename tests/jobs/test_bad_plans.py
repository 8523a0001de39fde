"""Inputs an independent tester found that once ended in a traceback or were taken: each is now one line from
`swiftfleet render`, with nothing written and no host, cloud or engine reached (or, in a dry run, a note).
The job-file cases (PLAN_CASES) run in tests/jobs/test_bad_args.py."""

from pathlib import Path
from typing import Any

import pytest

from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import remove_inventory
from swiftfleet.jobs import node_facts, plan, spec
from tests.conftest import run_cli
from tests.jobs.conftest import recorded, write_record
from tests.jobs.test_bad_jobs import _render, assert_refused_in_one_line, gpu_cluster, sft, with_args  # noqa: F401
from tests.test_cluster_file_errors import Tripwire, tripwire  # noqa: F401 (the fixture)


def _serve(kind: str, **more: Any) -> dict[str, Any]:
    return {"job": {"name": "srv", "kind": kind, "model": "Qwen/Qwen2.5-7B-Instruct", **more}}


def _empty_dir(d: Path) -> str:
    (d.parent / "empty").mkdir(exist_ok=True)
    return str(d.parent / "empty")


def _not_lora(d: Path) -> str:
    (d.parent / "ckpt").mkdir(exist_ok=True)
    (d.parent / "ckpt" / "model.safetensors").write_text("x")
    return str(d.parent / "ckpt")


def _broken(d: Path) -> str:
    (d.parent / "val.jsonl").write_text(d.read_text() + "{broken\n")
    return str(d.parent / "val.jsonl")


def _renamed(d: Path, name: str) -> str:
    """A copy of the dataset (JSON lines: no JSON document) under another name."""
    (d.parent / name).write_text(d.read_text() + d.read_text())
    return str(d.parent / name)


def _upper(d: Path) -> str:
    (d.parent / "chat.JSONL").write_text(d.read_text())
    return str(d.parent / "chat.JSONL")


# Refused through `swiftfleet render` by tests/jobs/test_bad_args.py, with its cases.
PLAN_CASES = [
    ("megatron-tp-0", lambda d: sft(d, kind="megatron sft", args={"tensor_model_parallel_size": 0}),
     ["args.tensor_model_parallel_size", "must be >= 1"]),
    ("megatron-ep-negative", lambda d: sft(d, kind="megatron sft", args={"expert_model_parallel_size": -1}),
     ["args.expert_model_parallel_size", ">= 1"]),
    ("vllm-tp-0", lambda d: _serve("swift deploy", args={"infer_backend": "vllm", "vllm_tensor_parallel_size": 0}),
     ["args.vllm_tensor_parallel_size", ">= 1"]),
    ("lr-inf", lambda d: with_args(d, learning_rate=float("inf")), ["args.learning_rate", "not a finite number"]),
    ("teacher-model-number", lambda d: sft(d, kind="swift rlhf", rlhf_type="gkd", args={"teacher_model": 5}),
     ["args.teacher_model", "name models by hub id"]),
    ("dataset-empty-dir", lambda d: sft(d, datasets=[_empty_dir(d)]), ["datasets", "is an empty directory"]),
    ("dataset-dev-null", lambda d: sft(d, datasets=["/dev/null"]), ["datasets", "neither a file nor a directory"]),
    ("val-dataset-broken", lambda d: sft(d, val_datasets=[_broken(d)]), ["val_datasets", "val.jsonl:2: not valid JSON"]),
    ("checkpoint-not-lora", lambda d: _serve("swift deploy", checkpoint=_not_lora(d)),
     ["checkpoint", "not a LoRA checkpoint here (no adapter_config.json)"]),
    ("checkpoint-hub-id", lambda d: _serve("swift deploy", checkpoint="org/adapter"),
     ["checkpoint", "neither a local directory"]),
    ("dataset-upper-suffix", lambda d: sft(d, datasets=[_upper(d)]), ["datasets", "ms-swift reads local files ending .jsonl", "name it .jsonl"]),
    ("bnb-3-bits", lambda d: with_args(d, quant_method="bnb", quant_bits=3), ["args.quant_bits", "4 or 8 bits only"]),
    ("bnb-no-bits", lambda d: with_args(d, quant_method="bnb"), ["args.quant_method", "set quant_bits"]),
    ("tuner-type-typo", lambda d: with_args(d, tuner_type="lorra"), ["args.tuner_type", "did you mean 'lora'"]),
    ("dataset-no-suffix", lambda d: sft(d, datasets=[_renamed(d, "passwd")]), ["datasets", "files ending .jsonl"]),
    ("deepspeed-json-broken", lambda d: with_args(d, deepspeed=_renamed(d, "ds.json")),
     ["args.deepspeed", "ds.json' is not valid JSON"]),
    ("nodes-bool", lambda d: sft(d, nodes=True), ["nodes", "Input should be a valid integer"]),
    ("api-key-on-training", lambda d: sft(d, env={"SWIFT_API_KEY": "k"}),
     ["env.SWIFT_API_KEY", "only swift deploy and swift eval jobs use the API key"]),
]  # fmt: skip


def test_a_step_rule_is_refused_in_a_dry_run_too(tmp_path: Path) -> None:
    """A dry run's CPU nodes make any GPU layout a note, but no training step is no step on any cluster."""
    data = tmp_path / "d.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}\n'
    )
    job = spec.parse_job(with_args(data, num_train_epochs=0), "job")
    with pytest.raises(Exception, match=r"^job: args\.num_train_epochs: "):
        plan.build(job, plan.hypothetical_nodes(2), "job")
    megatron = spec.parse_job(sft(data, kind="megatron sft", args={"tensor_model_parallel_size": 8}), "job")
    notes = plan.build(megatron, plan.hypothetical_nodes(2), "job").notes
    assert any(n.startswith("args.tensor_model_parallel_size: ") and "in this dry run" in n for n in notes)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "(TypeError"),
        ("all:\n  children:\n    other: {}\n", "(KeyError: 'broken')"),
        ("\x00\xff", "broken"),
    ],
)
def test_a_broken_inventory_is_one_line(
    text: str,
    words: str,
    tmp_path: Path,
    isolated_state: Path,
    tripwire: Tripwire,  # noqa: F811
) -> None:
    inventory = isolated_state / "inventory" / "broken.yml"
    inventory.parent.mkdir(parents=True)
    inventory.write_text(text)
    res = _render(Path("jobs/qlora.yml"), "broken", tmp_path / "out", tripwire)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(
        f"swiftfleet: inventory {inventory} is not one `cluster up` wrote for 'broken'"
    )
    assert words in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not tripwire.calls.exists()


def test_render_into_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("")
    res = run_cli("render", "jobs/qlora.yml", "--nodes", "1", "--out", str(tmp_path / "out"))
    assert res.returncode == 2
    assert res.stderr.startswith(
        f"swiftfleet: render: cannot write under {tmp_path / 'out'}: Not a directory"
    )


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ('{"n0": {"job_user": 1}}', "stack.json: n0.job_user: Input should be a valid string"),
        ("[1, 2]", "stack.json: file: Input should be a valid dictionary"),
        ("{not json", "stack.json: unreadable"),
    ],
)
def test_a_broken_setup_record_is_one_line(record: str, words: str, isolated_state: Path) -> None:
    path = node_facts.facts_file("c")
    path.parent.mkdir(parents=True)
    path.write_text(record)
    with pytest.raises(SwiftfleetError, match=r"run make setup again$") as err:
        plan.facts_for("c", plan.hypothetical_nodes(1), required=True)
    assert str(err.value).startswith(f"setup record {path}") and words in str(err.value)


def test_cluster_down_forgets_the_setup_record(isolated_state: Path) -> None:
    """A later cluster of the same name has new nodes: its jobs must wait for its own `make setup`."""
    write_record("c", {"n0": recorded("/root", "/root/swift-env")})
    remove_inventory("c")
    assert node_facts.load("c") is None
    with pytest.raises(SwiftfleetError, match=r"no setup record for n0 .*run make setup"):
        plan.facts_for("c", [plan.NodeInfo("n0", 0, "10.0.1.10", "root", 0, 0.0, "local")], required=True)
