"""Checks against the AWS account before anything is created: one row per check, and no apply after a failure.

Every call is read-only. Clients are plain boto3 clients, so AWS_PROFILE, AWS_REGION and AWS_ENDPOINT_URL
(tests point it at moto) work as they do for any AWS tool.
"""

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import boto3
import click
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError
from botocore.parsers import ResponseParserError

from swiftfleet.errors import SwiftfleetError
from swiftfleet.instance_types import family
from swiftfleet.settings import AwsCluster
from swiftfleet.table import render

Status = Literal["ok", "warn", "fail"]
# A dead endpoint should fail the check in seconds, not after botocore's long default retry schedule.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10, read_timeout=30)
# Service Quotas codes of EC2's vCPU limits per instance family: (on-demand, spot).
# G and VT: "Running On-Demand G and VT instances" / "All G and VT Spot Instance Requests"; P likewise.
VCPU_QUOTAS: dict[str, tuple[str, str]] = {
    "g": ("L-DB2E81BA", "L-3819A6DF"),
    "vt": ("L-DB2E81BA", "L-3819A6DF"),
    "p": ("L-417A185B", "L-7212CCBC"),
}
STANDARD_QUOTAS = ("L-1216C47A", "L-34B43A08")  # Standard (A, C, D, H, I, M, R, T, Z) on-demand / spot
# "EC2-VPC Elastic IPs" per region: every EFA node gets one (terraform/network.tf), AWS's default is 5.
EIP_QUOTA = "L-0263D0A3"
EIP_DEFAULT = 5


class Row(NamedTuple):
    check: str
    status: Status
    detail: str


@dataclass(frozen=True)
class Clients:
    ec2: Any
    ssm: Any
    sts: Any
    quotas: Any
    iam: Any
    efs: Any

    @classmethod
    def for_region(cls, region: str) -> "Clients":
        session = boto3.Session(region_name=region)

        def make(service: str) -> Any:
            return session.client(service, config=CLIENT_CONFIG)

        return cls(
            ec2=make("ec2"),
            ssm=make("ssm"),
            sts=make("sts"),
            quotas=make("service-quotas"),
            iam=make("iam"),
            efs=make("efs"),
        )


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    # Where to try, in order: only zones that passed every check.
    zones: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(r.status == "fail" for r in self.rows)

    def table(self) -> str:
        return render(["check", "status", "detail"], self.rows)


