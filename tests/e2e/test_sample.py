"""`swift sample` on both nodes of the rehearsal cluster: each samples its half of 40 rows, the samples come back as
one file in input order, the watch counts the rows done; a re-run skips the finished node and resumes the stopped
one from ms-swift's own state."""

import json

import pytest

from tests.e2e.conftest import CPU_ARGS, Rehearsal

pytestmark = [pytest.mark.docker, pytest.mark.swift]
JOB_DIR = "/root/swiftfleet/jobs/tiny-sample"
SEQUENCES = 2


def _asked(row: dict) -> str:  # type: ignore[type-arg]
    return next(m["content"] for m in row["messages"] if m["role"] == "user")


def test_sample_shares_the_rows_over_both_nodes_and_resumes_a_stopped_share(installed: Rehearsal) -> None:
    rows_file, inputs = installed.rows("sample40", 40)
    job = installed.job(
        name="tiny-sample", kind="swift sample", model=str(installed.tiny / "model"), datasets=[str(rows_file)],
        args={**CPU_ARGS, "num_return_sequences": SEQUENCES, "max_new_tokens": 4}, env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    result = installed.outputs / "tiny-sample" / "output" / "result.jsonl"

    def asked() -> list[str]:
        return [_asked(json.loads(line)) for line in result.read_text().splitlines()]

    expected = [_asked(row) for row in inputs for _ in range(SEQUENCES)]
    run = installed.play("infer.yml", job)
    print(f"infer.yml with swift sample (2 nodes, 40 rows): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    assert "sampled 40/40 rows" in run.output  # the watch's count from ms-swift's state on the nodes
    assert f"job tiny-sample: {len(expected)} lines from 40 rows, in input order: {result}" in run.output
    assert asked() == expected  # every row's samples, in the input's order
    assert "rows 20-40: 20 to sample" in installed.node(1, "cat", f"{JOB_DIR}/rank1.log")

    # Node 1 stopped after 5 batches (rows), as a kill leaves it: ms-swift's partial results and its index; no
    # result file yet.
    out = f"{JOB_DIR}/output"
    installed.node(1, "sh", "-c", f"head -n {5 * SEQUENCES} {out}/result.jsonl > {out}/result.jsonl.resume && "
                   f"rm {out}/result.jsonl && echo '{{\"index\": 4}}' > {out}/ckpt_state.json")  # fmt: skip
    again = installed.play("infer.yml", job)
    assert again.rc == 0, again.output[-5000:]
    assert "rows 0-20: done by an earlier run" in installed.node(0, "cat", f"{JOB_DIR}/rank0.log")
    log1 = installed.node(1, "cat", f"{JOB_DIR}/rank1.log")
    assert "rows 20-40: 20 to sample (resuming the earlier run)" in log1
    assert "Loaded index_resume: 4" in log1  # ms-swift went on from its own state, not from the start
    assert asked() == expected
    status = installed.play("status.yml", job)  # each rank's rows done, from ms-swift's state on its node
    assert status.rc == 0 and status.output.count("20/20 rows sampled; ") == 2, status.output[-3000:]
