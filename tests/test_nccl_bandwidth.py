"""The all_reduce_perf verdict: socket fallback, a run without the efa provider, a failed run, the bandwidth table.

The outputs under tests/data/nccl/ are written by hand in nccl-tests' and NCCL_DEBUG=INFO's formats (no GPU here
to record a real one): the lines the parser keys on are the ones aws-ofi-nccl, NCCL and nccl-tests print (see
swiftfleet.nccl_bandwidth for the sources).
"""

from pathlib import Path

import pytest

from swiftfleet import nccl_bandwidth
from swiftfleet.nccl_bandwidth import expected, parse, verdict

DATA = Path(__file__).resolve().parent / "data" / "nccl"


def log(name: str) -> str:
    return (DATA / name).read_text()


def test_a_good_efa_run_prints_its_bandwidth_against_the_table() -> None:
    run = parse(log("efa_2x_p4d.log"))
    assert run.provider == "efa"
    assert run.networks == ["AWS Libfabric"]
    assert run.avg_busbw == pytest.approx(16.4213)
    assert (run.top_bytes, run.top_busbw) == (
        1 << 30,
        pytest.approx(76.84),
    )  # out-of-place, not in-place 76.89
    assert run.out_of_bounds == 0
    v = verdict(log("efa_2x_p4d.log"), 0, True, "p4d.24xlarge", 2)
    assert v.ok and not v.warning
    assert v.line == (
        "bus bandwidth 76.84 GB/s at 1 GiB (sweep average 16.4213) over EFA (provider efa, network AWS Libfabric); "
        "expected about 76.8 GB/s for 2x p4d.24xlarge (nccl_busbw.yml)"
    )


def test_a_sweep_that_stops_short_of_1_gib_is_not_compared() -> None:
    """The table's figures are at 1 GiB: a smaller top size would look far below them without being slow."""
    short = "\n".join(
        line for line in log("efa_2x_p4d.log").splitlines() if not line.startswith("  1073741824")
    )
    v = verdict(short, 0, True, "p4d.24xlarge", 2)
    assert v.ok and not v.warning and v.expected_busbw is None
    assert v.line.startswith("bus bandwidth 70.26 GB/s at 256 MiB (sweep average 16.4213) over EFA")
    assert v.line.endswith(
        "expected: unknown for 2x p4d.24xlarge at 256 MiB (no sourced figure in nccl_busbw.yml)"
    )


def test_newer_and_older_plugin_lines_both_count() -> None:
    older = "ip-1:1:1 [0] NCCL INFO NET/OFI Selected Provider is efa\nip-1:1:1 [0] NCCL INFO Using network AWS Libfabric\n"
    newer = "x [0] NCCL INFO NET/OFI Selected provider is efa, fabric is efa-direct (found 16 nics)\n"
    assert parse(older).provider == "efa"
    assert parse(newer).provider == "efa"


def test_a_socket_fallback_fails_in_one_line() -> None:
    v = verdict(log("socket_fallback.log"), 0, True, "p4d.24xlarge", 2)
    assert not v.ok
    assert v.line.startswith("NCCL fell back to sockets: NCCL_DEBUG says 'Using network Socket'")
    assert "\n" not in v.line


def test_sockets_are_expected_on_nodes_without_efa() -> None:
    v = verdict(log("socket_fallback.log"), 0, False, "g5.2xlarge", 2)
    assert v.ok
    assert v.line == (
        "bus bandwidth 11.1 GB/s at 1 GiB (sweep average 6.9012) over sockets, no EFA on these nodes (Socket); "
        "expected: unknown for 2x g5.2xlarge at 1 GiB (no sourced figure in nccl_busbw.yml)"
    )


def test_a_failed_run_names_nccls_warning() -> None:
    v = verdict(log("failed_no_plugin.log"), 1, True, "p4d.24xlarge", 2)
    assert not v.ok
    assert v.line == "all_reduce_perf failed (rc 1): Failed to initialize any NET plugin"


def test_a_failed_run_without_a_warning_names_its_last_line() -> None:
    v = verdict("mpirun was unable to launch the specified application\n", 2, True, "p4d.24xlarge", 2)
    assert v.line == "all_reduce_perf failed (rc 2): mpirun was unable to launch the specified application"


def test_a_run_without_the_efa_provider_line_fails() -> None:
    without = log("efa_2x_p4d.log").replace("Selected provider is efa", "Selected provider is tcp")
    v = verdict(without, 0, True, "p4d.24xlarge", 2)
    assert not v.ok
    assert v.line == (
        "EFA not used: no 'NET/OFI Selected provider is efa' line in the NCCL_DEBUG output (provider tcp; "
        "networks: AWS Libfabric)"
    )
    silent = "\n".join(line for line in log("efa_2x_p4d.log").splitlines() if "NET/OFI" not in line)
    assert "no NET/OFI line at all" in verdict(silent, 0, True, "p4d.24xlarge", 2).line


def test_an_incomplete_or_wrong_run_fails() -> None:
    cut = log("efa_2x_p4d.log").split("# Out of bounds")[0]
    assert verdict(cut, 0, True, "p4d.24xlarge", 2).line == (
        "all_reduce_perf printed no '# Avg bus bandwidth' line (an incomplete run)"
    )
    wrong = log("efa_2x_p4d.log").replace("Out of bounds values : 0 OK", "Out of bounds values : 3 FAILED")
    assert verdict(wrong, 0, True, "p4d.24xlarge", 2).line == "all_reduce_perf found 3 wrong result(s)"


def test_far_below_the_table_warns_but_passes() -> None:
    slow = log("efa_2x_p4d.log").replace("   40.98   76.84 ", "   10.72   20.10 ")
    v = verdict(slow, 0, True, "p4d.24xlarge", 2)
    assert v.ok and v.top_busbw == 20.1 and v.expected_busbw == 76.8
    assert v.warning.startswith(
        "20.1 GB/s is far below the expected 76.8 GB/s (under 75%): check that every node"
    )
    assert "its 4 EFA interface(s)" in v.warning


def test_the_table_has_a_source_per_row_and_only_sourced_rows() -> None:
    for instance_type, rows in nccl_bandwidth._table().items():
        for row in rows:
            assert row["source"].strip(), instance_type
            assert row["busbw_gbs"] > 0 and row["nodes"] >= 2
    assert expected("p4d.24xlarge", 2) is not None
    assert expected("p4d.24xlarge", 4) is None  # another node count: unknown, not scaled
    assert expected("p5.48xlarge", 2) is None  # no sourced figure yet
