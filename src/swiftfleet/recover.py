"""`swiftfleet train JOB` (make train): train.yml, and for a job with `recover: true` the way back from a lost node.

When the run fails and some node no longer answers over SSH (its container or instance is gone, a spot
reclaim, a dead host), the cluster is brought back to the cluster file's size by the provider's own `up` (a new
node, its host key pinned), set up with the job's needs (setup.yml: the survivors have nothing to do), and the job
starts again from the newest checkpoint that left the nodes complete (`resume: latest`, swiftfleet.jobs.checkpoints).
A failure with every node answering is the job's own: it is reported, never retried.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import click
import yaml

from swiftfleet import lock, node_jobs, paths
from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import inventory_path, read_inventory
from swiftfleet.jobs import checkpoints, needs, plan, spec
from swiftfleet.settings import ClusterSpec, HostsCluster

MAX_RECOVERIES = 3


def say(message: str) -> None:
    click.echo(f"swiftfleet: {message}", err=True)


def _playbook(name: str, cluster: str, *args: str) -> int:
    """Run playbooks/<name> on the cluster's inventory, its output straight to the terminal; its exit code."""
    argv = [
        str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory_path(cluster)),
        str(paths.playbooks_dir() / name), *args,
    ]  # fmt: skip
    env = {**os.environ, "ANSIBLE_CONFIG": str(paths.REPO_ROOT / "ansible.cfg")}
    return subprocess.run(argv, cwd=paths.REPO_ROOT, env=env, check=False).returncode


def train(
    cluster_spec: ClusterSpec, job_file: Path, extra: tuple[str, ...], up: Callable[..., object]
) -> None:
    """Train the job; with `recover: true`, bring lost nodes back and resume, up to MAX_RECOVERIES times.
    `up` is the provider's up(spec, assume_yes, force)."""
    job = spec.load_job(job_file)
    if spec.playbook_of(job.kind) != "train":
        raise SwiftfleetError(
            f"job {job.name}: `{job.kind}` runs with playbooks/{spec.playbook_of(job.kind)}.yml"
        )
    name = cluster_spec.name
    run_file = job_file
    with tempfile.TemporaryDirectory(prefix="swiftfleet-recover-") as tmp:
        for attempt in range(MAX_RECOVERIES + 1):
            rc = _playbook("train.yml", name, "-e", f"@{run_file}", *extra)
            if rc == 0:
                return
            if not job.recover:
                raise SwiftfleetError(f"train.yml failed (exit {rc}): see its report above")
            asked = node_jobs.running(read_inventory(name))
            lost = [n for n in asked if n.error]
            if not lost:
                raise SwiftfleetError(
                    f"train.yml failed (exit {rc}) with every node answering: the job's own failure (see the "
                    "report above), not a lost node; nothing was retried"
                )
            if isinstance(cluster_spec, HostsCluster):
                raise SwiftfleetError(
                    f"train.yml failed and {', '.join(n.node for n in lost)} do(es) not answer: the kit cannot "
                    "replace machines of a hosts file; bring them back, then `make train` with `resume: latest`"
                )
            if attempt == MAX_RECOVERIES:
                raise SwiftfleetError(f"lost a node again after {MAX_RECOVERIES} recoveries; giving up")
            t0 = time.monotonic()
            names = ", ".join(f"{n.node} ({n.error})" for n in lost)
            say(f"job {job.name}: lost {names}; recovery {attempt + 1} of {MAX_RECOVERIES}")
            say("stopping the job's ranks on the nodes that answer")
            answering = [n.node for n in asked if not n.error]
            if answering:  # the lost nodes left out: each would cost an SSH timeout
                _playbook(
                    "stop.yml", name, "-e", f"@{job_file}", "-e", "force=true",
                    "--limit", ",".join(["localhost", *answering]),
                )  # fmt: skip
            say(f"bringing cluster {name!r} back to {cluster_spec.node_count} node(s)")
            with lock.held(name, "cluster up (recovery)"):
                up(cluster_spec, assume_yes=True, force=True)
            say("setting up the new node(s) (the others have nothing to do)")
            extras = json.dumps({"ms_swift_extras": needs.job_file_needs(job_file)})
            if _playbook("setup.yml", name, "-e", extras) != 0:
                raise SwiftfleetError("recovery: setup.yml failed on the new node(s) (see above)")
            run_file = _resumed(job_file, job.name, Path(tmp))
            say(f"recovered in {time.monotonic() - t0:.0f} s; starting the job again")


def _resumed(job_file: Path, job_name: str, tmp: Path) -> Path:
    """The job file again, resuming from the newest checkpoint copied off the nodes complete; as it was (from the
    start) when none was."""
    newest = checkpoints.latest_complete(plan.outputs_dir(job_name))
    if newest is None:
        say("no checkpoint left the nodes complete before the loss: the job starts from the beginning")
        return job_file
    say(f"resuming from {newest}")
    data = yaml.safe_load(job_file.read_text())
    data["job"]["resume"] = "latest"
    resumed = tmp / job_file.name
    resumed.write_text(yaml.safe_dump(data, sort_keys=False))
    return resumed
