"""`swift infer` on both nodes of the rehearsal cluster: each answers its half of 40 rows, the answers come back
as one file with every row once, in input order; a re-run keeps a node's complete answers and redoes the other's."""

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import CPU_ARGS, Rehearsal

pytestmark = [pytest.mark.docker, pytest.mark.swift]
JOB_DIR = "/root/swiftfleet/jobs/tiny-infer"


def _asked(rows: list[dict]) -> list[list[dict]]:  # type: ignore[type-arg]
    """Each row's messages without its assistant turn: what was asked, in order."""
    return [[m for m in row["messages"] if m["role"] != "assistant"] for row in rows]


def test_infer_shares_the_rows_over_both_nodes_and_joins_them_in_input_order(installed: Rehearsal) -> None:
    rows_file = installed.root / "rows40.jsonl"
    inputs = [json.loads(line) for line in (installed.tiny / "chat.jsonl").read_text().splitlines()[:40]]
    rows_file.write_text("".join(json.dumps(row) + "\n" for row in inputs))
    job = installed.job(
        name="tiny-infer", kind="swift infer", model=str(installed.tiny / "model"), val_datasets=[str(rows_file)],
        args={**CPU_ARGS, "infer_backend": "transformers", "max_new_tokens": 4}, env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    result = installed.outputs / "tiny-infer" / "output" / "result.jsonl"

    def answers() -> list[dict]:  # type: ignore[type-arg]
        return [json.loads(line) for line in result.read_text().splitlines()]

    run = installed.play("infer.yml", job)
    print(f"infer.yml (2 nodes, 40 rows): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    assert f"job tiny-infer: 40 answers to 40 rows, in input order: {result}" in run.output
    first = answers()
    assert _asked(first) == _asked(inputs)  # every row once, in the input's order
    assert [row["labels"] for row in first] == [row["messages"][-1]["content"] for row in inputs]
    assert all(isinstance(row["response"], str) for row in first)
    for rank, (lo, hi) in enumerate([(0, 20), (20, 40)]):  # each node answered its own half
        share = (
            Path(installed.outputs / "tiny-infer" / "shares" / f"rank{rank}.jsonl").read_text().splitlines()
        )
        assert _asked([json.loads(x) for x in share]) == _asked(inputs[lo:hi])

    # Node 1's answers stop halfway, as a run killed mid-way leaves them; the re-run answers node 1's share only.
    installed.node(1, "sed", "-i", "10,$d", f"{JOB_DIR}/output/result.jsonl")
    again = installed.play("infer.yml", job)
    assert again.rc == 0, again.output[-5000:]
    assert "rows 0-20: 20 answers already in output/result.jsonl; not run again" in installed.node(
        0, "cat", f"{JOB_DIR}/rank0.log"
    )
    log1 = installed.node(1, "cat", f"{JOB_DIR}/rank1.log")
    assert (
        "rows 20-40: 9 of 20 answers in output/result.jsonl (an earlier run stopped): answering again" in log1
    )
    assert _asked(answers()) == _asked(inputs)
