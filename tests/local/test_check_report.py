"""The check report built from the playbook's raw rows: what counts as ready, and how the table says it."""

from typing import Any

from swiftfleet import check

HOST_KEY_BANNER = (
    "Task failed: Failed to connect to the host via ssh: @@@@@@@@\r\n"
    "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n"
    "Host key for 10.0.0.11 has changed and you have requested strict checking.\r\n"
    "Host key verification failed."
)


def row(rank: int, **changes: Any) -> dict[str, Any]:
    base = {
        "node": f"c-node{rank}", "rank": rank, "address": f"10.0.0.{10 + rank}", "reachable": True,
        "login_error": "", "expected_gpus": 0, "gpu_query": "", "listener_error": "", "port": 29500,
        "probe": "reached\r\n",
    }  # fmt: skip
    return {**base, **changes}


def gpu_query(rc: int, *lines: str) -> str:
    """The GPU query step's raw output: nvidia-smi's lines, then the exit code line (a tty: \r\n)."""
    return "".join(f"{line}\r\n" for line in [*lines, f"{check.RC_MARKER}{rc}"])


def a100(n: int) -> dict[str, Any]:
    return {
        "expected_gpus": 8,
        "gpu_query": gpu_query(0, *["NVIDIA A100-SXM4-40GB, 40960 MiB, 550.90.07"] * n),
    }


def report(*rows: dict[str, Any]) -> dict[str, Any]:
    return check.from_playbook("c", {"master_addr": "10.0.0.10", "nodes": list(rows)})


def test_gpu_nodes_with_all_their_gpus_are_ready() -> None:
    r = report(row(0, **a100(8)), row(1, **a100(8)))
    assert check.healthy(r) and r["healthy"]
    assert r["nodes"][0]["driver"] == "550.90.07"
    assert r["nodes"][0]["gpus"][0] == {"name": "NVIDIA A100-SXM4-40GB", "memory": "40960 MiB"}
    table = check.format_table(r)
    assert "8x NVIDIA A100-SXM4-40GB 40960 MiB" in table
    assert table.splitlines()[0].split() == [
        "node",
        "rank",
        "reachable",
        "gpus",
        "driver",
        "rank",
        "0:29500",
        "problem",
    ]
    assert table.endswith("cluster 'c': all nodes ready (MASTER_ADDR=10.0.0.10)")


def test_each_blocking_problem_is_reported() -> None:
    r = report(
        row(0, **a100(8)),
        row(1, **a100(4)),
        row(2, gpu_query=gpu_query(9, "NVIDIA-SMI has failed because it couldn't communicate")),
        row(3, reachable=False, probe="", login_error=HOST_KEY_BANNER),
        row(4, probe="not reached: [Errno 111] Connection refused\r\n"),
        row(5, reachable=False, probe="", login_error="Task failed: Failed to connect to the host "
            "via ssh: ssh: connect to host 10.0.0.15 port 22: Connection refused"),
        row(6, listener_error="Failed to start transient service unit: Access denied\r\n",
            probe="not reached: timed out\r\n"),
    )  # fmt: skip
    problems = [n["problems"] for n in r["nodes"]]
    assert problems == [
        [],
        ["expected 8 GPU(s), found 4"],
        ["nvidia-smi failed (rc 9): NVIDIA-SMI has failed because it couldn't communicate"],
        ["unreachable: host key changed (refused: not the pinned key)"],
        ["cannot reach rank 0 (29500/tcp): not reached: [Errno 111] Connection refused"],
        ["unreachable: ssh: connect to host 10.0.0.15 port 22: Connection refused"],
        [
            "cannot listen on rank 0's port: Failed to start transient service unit: Access denied",
            "cannot reach rank 0 (29500/tcp): not reached: timed out",
        ],
    ]
    assert not check.healthy(r)
    table = check.format_table(r).splitlines()
    assert table[-1] == "cluster 'c': NOT ready (MASTER_ADDR=10.0.0.10)"
    assert table[5].split()[:3] == ["c-node3", "3", "NO"]
    assert table[6].split()[:6] == ["c-node4", "4", "yes", "none", "-", "NO"]


def test_a_node_without_nvidia_smi_has_no_gpus_and_no_driver() -> None:
    node = report(row(0))["nodes"][0]
    assert (node["gpus"], node["driver"], node["problems"], node["reaches_rank0"]) == ([], None, [], True)


def test_an_empty_report_is_not_ready() -> None:
    assert not check.healthy(report())
