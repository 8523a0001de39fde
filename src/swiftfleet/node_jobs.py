"""Which jobs run on a cluster's nodes right now, asked over SSH (the units, not the controller's memory of them).

Asked before anything that would end them: `cluster down`, and a `cluster up` that would replace or remove nodes.
Every node is asked at once, over the pinned host keys, with a short connect timeout: a node that does not answer
is named as unknown, never taken as idle.
"""

import re
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import click

from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import Cluster, Node, inventory_path, known_hosts_path, read_inventory

# The unit every rank of a job runs as (swiftfleet.jobs.plan): swiftfleet-<job>-rank<N>.service.
UNIT = re.compile(r"^swiftfleet-(?P<job>.+)-rank(?P<rank>\d+)\.service$")
CONNECT_TIMEOUT_S = 8


@dataclass
class NodeJobs:
    node: str
    jobs: dict[str, int] = field(default_factory=dict)  # job name -> this node's rank in it
    error: str | None = None  # why the node could not be asked


def ssh(cluster: str, node: Node, *command: str) -> subprocess.CompletedProcess[str]:
    """A command on the node over its pinned host key, with a short connect timeout (also swiftfleet.bake's)."""
    argv = [
        "ssh", "-i", str(node.ssh_key), "-p", str(node.ssh_port), "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known_hosts_path(cluster)}", f"{node.ssh_user}@{node.ansible_host}",
        *command,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=CONNECT_TIMEOUT_S + 20, check=False)


def _ask(cluster: str, node: Node) -> NodeJobs:
    try:
        proc = ssh(
            cluster, node, "systemctl", "list-units", "--type=service", "--state=active,activating,deactivating",
            "--plain", "--no-legend", "swiftfleet-*-rank*.service",
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return NodeJobs(node.name, error="no answer over SSH")
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or [f"ssh exit {proc.returncode}"])[-1]
        return NodeJobs(node.name, error=reason)
    found = NodeJobs(node.name)
    for line in proc.stdout.splitlines():
        if line.split() and (m := UNIT.match(line.split()[0])):
            found.jobs[m["job"]] = int(m["rank"])
    return found


def running(cluster: Cluster, nodes: list[Node] | None = None) -> list[NodeJobs]:
    """Each node's running jobs (default: every node of the cluster), in rank order."""
    asked = cluster.nodes if nodes is None else nodes
    if not asked:
        return []
    with ThreadPoolExecutor(max_workers=min(32, len(asked))) as pool:
        return list(pool.map(lambda n: _ask(cluster.name, n), asked))


def describe(found: list[NodeJobs]) -> str:
    """ "job tiny (ranks 0, 1 on node0, node1)" for every job seen; "" when none runs."""
    ranks: dict[str, list[tuple[int, str]]] = {}
    for n in found:
        for job, rank in n.jobs.items():
            ranks.setdefault(job, []).append((rank, n.node))
    parts = []
    for job, where in sorted(ranks.items()):
        where.sort()
        parts.append(
            f"job {job} (rank{'s' if len(where) > 1 else ''} {', '.join(str(r) for r, _ in where)} "
            f"on {', '.join(n for _, n in where)})"
        )
    return "; ".join(parts)


def unknown(found: list[NodeJobs]) -> str:
    """ "node1 (no answer over SSH)" for every node that could not be asked."""
    return ", ".join(f"{n.node} ({n.error})" for n in found if n.error)


def guard_ranks(cluster: str, ranks: Iterable[int] | None, action: str, force: bool) -> None:
    """guard() for the nodes of these ranks (None: all) in the cluster's inventory; without one, no node to ask.
    `action` may name the nodes: {nodes} is replaced by their names."""
    if not inventory_path(cluster).is_file():
        return
    known = read_inventory(cluster)
    wanted = None if ranks is None else set(ranks)
    nodes = [n for n in known.nodes if wanted is None or n.rank in wanted]
    if nodes:
        guard(known, action.format(nodes=", ".join(n.name for n in nodes)), force, nodes)


def guard(cluster: Cluster, action: str, force: bool, nodes: list[Node] | None = None) -> None:
    """Before `action` ends whatever runs on `nodes` (default: all): go on when nothing runs or with --force, ask
    at a terminal, refuse without one, naming the jobs and their ranks."""
    found = running(cluster, nodes)
    if lost := unknown(found):
        click.echo(f"swiftfleet: could not ask {lost} whether a job runs there", err=True)
    jobs = describe(found)
    if not jobs:
        return
    if force:
        click.echo(f"swiftfleet: --force: {action} ends {jobs}", err=True)
        return
    if not sys.stdin.isatty():
        raise SwiftfleetError(
            f"cluster {cluster.name!r} runs {jobs}: {action} would end it; stop it first "
            "(make stop JOB=...) or add --force"
        )
    click.confirm(
        f"Cluster {cluster.name!r} runs {jobs}. {action[0].upper() + action[1:]} anyway? Whatever has not left "
        "the nodes is lost",
        abort=True,
    )
