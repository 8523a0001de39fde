"""`swiftfleet`: the command line behind the Makefile targets.

Every user-facing problem is a SwiftfleetError, printed as one line on stderr with exit code 2.
Provider modules are imported lazily so that `--help` and input validation stay fast and touch nothing.
"""

import json
import sys
from pathlib import Path

import click

from swiftfleet import lock
from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import Cluster, read_inventory
from swiftfleet.settings import AwsCluster, ClusterSpec, HostsCluster, LocalCluster, load_cluster

config_option = click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    default=None,
    help="Cluster file (default: $SWIFTFLEET_CLUSTER, else the local 2-node cluster).",
)


@click.group()
def cli() -> None:
    """Provision a GPU cluster and run ms-swift on it."""


@cli.group()
def cluster() -> None:
    """Bring a cluster up, show it, take it down."""


@cluster.command("up")
@config_option
@click.option("--yes", is_flag=True, help="Do not ask before creating billed cloud resources.")
@click.option("--force", is_flag=True, help="Replace or remove nodes even while a job runs on them.")
def cluster_up(config: Path | None, yes: bool, force: bool) -> None:
    """Create the nodes (or bring them to the cluster file) and write the Ansible inventory."""
    spec = load_cluster(config)
    with lock.held(spec.name, "cluster up"):
        result = _provider(spec).up(spec, assume_yes=yes, force=force)
    _print_nodes(result)


@cluster.command("down")
@config_option
@click.option("--force", is_flag=True, help="Take the cluster down even while a job runs on it.")
def cluster_down(config: Path | None, force: bool) -> None:
    """Remove every node and resource of the cluster, then its inventory; asks first while a job runs."""
    spec = load_cluster(config)
    with lock.held(spec.name, "cluster down"):
        # A hosts cluster's down only forgets the machines: its jobs go on.
        if not isinstance(spec, HostsCluster):
            from swiftfleet import node_jobs

            node_jobs.guard_ranks(spec.name, None, "`cluster down`", force)
        _provider(spec).down(spec)
    click.echo(f"cluster {spec.name!r} is down")


@cluster.command("status")
@config_option
def cluster_status(config: Path | None) -> None:
    """Show the nodes of the cluster: for aws as EC2 has them now (strays too), else as the inventory has them."""
    spec = load_cluster(config)
    if isinstance(spec, AwsCluster):
        from swiftfleet import aws_sweep

        for line in aws_sweep.status(spec):
            click.echo(line)
        return
    _print_nodes(read_inventory(spec.name))


@cluster.command("ttl")
@config_option
@click.option("--hours", type=int, required=True, help="The new TTL, counted from now (1 to 168 hours).")
def cluster_ttl(config: Path | None, hours: int) -> None:
    """Move every node's TTL deadline to now + HOURS (aws nodes get their TTL at first boot, from ttl_hours)."""
    spec = load_cluster(config)
    from swiftfleet import ttl

    click.echo(ttl.extend_cluster(read_inventory(spec.name), hours))


@cli.command("check")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check_cmd(config: Path | None, as_json: bool) -> None:
    """Log into every node: reachability, GPUs, driver, and the path to rank 0's rendezvous port."""
    spec = load_cluster(config)
    from swiftfleet import check

    report = check.run(read_inventory(spec.name))
    click.echo(json.dumps(report, indent=2) if as_json else check.format_table(report))
    if not check.healthy(report):
        raise SwiftfleetError("check failed: not every node is ready (see the report above)")


