"""What `swiftfleet nccl-test` prints and whether it fails, from the result the playbook wrote."""

from typing import Any

from swiftfleet.nccl_test import outcome

PLAN = {"run": True, "skip_reason": "", "notes": []}


def result(plan: dict[str, Any], verdict: dict[str, Any] | None = None, rc: int = 0) -> dict[str, Any]:
    return {"plan": {**PLAN, **plan}, "script": "#!/bin/bash\nexec mpirun\n", "verdict": verdict, "rc": rc}


def test_no_gpu_prints_the_command_and_the_skip_and_does_not_fail() -> None:
    skip = {
        "run": False,
        "skip_reason": "NOT run: no GPU on n0 (no /usr/bin/nvidia-smi)",
        "notes": ["a note"],
    }
    assert outcome(result(skip)) == (
        [
            "#!/bin/bash\nexec mpirun",
            "note: a note",
            "nccl-test: NOT run: no GPU on n0 (no /usr/bin/nvidia-smi)",
        ],
        "",
    )


def test_a_playbook_that_broke_after_planning_fails_even_when_it_skipped() -> None:
    _, failure = outcome(result({"run": False, "skip_reason": "NOT run"}, rc=2))
    assert failure == "nccl-test playbook failed (rc 2) after its plan: see its log"


def test_a_refused_plan_is_its_one_line() -> None:
    assert outcome({"plan": {"error": "nccl-test: every node needs a GPU; none on n1"}, "rc": 2}) == (
        [],
        "nccl-test: every node needs a GPU; none on n1",
    )


def test_a_verdict_is_printed_or_fails() -> None:
    good = {"ok": True, "line": "bus bandwidth 20 GB/s at 1 GiB ...", "warning": "20 GB/s is far below ..."}
    lines, failure = outcome(result({}, good, rc=0))
    assert lines[-2:] == [
        "nccl-test: bus bandwidth 20 GB/s at 1 GiB ...",
        "WARNING: 20 GB/s is far below ...",
    ]
    assert failure == ""
    bad = {"ok": False, "line": "NCCL fell back to sockets: ...", "warning": ""}
    assert outcome(result({}, bad, rc=2))[1] == "nccl-test failed: NCCL fell back to sockets: ..."