def aws_error(exc: Exception) -> str:
    """One short line: AWS's code and message, or only the HTTP status when the body is an HTML error page."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code, message = str(err.get("Code", "error")), " ".join(str(err.get("Message", "")).split())
        if code.isdigit():
            return f"HTTP {code}, no AWS error in the answer"
        return f"{code}: {message[:300]}"
    return str(exc).splitlines()[0][:300]


def check(spec: AwsCluster, clients: Clients) -> Report:
    """Run every check, print the table, and stop with a SwiftfleetError if any check failed."""
    report = run(spec, clients)
    click.echo(report.table())
    if report.failed:
        failed = ", ".join(r.check for r in report.rows if r.status == "fail")
        raise SwiftfleetError(f"preflight failed ({failed}): see the table above; nothing was created")
    return report


def run(spec: AwsCluster, clients: Clients) -> Report:
    report = Report()
    # Without credentials or a region every later call fails the same way: stop at the first such failure.
    for step in (_credentials, _region):
        report.rows.append(step(spec, clients))
        if report.failed:
            return report
    type_info = _instance_type(clients.ec2, spec.instance_type)
    if isinstance(type_info, Row):
        report.rows.append(type_info)
        return report
    row, zones = _offered_zones(spec, clients.ec2)
    report.rows.append(row)
    if zones and spec.capacity_reservation_id:
        row, zones = capacity_reservation(spec, clients.ec2, zones)
        report.rows.append(row)
    if zones:
        row, report.zones = _subnet_zones(spec, clients.ec2, zones)
        report.rows.append(row)
    if spec.capacity_reservation_id:
        report.rows.append(
            Row("vCPU quota", "ok", f"not needed: the nodes launch into {spec.capacity_reservation_id}")
        )
    else:
        report.rows.append(vcpu_quota(spec, clients.quotas, type_info["VCpuInfo"]["DefaultVCpus"]))
    report.rows.append(eip_quota(spec, clients.ec2, clients.quotas, has_efa(type_info)))
    report.rows.append(_ami(spec, clients, type_info["ProcessorInfo"]["SupportedArchitectures"]))
    if spec.instance_profile:
        report.rows.append(_instance_profile(spec.instance_profile, clients.iam))
    return report


def _credentials(spec: AwsCluster, clients: Clients) -> Row:
    try:
        me = clients.sts.get_caller_identity()
    except (NoCredentialsError, PartialCredentialsError):
        return Row(
            "credentials", "fail", "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/...)"
        )
    except ClientError as exc:
        return Row("credentials", "fail", aws_error(exc))
    except (BotoCoreError, ResponseParserError) as exc:
        return Row(
            "region",
            "fail",
            f"AWS did not answer in {spec.region} ({aws_error(exc)}): does the region exist?",
        )
    return Row("credentials", "ok", f"account {me['Account']} as {me['Arn']}")


def _region(spec: AwsCluster, clients: Clients) -> Row:
    try:
        listed = clients.ec2.describe_regions(AllRegions=True)["Regions"]
        regions = {r["RegionName"]: r.get("OptInStatus", "") for r in listed}
    except (BotoCoreError, ClientError, ResponseParserError) as exc:
        return Row(
            "region",
            "fail",
            f"EC2 did not answer in {spec.region} ({aws_error(exc)}): does the region exist?",
        )
    if spec.region not in regions:
        return Row("region", "fail", f"{spec.region} is not an EC2 region of this account's partition")
    if regions[spec.region] == "not-opted-in":
        return Row("region", "fail", f"{spec.region} is not enabled for this account (opt in first)")
    return Row("region", "ok", spec.region)


def _instance_type(ec2: Any, instance_type: str) -> dict[str, Any] | Row:
    try:
        return ec2.describe_instance_types(InstanceTypes=[instance_type])["InstanceTypes"][0]  # type: ignore[no-any-return]
    except (ClientError, IndexError) as exc:
        return Row(
            "instance type", "fail", f"{instance_type} is not available in this region ({aws_error(exc)})"
        )


def _offered_zones(spec: AwsCluster, ec2: Any) -> tuple[Row, list[str]]:
    """The zones to try: spec.availability_zones in the user's order, else every standard AZ, minus those
    that do not offer the type."""
    pages = ec2.get_paginator("describe_instance_type_offerings").paginate(
        LocationType="availability-zone", Filters=[{"Name": "instance-type", "Values": [spec.instance_type]}]
    )
    offered = {o["Location"] for page in pages for o in page["InstanceTypeOfferings"]}
    if spec.availability_zones:
        wanted = spec.availability_zones
    else:
        # Local and Wavelength zones are left out: a GPU cluster belongs in a regular AZ.
        zones = ec2.describe_availability_zones(
            Filters=[{"Name": "zone-type", "Values": ["availability-zone"]}]
        )
        wanted = sorted(z["ZoneName"] for z in zones["AvailabilityZones"] if z["State"] == "available")
    zones = [z for z in wanted if z in offered]
    missing = [z for z in wanted if z not in offered]
    where = f"{spec.instance_type} offered in {', '.join(zones) or 'none of them'}"
    if not zones:
        return Row("instance type", "fail", f"{spec.instance_type} is not offered in {', '.join(wanted)}"), []
    if missing and spec.availability_zones:
        return Row("instance type", "warn", f"{where}; not in {', '.join(missing)}"), zones
    return Row("instance type", "ok", where), zones


def _subnet_zones(spec: AwsCluster, ec2: Any, zones: list[str]) -> tuple[Row, list[str]]:
    """The module takes spec.subnet_id, else the default subnet of the zone: keep zones that have one."""
    if spec.subnet_id:
        try:
            subnet = ec2.describe_subnets(SubnetIds=[spec.subnet_id])["Subnets"][0]
        except (ClientError, IndexError) as exc:
            return Row("subnet", "fail", f"{spec.subnet_id}: {aws_error(exc)}"), []
        zone = subnet["AvailabilityZone"]
        if zone not in zones:
            return Row(
                "subnet", "fail", f"{spec.subnet_id} lies in {zone}, where the type is not offered/wanted"
            ), []
        return Row("subnet", "ok", f"{spec.subnet_id} in {zone}"), [zone]
    subnets = ec2.describe_subnets(
        Filters=[
            {"Name": "default-for-az", "Values": ["true"]},
            {"Name": "availability-zone", "Values": zones},
        ]
    )["Subnets"]
    with_default = {s["AvailabilityZone"] for s in subnets}
    kept = [z for z in zones if z in with_default]
    if not kept:
        return Row("subnet", "fail", f"no default subnet in {', '.join(zones)}: set subnet_id"), []
    lacking = [z for z in zones if z not in with_default]
    detail = "default subnet in " + ", ".join(kept) + (f"; none in {', '.join(lacking)}" if lacking else "")
    return Row("subnet", "warn" if lacking else "ok", detail), kept


def quota_code(instance_type: str, spot: bool) -> str:
    fam = family(instance_type)
    codes = VCPU_QUOTAS.get(fam[:2]) or VCPU_QUOTAS.get(fam[:1]) or STANDARD_QUOTAS
    return codes[1] if spot else codes[0]


def read_quota(quotas: Any, code: str) -> tuple[dict[str, Any] | None, str]:
    """EC2 quota `code` as applied to the account, else AWS's default for it (an account that never changed the
    quota may only have that); (None, why) when neither can be read."""
    problem = ""
    # An account that never changed the quota may only have the default.
    for call in (quotas.get_service_quota, quotas.get_aws_default_service_quota):
        try:
            return call(ServiceCode="ec2", QuotaCode=code)["Quota"], ""
        except (BotoCoreError, ClientError, ResponseParserError) as exc:
            problem = aws_error(exc)
    return None, problem


def vcpu_quota(spec: AwsCluster, quotas: Any, vcpus_per_node: int) -> Row:
    needed = spec.node_count * vcpus_per_node
    code = quota_code(spec.instance_type, spec.spot)
    quota, problem = read_quota(quotas, code)
    if quota is None:
        return Row(
            "vCPU quota", "warn", f"quota {code} not readable ({problem}); the cluster needs {needed} vCPUs"
        )
    limit = int(quota["Value"])
    name = quota.get("QuotaName", code)
    if needed > limit:
        return Row(
            "vCPU quota", "fail",
            f"needs {needed} vCPUs ({spec.node_count} x {vcpus_per_node}), '{name}' allows {limit}: "
            f"request an increase (Service Quotas, ec2 {code})",
        )  # fmt: skip
    return Row("vCPU quota", "ok", f"needs {needed} of {limit} vCPUs ('{name}'; running instances count too)")


def has_efa(type_info: dict[str, Any]) -> bool:
    """Whether the module gives the type EFA interfaces (terraform/main.tf: local.efa_count > 0), and so each
    node an Elastic IP."""
    network = type_info.get("NetworkInfo", {})
    return bool(network.get("EfaSupported")) and network.get("EfaInfo", {}).get("MaximumEfaInterfaces", 0) > 0


def eip_quota(spec: AwsCluster, ec2: Any, quotas: Any, efa: bool) -> Row:
    """Each EFA node takes an Elastic IP: the region's quota less the addresses held by anything else (this
    cluster's own are reused by a re-up) must cover the nodes."""
    if not efa:
        return Row(
            "Elastic IPs", "ok", f"none needed: {spec.instance_type} nodes get an automatic public IPv4"
        )
    quota, problem = read_quota(quotas, EIP_QUOTA)
    limit = EIP_DEFAULT if quota is None else int(quota["Value"])
    try:
        addresses = ec2.describe_addresses()["Addresses"]
    except (BotoCoreError, ClientError, ResponseParserError) as exc:
        return Row(
            "Elastic IPs", "warn",
            f"needs {spec.node_count} (one per EFA node) of {limit}; the region's addresses not readable "
            f"({aws_error(exc)})",
        )  # fmt: skip
    from swiftfleet.aws_sweep import TAG, tags_of  # aws_sweep imports this module

    taken = sum(1 for a in addresses if tags_of(a).get(TAG) != spec.name)
    free = max(limit - taken, 0)
    if spec.node_count <= free:
        return Row("Elastic IPs", "ok", f"needs {spec.node_count} of {free} free ({taken} of {limit} taken)")
    assumed = f" (quota not readable: {problem}; AWS's default)" if quota is None else ""
    want = taken + spec.node_count
    return Row(
        "Elastic IPs", "fail",
        f"needs {spec.node_count} Elastic IPs (one per EFA node), {free} of the {limit} allowed in {spec.region} "
        f"are free{assumed}: release unused ones or raise the quota to {want}: aws service-quotas "
        f"request-service-quota-increase --region {spec.region} --service-code ec2 --quota-code {EIP_QUOTA} "
        f"--desired-value {want}",
    )  # fmt: skip