@cli.command("nccl-test")
@config_option
@click.option("--dry-run", is_flag=True, help="Print the command from the inventory; touch no host.")
@click.option("--binary", help="With --dry-run: the all_reduce_perf path to show (default: a placeholder).")
@click.option(
    "--timeout", "timeout_s", type=click.IntRange(60, 7200), default=1800, show_default=True,
    help="Seconds the all_reduce_perf run may take.",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Run even while a job runs on the nodes (it takes every GPU).")
def nccl_test_cmd(
    config: Path | None, dry_run: bool, binary: str | None, timeout_s: int, force: bool
) -> None:
    """all_reduce_perf over every GPU, the aws-ofi-nccl plugin forced on EFA nodes: fails on a socket fallback,
    else prints the average bus bandwidth against the expected figure. Without GPUs: prints the command and
    says it was NOT run (exit 0)."""
    spec = load_cluster(config)
    from swiftfleet import nccl_test

    if dry_run:
        plan, script = nccl_test.dry_run(read_inventory(spec.name), binary)
        click.echo(script.rstrip("\n"))
        for note in plan.notes:
            click.echo(f"note: {note}")
        click.echo(f"nccl-test: {plan.skip_reason}")
        return
    from swiftfleet import node_jobs

    node_jobs.guard_ranks(spec.name, None, "`nccl-test` (it takes every GPU)", force)
    lines, failure = nccl_test.outcome(nccl_test.run(read_inventory(spec.name), timeout_s))
    for line in lines:
        click.echo(line)
    if failure:
        raise SwiftfleetError(failure)


@cli.group("image", invoke_without_command=True)
@click.option("--rebuild", is_flag=True, help="Build again even if the image exists.")
@click.option("--tag", default=LocalCluster().image, show_default=True)
@click.pass_context
def image_cmd(ctx: click.Context, rebuild: bool, tag: str) -> None:
    """Build the Debian systemd+sshd node image offline (mmdebstrap + docker import); or bake, list, remove
    images of set-up nodes."""
    if ctx.invoked_subcommand is not None:
        return
    from swiftfleet import image

    image.ensure_image(tag, rebuild=rebuild)


@image_cmd.command("bake")
@config_option
@click.option("--node", "rank", type=click.IntRange(0), required=True, help="The rank of the node to bake.")
@click.option(
    "--name", help="local: the image tag; aws: the AMI name (default: from cluster, node and time)."
)
def image_bake(config: Path | None, rank: int, name: str | None) -> None:
    """Make an idle, set-up node into an image (local: a Docker image; aws: an AMI, the node reboots); a cluster
    file naming it (image: / ami_id:) starts nodes whose setup has nothing to do."""
    spec = load_cluster(config)
    if isinstance(spec, HostsCluster):
        raise SwiftfleetError("image bake: a hosts cluster's machines are not ours to image")
    from swiftfleet import bake

    with lock.held(spec.name, "image bake"):
        src = bake.source(spec, rank)
        if isinstance(spec, AwsCluster):
            made, key = bake.bake_aws(spec, src, name), "ami_id"
        else:
            made, key = bake.bake_local(spec, src, name), "image"
    click.echo(
        f"baked {src.node.name} (setup fingerprint {src.fingerprint[:12]}): put `{key}: {made}` in a cluster file"
    )


@image_cmd.command("list")
@config_option
def image_list(config: Path | None) -> None:
    """The baked images: local ones, or with an aws cluster file the AMIs of its region."""
    from swiftfleet.table import render

    spec = load_cluster(config)
    if isinstance(spec, AwsCluster):
        from swiftfleet import amis
        from swiftfleet.preflight import Clients

        rows = amis.rows(amis.listed(Clients.for_region(spec.region).ec2))
        head = amis.HEAD
    else:
        from swiftfleet import bake

        rows, head = bake.local_images(), bake.HEAD
    click.echo(render(head, rows) if rows else "no baked images")


@image_cmd.command("rm")
@click.argument("image_ref")
@config_option
def image_rm(image_ref: str, config: Path | None) -> None:
    """Remove a baked image (aws: deregister the AMI and delete its snapshots)."""
    spec = load_cluster(config)
    if isinstance(spec, AwsCluster):
        from swiftfleet import amis
        from swiftfleet.preflight import Clients

        gone = amis.remove(Clients.for_region(spec.region).ec2, image_ref)
        click.echo(f"deregistered {gone.image_id}; deleted {', '.join(gone.snapshots) or 'no snapshots'}")
        return
    from swiftfleet import bake

    bake.remove_local(image_ref)
    click.echo(f"removed {image_ref}")


@cli.command("render")
@click.argument("job_file", type=click.Path(path_type=Path))
@click.option(
    "--inventory-cluster", "cluster_name", help="Use this cluster's inventory (ansible/inventory/NAME.yml)."
)
@click.option(
    "--nodes", "node_count", type=click.IntRange(1, 64), help="Or a hypothetical cluster of N CPU nodes."
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Output directory (default: build/render/JOB_NAME)."
)
def render_cmd(job_file: Path, cluster_name: str | None, node_count: int | None, out: Path | None) -> None:
    """Check a job file and render every node's files locally (a dry run: no host is touched)."""
    from swiftfleet.jobs import node_facts, plan, render, spec

    if (cluster_name is None) == (node_count is None):
        raise SwiftfleetError("render: give exactly one of --inventory-cluster NAME or --nodes N")
    job = spec.load_job(job_file)
    if cluster_name is not None:
        nodes = plan.nodes_from_cluster(read_inventory(cluster_name))
    else:
        nodes = plan.hypothetical_nodes(node_count or 0)
    facts = plan.facts_for(cluster_name, nodes, required=False)
    job_plan = plan.build(job, nodes, f"job file {job_file}", facts)
    out = out or Path("build") / "render" / job.name
    try:
        written = render.render_all(job_plan, out)
    except OSError as exc:
        raise SwiftfleetError(f"render: cannot write under {out}: {exc.strerror} ({exc.filename})") from None
    for path in written:
        click.echo(path)
    if cluster_name is None or node_facts.load(cluster_name) is None:
        click.echo(
            "note: no setup record for these nodes: paths are the roles' defaults (make setup records them)"
        )
    for note in job_plan.notes:
        click.echo(f"note: {note}")
    for warning in job_plan.warnings:
        click.echo(f"warning: {warning}", err=True)
    where = cluster_name or f"{node_count} hypothetical CPU node(s)"
    click.echo(f"job {job.name!r} ({job.kind}) rendered for {where} under {out}")


@cli.command("train", context_settings={"ignore_unknown_options": True})
@click.argument("job_file", type=click.Path(path_type=Path))
@config_option
@click.argument("ansible_args", nargs=-1, type=click.UNPROCESSED)
def train_cmd(job_file: Path, config: Path | None, ansible_args: tuple[str, ...]) -> None:
    """Train a job with playbooks/train.yml (more ansible-playbook arguments may follow); a job with
    `recover: true` comes back from a lost node: the cluster regrows, the new node is set up, the job resumes."""
    spec = load_cluster(config)
    from swiftfleet import recover

    recover.train(spec, job_file, ansible_args, _provider(spec).up)


@cli.command("needs")
@click.argument("job_file", type=click.Path(path_type=Path))
def needs_cmd(job_file: Path) -> None:
    """Print the ms_swift extras a job needs as a JSON list (`make setup JOB=...` installs them)."""
    from swiftfleet.jobs import needs

    click.echo(json.dumps(needs.job_file_needs(job_file)))


@cli.command("plot")
@click.argument("job")
def plot_cmd(job: str) -> None:
    """Write a fetched training job's loss and learning-rate curves to outputs/NAME/curves.png (JOB: its job file
    or its name)."""
    from swiftfleet.jobs import curves, spec

    name = spec.name_in(Path(job)) if job.endswith((".yml", ".yaml")) else spec.job_name(job)
    click.echo(curves.plot(name)[1])


def _provider(spec: ClusterSpec):  # type: ignore[no-untyped-def]
    """The module that handles this kind of cluster; each has up(spec, assume_yes, force) and down(spec)."""
    if isinstance(spec, AwsCluster):
        from swiftfleet import aws_cluster

        return aws_cluster
    if isinstance(spec, HostsCluster):
        from swiftfleet import hosts_file

        return hosts_file
    from swiftfleet import local_cluster

    return local_cluster


def _print_nodes(c: Cluster) -> None:
    from swiftfleet.table import render

    rows = [
        [
            n.name,
            n.rank,
            n.ansible_host,
            n.private_ip,
            n.ssh_user,
            n.gpu_count,
            n.gpu_memory_gib,
            n.instance_type,
            n.availability_zone or "-",
        ]
        for n in c.nodes
    ]
    head = ["node", "rank", "ssh host", "private ip", "user", "gpus", "gpu GiB", "type", "az"]
    click.echo(render(head, rows))
    click.echo(f"cluster {c.name!r} ({c.provider}): {len(c.nodes)} node(s), MASTER_ADDR={c.master_addr}")


def main() -> None:
    try:
        cli(standalone_mode=False)
    except SwiftfleetError as exc:
        click.echo(f"swiftfleet: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("swiftfleet: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
