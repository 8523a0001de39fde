"""`swift infer` on both nodes of the rehearsal cluster: each answers its half of 40 rows, the answers come back
as one file with every row once, in input order, and the watch counts them; a re-run answers only what is left."""

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
    rows_file, inputs = installed.rows("rows40", 40)
    job = installed.job(
        name="tiny-infer", kind="swift infer", model=str(installed.tiny / "model"), val_datasets=[str(rows_file)],
        args={**CPU_ARGS, "infer_backend": "transformers", "max_new_tokens": 4, "write_batch_size": 5}, env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    result = installed.outputs / "tiny-infer" / "output" / "result.jsonl"

    def answers() -> list[dict]:  # type: ignore[type-arg]
        return [json.loads(line) for line in result.read_text().splitlines()]

    run = installed.play("infer.yml", job)
    print(f"infer.yml (2 nodes, 40 rows): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    assert "answered 40/40 rows" in run.output  # the watch's count of the answers on the nodes
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

    # Node 1's answers stop after 9 rows, as a run killed mid-way leaves them: the re-run answers its 11 others.
    installed.node(1, "sed", "-i", "10,$d", f"{JOB_DIR}/output/result.jsonl")
    again = installed.play("infer.yml", job)
    assert again.rc == 0, again.output[-5000:]
    assert "answered 40/40 rows" in again.output
    log0 = installed.node(0, "cat", f"{JOB_DIR}/rank0.log")
    assert "rows 0-20: 20 answers already in output/result.jsonl; not run again" in log0
    assert "rows 20-40: 11 to answer (9 answered by an earlier run)" in installed.node(
        1, "cat", f"{JOB_DIR}/rank1.log"
    )
    assert _asked(answers()) == _asked(inputs)
    status = installed.play("status.yml", job)  # each rank's rows done of its share, in the status table
    assert status.rc == 0 and status.output.count("20/20 rows answered; ") == 2, status.output[-3000:]
