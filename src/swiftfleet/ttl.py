"""A node's time left: the TTL deadline and the idle stop, weighed against a job before it starts, and moved by
`swiftfleet cluster ttl`.

On aws nodes cloud-init writes the deadline (epoch seconds) to DEADLINE_FILE and a timer powers the node off
after it (terraform/templates/ttl.cloud-config.tftpl); roles/idle_stop writes IDLE_FILE. playbooks/tasks/
ttl_read.yml prints a node's clock and both files as `key=value` lines; the decisions below are made from those
lines, by the node's own clock (the one its TTL timer uses).
"""

import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swiftfleet import paths
from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import Cluster, group_name, inventory_path
from swiftfleet.settings import MAX_TTL_HOURS

DEADLINE_FILE = "/etc/swiftfleet/ttl-deadline"
IDLE_FILE = "/etc/swiftfleet/idle-stop-minutes"
# A job without a time_limit is warned below this much TTL left.
WARN_LEFT_S = 3600
# The TTL timer looks every 5 minutes: a passed deadline powers the node off within that.
TTL_CHECK_MIN = 5
# A unit in one of these ActiveStates runs the job (as playbooks/library/swiftfleet_unit_watch.py's RUNNING,
# which runs on the node and cannot import this): a job running on every rank is attached to, never restarted.
RUNNING_STATES = ("active", "activating", "reloading", "deactivating")


def duration_seconds(text: str) -> int:
    """A job's time_limit (its pattern checked by the job spec) in seconds: `1h30m` is 5400."""
    # Imported here: the filter plugin loads this module for every playbook, most of which never ask.
    from swiftfleet.jobs.spec import TIME_UNITS

    return sum(int(n) * TIME_UNITS[unit] for n, unit in re.findall(r"(\d+)(min|d|h|m|s)", text))


@dataclass(frozen=True)
class NodeTime:
    host: str
    now: int  # the node's clock, epoch seconds
    deadline: int | None  # None: no TTL on this node
    idle_minutes: int | None  # None: no idle stop
    job_active: bool = False  # the job's own unit runs here already

    @property
    def left(self) -> int | None:
        return None if self.deadline is None else self.deadline - self.now


def parse_read(host: str, stdout: str) -> NodeTime:
    """What ttl_read.yml printed on `host`."""
    fields = dict(line.partition("=")[::2] for line in stdout.splitlines() if "=" in line)

    def number(key: str, what: str) -> int | None:
        if key not in fields:
            return None
        text = fields[key].strip()
        if not text.isdigit():
            raise SwiftfleetError(
                f"{host}: {what} holds {text[:40]!r}, not a whole number; "
                "rewrite it with `swiftfleet cluster ttl --hours N`"
                if key == "deadline"
                else f"{host}: {what} holds {text[:40]!r}, not a whole number; run `make setup` again"
            )
        return int(text)

    now = number("now", "the node's clock")
    if now is None:
        raise SwiftfleetError(f"{host}: could not read the node's clock (date +%s)")
    return NodeTime(
        host,
        now,
        number("deadline", DEADLINE_FILE),
        number("idle", IDLE_FILE),
        fields.get("job") in RUNNING_STATES,
    )


def parse_reads(reads: dict[str, str]) -> list[NodeTime]:
    return [parse_read(host, stdout) for host, stdout in reads.items()]


def span(seconds: int) -> str:
    """`2h05m`, `45m`, `3d04h`: a time left, to the minute (rounded down)."""
    minutes = max(seconds, 0) // 60
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m"