def capacity_reservation(spec: AwsCluster, ec2: Any, zones: list[str]) -> tuple[Row, list[str]]:
    """A targeted reservation decides the zone: it must exist, be active, be of the kind the cluster file says,
    reserve the type in one of `zones` and have room for the nodes (this cluster's own in it count as room)."""
    rid = spec.capacity_reservation_id
    kind = "Capacity Block" if spec.capacity_block else "capacity reservation"
    try:
        found = ec2.describe_capacity_reservations(CapacityReservationIds=[rid])["CapacityReservations"][0]
    except (BotoCoreError, ClientError, ResponseParserError, IndexError) as exc:
        return Row("reservation", "fail", f"{kind} {rid}: {aws_error(exc)}"), []
    problem = _reservation_problem(spec, found, zones) or _reservation_room(spec, ec2, found)
    if problem:
        return Row("reservation", "fail", f"{kind} {rid}: {problem}"), []
    zone = found["AvailabilityZone"]
    ends = f", until {found['EndDate']:%Y-%m-%d %H:%M %Z}" if found.get("EndDate") else ""
    detail = f"{kind} {rid}: {found['AvailableInstanceCount']} of {found['TotalInstanceCount']} free in {zone}{ends}"
    return Row("reservation", "ok", detail), [zone]


