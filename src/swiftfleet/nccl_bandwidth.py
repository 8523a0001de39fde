"""What an nccl-tests `all_reduce_perf` run said, and whether it used EFA: the parser, the expected-bandwidth
table (data/nccl_busbw.yml, a source per row) and the one-line verdict of `swiftfleet nccl-test`.

The lines looked for (NCCL_DEBUG=INFO, NCCL_DEBUG_SUBSYS=INIT,NET):
- aws-ofi-nccl: `NET/OFI Selected provider is efa, fabric is efa (found 4 nics)` (src/nccl_ofi_net.cpp,
  nccl_net_ofi_query_provider_capabilities, aws/aws-ofi-nccl at 2daf7d30; older releases print `Selected Provider
  is efa`, as in the EC2 user guide's "Test your EFA and NCCL configuration" step);
- NCCL: `Using network <name>` (src/init.cc, NVIDIA/nccl at 5067397c): `Socket` is NCCL's own socket transport
  (src/transport/net_socket.cc), i.e. the silent fallback this test exists to catch;
- nccl-tests: one row per message size (`size count type redop root` then out-of-place and in-place `time algbw
  busbw #wrong`), and `# Out of bounds values : 0 OK` and `# Avg bus bandwidth    : 16.4213` at the end of a sweep.
  The average runs over every size, 8 B included, so published figures (and the table) are the busbw of the
  largest size instead.
"""

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

TABLE_FILE = Path(__file__).resolve().parent / "data" / "nccl_busbw.yml"
# The table's figures are the out-of-place bus bandwidth at this size, the largest of the kit's sweep (nccl_plan).
TABLE_BYTES = 1 << 30
# A measured average below this share of the table's figure is "far below": a warning, not a failure (the table's
# figures are few and partly unconfirmed; the transport check is what fails a run).
FAR_BELOW = 0.75

_PROVIDER = re.compile(r"NET/OFI Selected [Pp]rovider is ([\w.-]+)")
_NETWORK = re.compile(r"NCCL INFO Using network (.+?)\s*$", re.MULTILINE)
_AVG = re.compile(r"^#\s*Avg bus bandwidth\s*:\s*([0-9.]+)", re.MULTILINE)
# One row of the results table: size count type redop root, then out-of-place time algbw busbw #wrong, in-place ...
_ROW = re.compile(r"^\s*(\d+)\s+\d+\s+\w+\s+\w+\s+-?\d+\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s", re.MULTILINE)
_OUT_OF_BOUNDS = re.compile(r"^#\s*Out of bounds values\s*:\s*(\d+)", re.MULTILINE)
_WARN = re.compile(r"NCCL WARN (.+?)\s*$", re.MULTILINE)


class Expected(BaseModel):
    model_config = ConfigDict(frozen=True)

    nodes: int
    busbw_gbs: float
    efa_interfaces: int
    source: str


class NcclRun(BaseModel):
    """The facts of one run's output."""

    model_config = ConfigDict(frozen=True)

    provider: str | None  # the libfabric provider aws-ofi-nccl selected; None: the plugin said nothing
    networks: list[str]  # NCCL's "Using network" names, each once
    avg_busbw: float | None  # nccl-tests' mean over every size of the sweep (small sizes pull it far down)
    top_bytes: int | None  # the largest message size of the sweep
    top_busbw: float | None  # its out-of-place bus bandwidth: what published figures (and the table) compare
    out_of_bounds: int | None
    warnings: list[str]


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    line: str  # the one line: the failure, or the bandwidth against the expected figure
    warning: str = ""  # far below the expected figure
    top_busbw: float | None = None
    expected_busbw: float | None = None


@cache
def _table() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(TABLE_FILE.read_text())
    return data


def expected(instance_type: str, nodes: int) -> Expected | None:
    """The table's row for this type and node count; None: unknown (no sourced figure)."""
    for row in _table().get(instance_type, []):
        if int(row["nodes"]) == nodes:
            return Expected(**row)
    return None


def parse(output: str) -> NcclRun:
    provider = _PROVIDER.search(output)
    avg = _AVG.search(output)
    oob = _OUT_OF_BOUNDS.search(output)
    rows = [(int(size), float(busbw)) for size, busbw in _ROW.findall(output)]
    top = max(rows) if rows else None
    return NcclRun(
        provider=provider.group(1) if provider else None,
        networks=list(dict.fromkeys(_NETWORK.findall(output))),
        avg_busbw=float(avg.group(1)) if avg else None,
        top_bytes=top[0] if top else None,
        top_busbw=top[1] if top else None,
        out_of_bounds=int(oob.group(1)) if oob else None,
        warnings=list(dict.fromkeys(_WARN.findall(output))),
    )


def verdict(output: str, rc: int, efa: bool, instance_type: str, nodes: int) -> Verdict:
    """Fail in one line on a socket fallback, a run without the efa provider, a failed or wrong run; else the
    bus bandwidth at 1 GiB against the table (with a warning when far below)."""
    run = parse(output)
    networks = ", ".join(run.networks) or "none"
    if efa and "Socket" in run.networks:
        return Verdict(
            ok=False,
            line="NCCL fell back to sockets: NCCL_DEBUG says 'Using network Socket', not the aws-ofi-nccl plugin "
            "(check /opt/amazon/ofi-nccl/lib on LD_LIBRARY_PATH and `fi_info -p efa` on every node)",
        )
    if rc != 0:
        why = run.warnings[0] if run.warnings else _last_line(output)
        return Verdict(ok=False, line=f"all_reduce_perf failed (rc {rc}): {why}")
    if efa and run.provider != "efa":
        said = f"provider {run.provider}" if run.provider else "no NET/OFI line at all"
        return Verdict(
            ok=False,
            line=f"EFA not used: no 'NET/OFI Selected provider is efa' line in the NCCL_DEBUG output ({said}; "
            f"networks: {networks})",
        )
    if run.avg_busbw is None or run.top_busbw is None or run.top_bytes is None:
        return Verdict(
            ok=False, line="all_reduce_perf printed no '# Avg bus bandwidth' line (an incomplete run)"
        )
    if run.out_of_bounds:
        return Verdict(ok=False, line=f"all_reduce_perf found {run.out_of_bounds} wrong result(s)")
    how = f"EFA (provider efa, network {networks})" if efa else f"sockets, no EFA on these nodes ({networks})"
    size = _size(run.top_bytes)
    measured = f"bus bandwidth {run.top_busbw:g} GB/s at {size} (sweep average {run.avg_busbw:g}) over {how}"
    row = expected(instance_type, nodes)
    if row is None or run.top_bytes != TABLE_BYTES:
        return Verdict(
            ok=True,
            line=f"{measured}; expected: unknown for {nodes}x {instance_type} at {size} (no sourced figure in "
            f"{TABLE_FILE.name})",
            top_busbw=run.top_busbw,
        )
    line = (
        f"{measured}; expected about {row.busbw_gbs:g} GB/s for {nodes}x {instance_type} ({TABLE_FILE.name})"
    )
    warning = ""
    if run.top_busbw < FAR_BELOW * row.busbw_gbs:
        warning = (
            f"{run.top_busbw:g} GB/s is far below the expected {row.busbw_gbs:g} GB/s (under "
            f"{FAR_BELOW:.0%}): check that every node has its {row.efa_interfaces} EFA interface(s) "
            "(`fi_info -p efa`, the found N nics in the log) and the placement group"
        )
    return Verdict(ok=True, line=line, warning=warning, top_busbw=run.top_busbw, expected_busbw=row.busbw_gbs)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"