def utc(epoch: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def hours_for(seconds: int) -> int:
    """The --hours that covers `seconds` with an hour to spare (staging before, collecting after)."""
    return -(-seconds // 3600) + 1


def job_check(plan: dict[str, Any], nodes: list[NodeTime], wait: bool = True) -> dict[str, Any]:
    """Whether the job may start on these nodes: {"error": one line or None, "warnings": [...], "running": the
    hosts where the job's unit runs already (tasks/units.yml attaches when that is every node)}.

    Refused when a node's TTL runs out before the job's time_limit (or has run out already); warned when a job
    without a time_limit has less than an hour of TTL, and when idle stop may take a result the run leaves on a
    node. A run already going on every node (the playbook attaches to it) is warned, never refused: its
    time_limit counts from its start, and refusing would not stop it."""
    running = [n.host for n in nodes if n.job_active]
    return {**_ttl_verdict(plan, nodes, wait), "running": running}


def _ttl_verdict(plan: dict[str, Any], nodes: list[NodeTime], wait: bool) -> dict[str, Any]:
    name, limit = plan["name"], plan.get("time_limit")
    warnings = _idle_warnings(plan, nodes, wait)
    timed = [n for n in nodes if n.left is not None]
    if not timed:
        return {"error": None, "warnings": warnings}
    first = min(timed, key=lambda n: n.left or 0)
    left, deadline = first.left or 0, utc(first.deadline or 0)
    problem, needed = None, WARN_LEFT_S
    if left <= 0:
        problem = (
            f"job {name}: the TTL of {first.host} ran out at {deadline} (the node powers off within "
            f"{TTL_CHECK_MIN} min)"
        )
    elif limit is not None and duration_seconds(limit) > left:
        problem = (
            f"job {name}: time_limit {limit} is longer than the TTL left on {first.host} ({span(left)}, until "
            f"{deadline}): the node would power off mid-run; shorten time_limit or extend the TTL"
        )
        needed = duration_seconds(limit)
    elif limit is None and left < WARN_LEFT_S:
        warnings.insert(
            0,
            f"job {name}: only {span(left)} of TTL left on {first.host} (until {deadline}) and no time_limit: "
            "the node powers off then, whatever runs; extend it with `make cluster-ttl HOURS=N`",
        )
    if problem is None:
        return {"error": None, "warnings": warnings}
    hours = hours_for(needed)
    line = f"{problem}: `make cluster-ttl HOURS={hours}` (swiftfleet cluster ttl --hours {hours})"
    if all(n.job_active for n in nodes):
        return {"error": None, "warnings": [f"{line} (the run goes on)", *warnings]}
    return {"error": line, "warnings": []}


def _idle_warnings(plan: dict[str, Any], nodes: list[NodeTime], wait: bool) -> list[str]:
    """A server keeps its node busy; a run's result on a node is gone once idle stop powers it off (on aws the
    instance terminates with its disk)."""
    rank0 = next((n for n in nodes if n.host == plan["nodes"][0]["host"]), None)
    if plan["playbook"] == "deploy" or rank0 is None or not rank0.idle_minutes:
        return []
    name, mode, minutes = plan["name"], plan["output"]["mode"], rank0.idle_minutes
    if mode == "keep":
        return [
            f"job {name}: output: keep leaves the result on {rank0.host}, which idle stop powers off {minutes} min "
            "after the job ends (aws: terminated with its disk); copy it off in time, or use output: fetch or s3"
        ]
    if mode == "fetch" and not wait:
        return [
            f"job {name}: with wait=false the result comes back only when you run the playbook again: do so within "
            f"{minutes} min of the job's end, before idle stop powers {rank0.host} off"
        ]
    return []


def extend_plan(nodes: list[NodeTime], hours: int) -> dict[str, Any]:
    """New deadlines, now + `hours` by each node's clock: {"error": one line or None, "deadlines": {host: epoch}}.
    Only a node that has a TTL gets a new one: elsewhere no timer would read it."""
    missing = [n.host for n in nodes if n.deadline is None]
    if missing:
        return {
            "error": f"{', '.join(missing)}: no TTL ({DEADLINE_FILE}): aws nodes get one at first boot "
            "(ttl_hours); local and hosts nodes have none to extend",
            "deadlines": {},
        }
    return {"error": None, "deadlines": {n.host: n.now + hours * 3600 for n in nodes}}


def extend_cluster(cluster: Cluster, hours: int) -> str:
    """Run playbooks/ttl.yml over the cluster and return the table of old and new deadlines."""
    if not 1 <= hours <= MAX_TTL_HOURS:
        raise SwiftfleetError(
            f"cluster ttl: --hours {hours}: give 1 to {MAX_TTL_HOURS} (the range of ttl_hours)"
        )
    from swiftfleet.check import ansible_playbook
    from swiftfleet.table import render

    state = paths.state_dir() / cluster.name
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = state / "ttl.log"
    with tempfile.TemporaryDirectory(prefix="sf-ttl-") as tmp, log_path.open("w") as log:
        report_path = Path(tmp) / "report.json"
        extra = {"ttl_group": group_name(cluster.name), "ttl_hours": hours, "ttl_report": str(report_path)}
        cmd = [
            ansible_playbook(), str(paths.playbooks_dir() / "ttl.yml"),
            "-i", str(inventory_path(cluster.name)), "-e", json.dumps(extra),
        ]  # fmt: skip
        env = {**os.environ, "ANSIBLE_CONFIG": str(paths.REPO_ROOT / "ansible.cfg")}
        proc = subprocess.run(
            cmd, cwd=paths.REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, check=False
        )
        report = json.loads(report_path.read_text()) if report_path.is_file() else None
    if report is None:
        tail = " | ".join(log_path.read_text().strip().splitlines()[-3:])
        raise SwiftfleetError(f"ttl playbook failed (rc {proc.returncode}) before its report: {tail}")
    if report["error"]:
        raise SwiftfleetError(f"cluster ttl: {report['error']}")
    if proc.returncode != 0:
        raise SwiftfleetError(f"ttl playbook failed (rc {proc.returncode}) while writing; see {log_path}")

    rows = []
    for node in parse_reads(report["reads"]):
        new = int(report["deadlines"][node.host])
        rows.append([node.host, utc(node.deadline or 0), utc(new), span(new - node.now)])
    head = ["node", "old deadline", "new deadline", "left"]
    return render(head, rows) + f"\ncluster {cluster.name!r}: every node powers off at its new deadline"


def _filter_check(plan: Any, reads: Any, wait: Any = True) -> dict[str, Any]:
    """`job_plan | swiftfleet_ttl_check(reads, wait)` (playbooks/tasks/ttl_check.yml): a malformed file is
    refused as the job would be."""
    try:
        return job_check(_plain(plan), parse_reads(_plain(reads)), str(wait).lower() in ("true", "yes", "1"))
    except SwiftfleetError as exc:
        return {"error": str(exc), "warnings": []}


def _filter_extend(reads: Any, hours: Any) -> dict[str, Any]:
    """`reads | swiftfleet_ttl_extend(hours)` (playbooks/ttl.yml)."""
    try:
        return extend_plan(parse_reads(_plain(reads)), int(hours))
    except SwiftfleetError as exc:
        return {"error": str(exc), "deadlines": {}}


def _plain(data: Any) -> Any:
    """Plain dicts, lists and scalars from Ansible's lazy, tagged values."""
    return json.loads(json.dumps(data))


FILTERS = {"swiftfleet_ttl_check": _filter_check, "swiftfleet_ttl_extend": _filter_extend}