def _reservation_problem(spec: AwsCluster, found: dict[str, Any], zones: list[str]) -> str:
    is_block = found.get("ReservationType") == "capacity-block"
    if is_block != spec.capacity_block:
        return (
            "is a Capacity Block for ML: set capacity_block: true" if is_block
            else "is an On-Demand Capacity Reservation, not a Capacity Block: leave capacity_block out"
        )  # fmt: skip
    state = found.get("State")
    if state in ("scheduled", "payment-pending", "pending") and found.get("StartDate"):
        return f"is {state} and starts at {found['StartDate']:%Y-%m-%d %H:%M %Z}: run `cluster up` from then"
    if state != "active":
        return f"is {state}, not active: nothing can launch into it"
    if found.get("InstanceType") != spec.instance_type:
        return f"reserves {found.get('InstanceType')}, not the cluster file's {spec.instance_type}"
    if found["AvailabilityZone"] not in zones:
        return f"lies in {found['AvailabilityZone']}, not among the zones to use ({', '.join(zones)})"
    return ""


def _reservation_room(spec: AwsCluster, ec2: Any, found: dict[str, Any]) -> str:
    free = int(found["AvailableInstanceCount"])
    if spec.node_count <= free:
        return ""
    from swiftfleet.aws_sweep import cluster_instances  # aws_sweep imports this module

    # A re-up: nodes of this cluster already running in the reservation keep their place.
    running = cluster_instances(ec2, spec.name, ["pending", "running", "stopping", "stopped"])
    mine = sum(1 for i in running if i.get("CapacityReservationId") == found["CapacityReservationId"])
    if spec.node_count <= free + mine:
        return ""
    return (
        f"has {free} of {found['TotalInstanceCount']} instances free"
        f"{f' (and {mine} of this cluster)' if mine else ''}; the cluster needs {spec.node_count}"
    )


def _ami(spec: AwsCluster, clients: Clients, architectures: list[str]) -> Row:
    source = "ami_id"
    image_id = spec.ami_id
    if image_id is None:
        source = spec.ami_ssm_parameter
        try:
            image_id = clients.ssm.get_parameter(Name=spec.ami_ssm_parameter)["Parameter"]["Value"]
        except ClientError as exc:
            return Row("AMI", "fail", f"SSM parameter {spec.ami_ssm_parameter}: {aws_error(exc)}")
    try:
        images = clients.ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as exc:
        return Row("AMI", "fail", f"{image_id} (from {source}): {aws_error(exc)}")
    if not images:
        return Row("AMI", "fail", f"{image_id} (from {source}) does not exist in {spec.region}")
    image = images[0]
    if image.get("Architecture") not in architectures:
        return Row(
            "AMI", "fail",
            f"{image_id} is {image.get('Architecture')}, {spec.instance_type} runs {'/'.join(architectures)}",
        )  # fmt: skip
    return Row("AMI", "ok", f"{image_id} ({image.get('Name', 'no name')}) from {source}")


def _instance_profile(name: str, iam: Any) -> Row:
    """The existing profile the nodes are to get: it must exist and carry a role, or the nodes get no credentials."""
    try:
        profile = iam.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "NoSuchEntity":
            return Row(
                "instance profile", "fail", f"instance_profile {name!r} does not exist in this account"
            )
        return Row("instance profile", "fail", f"instance_profile {name!r}: {aws_error(exc)}")
    roles = [r["RoleName"] for r in profile.get("Roles", [])]
    if not roles:
        return Row(
            "instance profile",
            "fail",
            f"instance_profile {name!r} has no role: the nodes would get no credentials",
        )
    return Row("instance profile", "ok", f"{name} (role {', '.join(roles)})")
