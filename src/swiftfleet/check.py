"""`swiftfleet check`: prove the nodes can be used before an expensive run.

Runs playbooks/check.yml over the cluster's inventory (pinned host keys, StrictHostKeyChecking=yes) and turns
its raw rows into the report: per node reachable, GPUs, driver, and whether rank 0's private IP answers on the
rendezvous port. Each run logs in afresh: its SSH master connections live in a directory of that run only, so
a node counts as reachable only if it accepts a new login with its pinned key now, not through a connection
left open by an earlier command.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from swiftfleet import paths, ports
from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import Cluster, group_name, inventory_path
from swiftfleet.table import render

Report = dict[str, Any]
SSH_ARGS = "-o ControlMaster=auto -o ControlPersist=15s"
# The playbook's GPU query ends with this prefix and nvidia-smi's exit code (no line at all: no nvidia-smi).
RC_MARKER = "swiftfleet-nvidia-smi-rc="


def run(cluster: Cluster) -> Report:
    """Run the check playbook and return the report (also kept as <state>/<cluster>/check.json)."""
    state = paths.state_dir() / cluster.name
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    report_path, log_path = state / "check.json", state / "check.log"
    report_path.unlink(missing_ok=True)
    run_id = uuid.uuid4().hex[:8]  # names the rendezvous listener's transient unit
    extra = {
        "check_group": group_name(cluster.name), "check_report": str(report_path), "check_run": run_id,
        "check_rc_marker": RC_MARKER,
    }  # fmt: skip
    cmd = [
        ansible_playbook(), str(paths.playbooks_dir() / "check.yml"),
        "-i", str(inventory_path(cluster.name)), "-e", json.dumps(extra),
    ]  # fmt: skip
    print(
        f"checking {len(cluster.nodes)} node(s) of {cluster.name!r} over SSH (log: {log_path})",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="sf-ssh-") as control_dir, log_path.open("w") as log:
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(paths.REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_SSH_ARGS": SSH_ARGS,
            "ANSIBLE_SSH_CONTROL_PATH_DIR": control_dir,
        }
        proc = subprocess.run(
            cmd, cwd=paths.REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
    if not report_path.is_file():
        tail = " | ".join(log_path.read_text().strip().splitlines()[-3:])
        raise SwiftfleetError(f"check playbook failed (rc {proc.returncode}) before its report: {tail}")
    report = from_playbook(cluster.name, json.loads(report_path.read_text()))
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def from_playbook(cluster: str, raw: dict[str, Any]) -> Report:
    """The report from the playbook's raw rows: parsed GPUs, and per node the problems that block a run."""
    report = {
        "cluster": cluster,
        "master_addr": raw["master_addr"],
        "nodes": [_node(r) for r in raw["nodes"]],
    }
    report["healthy"] = healthy(report)
    return report


def healthy(report: Report) -> bool:
    return bool(report["nodes"]) and not any(n["problems"] for n in report["nodes"])


def format_table(report: Report) -> str:
    head = ["node", "rank", "reachable", "gpus", "driver", f"rank 0:{_port(report)}", "problem"]
    rows = [
        [
            n["node"], n.get("rank", "?"), _yes(n["reachable"]), _gpus(n["gpus"]), n["driver"] or "-",
            _yes(n["reaches_rank0"]) if n["reachable"] else "-", _short(n["problems"][0]) if n["problems"] else "-",
        ]
        for n in report["nodes"]
    ]  # fmt: skip
    verdict = "all nodes ready" if healthy(report) else "NOT ready"
    return f"{render(head, rows)}\ncluster {report['cluster']!r}: {verdict} (MASTER_ADDR={report['master_addr']})"


def _gpu_query(text: str) -> tuple[int | None, list[str]]:
    """nvidia-smi's exit code (None: the node has no nvidia-smi) and its output lines, from the raw step's output."""
    rc, lines = None, []
    for line in text.replace("\r", "").splitlines():
        if line.startswith(RC_MARKER):
            rc = int(line.removeprefix(RC_MARKER))
        elif line.strip():
            lines.append(line.strip())
    return rc, lines


def _node(row: dict[str, Any]) -> dict[str, Any]:
    reachable = bool(row["reachable"])
    rc, output = _gpu_query(str(row.get("gpu_query") or ""))
    lines = output if rc == 0 else []
    fields = [[f.strip() for f in line.split(",")] for line in lines]
    gpus = [{"name": f[0], "memory": f[1] if len(f) > 1 else "?"} for f in fields]
    driver = fields[0][2] if fields and len(fields[0]) > 2 else None
    reaches_rank0 = reachable and str(row.get("probe") or "").strip() == "reached"
    expected = int(row.get("expected_gpus", 0))
    problems = []
    login_error = str(row.get("login_error") or "")
    if not reachable:
        problems.append(f"unreachable: {_login_problem(login_error)}")
    else:
        if rc not in (0, None):
            problems.append(f"nvidia-smi failed (rc {rc}): {' '.join(output)}")
        if len(gpus) < expected:
            problems.append(f"expected {expected} GPU(s), found {len(gpus)}")
        if str(row.get("listener_error") or "").strip():
            problems.append(f"cannot listen on rank 0's port: {' '.join(row['listener_error'].split())}")
        if not reaches_rank0:
            probe = " ".join(str(row.get("probe") or "no probe").split())
            problems.append(f"cannot reach rank 0 ({row.get('port')}/tcp): {probe}")
    return {
        "node": row["node"], "rank": row.get("rank"), "address": row.get("address"), "reachable": reachable,
        "gpus": gpus, "expected_gpus": expected, "driver": driver, "port": row.get("port"),
        "reaches_rank0": reaches_rank0, "problems": problems,
        "login_error": login_error,
    }  # fmt: skip


def _login_problem(error: str) -> str:
    """The line of an SSH failure that says what happened (ssh's host key warning is a whole banner)."""
    if "Host key verification failed" in error:
        return "host key changed (refused: not the pinned key)"
    lines = [line.strip() for line in error.replace("\r", "").splitlines() if line.strip()]
    last = lines[-1] if lines else "no login"
    for prefix in ("Task failed: ", "Failed to connect to the host via ssh: "):
        last = last.removeprefix(prefix)
    return last


def ansible_playbook() -> str:
    beside = Path(sys.executable).with_name("ansible-playbook")
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    if not found:
        raise SwiftfleetError("ansible-playbook not found: run `make venv`")
    return found


def _port(report: Report) -> object:
    return next((n["port"] for n in report["nodes"] if n.get("port")), ports.RENDEZVOUS.start)


def _gpus(gpus: list[dict[str, str]]) -> str:
    if not gpus:
        return "none"
    counts = Counter(f"{g['name']} {g['memory']}" for g in gpus)
    return ", ".join(f"{count}x {what}" for what, count in counts.items())


def _yes(value: bool) -> str:
    return "yes" if value else "NO"


def _short(text: str, width: int = 70) -> str:
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 3] + "..."
