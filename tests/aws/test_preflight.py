"""Preflight against moto (through the test proxy), and what moto cannot serve (the vCPU and Elastic IP quotas,
capacity reservations) with botocore's Stubber."""

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from swiftfleet import preflight
from swiftfleet.errors import SwiftfleetError
from swiftfleet.settings import AwsCluster
from tests.aws.conftest import REGION, FaultProxy, aws_spec, stubbed


def _spec(tmp_path: Path, ssh_key: Path, **settings: Any) -> AwsCluster:
    return aws_spec(tmp_path / "c.yml", ssh_key, **settings)


def _rows(report: preflight.Report) -> dict[str, tuple[str, str]]:
    return {r.check: (r.status, r.detail) for r in report.rows}


@pytest.mark.moto
def test_all_checks_pass_and_zones_follow_the_offerings(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path
) -> None:
    spec = _spec(tmp_path, ssh_key)
    report = preflight.run(spec, preflight.Clients.for_region(REGION))
    rows = _rows(report)
    assert rows["credentials"] == ("ok", "account 123456789012 as arn:aws:sts::123456789012:user/moto")
    assert rows["region"] == ("ok", REGION)
    assert rows["subnet"][0] == "ok"
    assert rows["vCPU quota"][0] == "warn"  # moto has no EC2 quotas: not readable is a warning
    assert "needs 8 vCPUs" in rows["vCPU quota"][1]  # 2 nodes x 4 vCPUs of g5.xlarge
    assert rows["AMI"][0] == "ok" and "from /swiftfleet-test/dlami/ami-id" in rows["AMI"][1]
    # moto's offerings data has no g5.xlarge in us-east-1e.
    assert report.zones == ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f"]
    assert not report.failed


@pytest.mark.moto
def test_type_not_offered_in_the_chosen_zone(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, availability_zones=["us-east-1e"])
    report = preflight.run(spec, preflight.Clients.for_region(REGION))
    assert _rows(report)["instance type"] == ("fail", "g5.xlarge is not offered in us-east-1e")
    assert report.zones == []
    with pytest.raises(SwiftfleetError, match=r"preflight failed \(instance type\)"):
        preflight.check(spec, preflight.Clients.for_region(REGION))


@pytest.mark.moto
def test_zones_keep_the_users_order_and_skip_those_without_the_type(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path
) -> None:
    spec = _spec(
        tmp_path,
        ssh_key,
        instance_type="p4de.24xlarge",
        availability_zones=["us-east-1c", "us-east-1a", "us-east-1b"],
    )
    report = preflight.run(spec, preflight.Clients.for_region(REGION))
    assert _rows(report)["instance type"] == (
        "warn",
        "p4de.24xlarge offered in us-east-1c, us-east-1b; not in us-east-1a",
    )
    assert report.zones == ["us-east-1c", "us-east-1b"]


@pytest.mark.moto
def test_missing_ami_parameter_fails(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, ami_ssm_parameter="/swiftfleet-test/nothing-here")
    rows = _rows(preflight.run(spec, preflight.Clients.for_region(REGION)))
    assert rows["AMI"] == ("fail", "SSM parameter /swiftfleet-test/nothing-here: ParameterNotFound: Parameter "
                           "/swiftfleet-test/nothing-here not found.")  # fmt: skip


@pytest.mark.moto
def test_unknown_ami_id_fails(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, ami_id="ami-0123456789abcdef0")
    status, detail = _rows(preflight.run(spec, preflight.Clients.for_region(REGION)))["AMI"]
    assert status == "fail" and "ami-0123456789abcdef0 (from ami_id): InvalidAMIID.NotFound" in detail


@pytest.mark.moto
def test_bad_region_stops_before_the_other_checks(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, region="us-fake-1")
    report = preflight.run(spec, preflight.Clients.for_region("us-fake-1"))
    assert [r.check for r in report.rows] == ["credentials", "region"]
    status, detail = _rows(report)["region"]
    assert (
        status == "fail" and detail.startswith("EC2 did not answer in us-fake-1") and "region exist" in detail
    )


def test_no_credentials_fail_first(ssh_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookups from the test
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # never reached: signing fails first
    spec = _spec(tmp_path, ssh_key)
    report = preflight.run(spec, preflight.Clients.for_region(REGION))
    assert report.rows == [preflight.Row("credentials", "fail", "no AWS credentials found (set AWS_PROFILE or "
                                         "AWS_ACCESS_KEY_ID/...)")]  # fmt: skip


# The quota paths, with the Service Quotas endpoint replaced by botocore's Stubber (moto does not serve it).


def _quotas() -> tuple[Any, Stubber]:
    return stubbed("service-quotas")


def _quota(code: str, name: str, value: float) -> dict[str, Any]:
    return {"Quota": {"ServiceCode": "ec2", "QuotaCode": code, "QuotaName": name, "Value": value}}


def test_quota_codes_follow_family_and_market() -> None:
    assert preflight.quota_code("g5.xlarge", spot=False) == "L-DB2E81BA"
    assert preflight.quota_code("g6e.48xlarge", spot=True) == "L-3819A6DF"
    assert preflight.quota_code("p4d.24xlarge", spot=False) == "L-417A185B"
    assert preflight.quota_code("p6-b200.48xlarge", spot=True) == "L-7212CCBC"


def test_quota_large_enough_passes(ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, instance_type="p4d.24xlarge", node_count=2)
    client, stub = _quotas()
    stub.add_response(
        "get_service_quota",
        _quota("L-417A185B", "Running On-Demand P instances", 192.0),
        {"ServiceCode": "ec2", "QuotaCode": "L-417A185B"},
    )
    with stub:
        row = preflight.vcpu_quota(spec, client, vcpus_per_node=96)
    stub.assert_no_pending_responses()
    assert row == preflight.Row(
        "vCPU quota",
        "ok",
        "needs 192 of 192 vCPUs ('Running On-Demand P instances'; running instances count too)",
    )


def test_quota_too_small_fails_with_the_code_to_raise(ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, instance_type="g6e.12xlarge", node_count=2, spot=True)
    client, stub = _quotas()
    stub.add_response(
        "get_service_quota",
        _quota("L-3819A6DF", "All G and VT Spot Instance Requests", 64.0),
        {"ServiceCode": "ec2", "QuotaCode": "L-3819A6DF"},
    )
    with stub:
        row = preflight.vcpu_quota(spec, client, vcpus_per_node=48)
    assert row.status == "fail"
    assert row.detail == (
        "needs 96 vCPUs (2 x 48), 'All G and VT Spot Instance Requests' allows 64: request an increase "
        "(Service Quotas, ec2 L-3819A6DF)"
    )


def test_quota_falls_back_to_the_aws_default(ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, node_count=1)
    client, stub = _quotas()
    stub.add_client_error("get_service_quota", "NoSuchResourceException", "no applied quota")
    stub.add_response(
        "get_aws_default_service_quota",
        _quota("L-DB2E81BA", "Running On-Demand G and VT instances", 0.0),
        {"ServiceCode": "ec2", "QuotaCode": "L-DB2E81BA"},
    )
    with stub:
        row = preflight.vcpu_quota(spec, client, vcpus_per_node=4)
    assert row.status == "fail" and "allows 0" in row.detail


def test_quota_unreadable_is_a_warning(ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key)
    client, stub = _quotas()
    stub.add_client_error("get_service_quota", "AccessDeniedException", "not allowed")
    stub.add_client_error("get_aws_default_service_quota", "AccessDeniedException", "not allowed")
    with stub:
        row = preflight.vcpu_quota(spec, client, vcpus_per_node=4)
    assert row == preflight.Row(
        "vCPU quota",
        "warn",
        "quota L-DB2E81BA not readable (AccessDeniedException: not allowed); the cluster needs 8 vCPUs",
    )


# instance_profile: an existing profile, looked up in moto's IAM before anything is created.


@pytest.mark.moto
def test_missing_instance_profile_fails_before_anything_is_made(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path
) -> None:
    spec = _spec(tmp_path, ssh_key, instance_profile="team-s3")
    clients = preflight.Clients.for_region(REGION)
    assert _rows(preflight.run(spec, clients))["instance profile"] == (
        "fail",
        "instance_profile 'team-s3' does not exist in this account",
    )
    with pytest.raises(SwiftfleetError, match=r"preflight failed \(instance profile\)"):
        preflight.check(spec, clients)


@pytest.mark.moto
def test_instance_profile_needs_a_role(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    iam = boto3.client("iam", region_name=REGION)
    iam.create_instance_profile(InstanceProfileName="team-s3")
    spec = _spec(tmp_path, ssh_key, instance_profile="team-s3")
    clients = preflight.Clients.for_region(REGION)
    assert _rows(preflight.run(spec, clients))["instance profile"] == (
        "fail",
        "instance_profile 'team-s3' has no role: the nodes would get no credentials",
    )
    iam.create_role(RoleName="team-s3-role", AssumeRolePolicyDocument="{}")
    iam.add_role_to_instance_profile(InstanceProfileName="team-s3", RoleName="team-s3-role")
    assert _rows(preflight.run(spec, clients))["instance profile"] == ("ok", "team-s3 (role team-s3-role)")


@pytest.mark.moto
def test_no_instance_profile_row_without_one(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, s3_read=["s3://sf-models/models"])
    assert "instance profile" not in _rows(preflight.run(spec, preflight.Clients.for_region(REGION)))


# Elastic IPs: one per EFA node; the quota (L-0263D0A3) from Service Quotas, the addresses from DescribeAddresses.

EIP_NAME = "EC2-VPC Elastic IPs"


def _eip_stubs(quota: float | None, addresses: list[dict[str, Any]]) -> tuple[Any, Stubber, Any, Stubber]:
    """Service Quotas answering `quota` (None: access denied) and EC2 listing `addresses`."""
    quotas, quota_stub = _quotas()
    if quota is None:
        quota_stub.add_client_error("get_service_quota", "AccessDeniedException", "not allowed")
        quota_stub.add_client_error("get_aws_default_service_quota", "AccessDeniedException", "not allowed")
    else:
        quota_stub.add_response(
            "get_service_quota",
            _quota(preflight.EIP_QUOTA, EIP_NAME, quota),
            {"ServiceCode": "ec2", "QuotaCode": "L-0263D0A3"},
        )
    ec2, ec2_stub = stubbed("ec2")
    ec2_stub.add_response("describe_addresses", {"Addresses": addresses}, {})
    return quotas, quota_stub, ec2, ec2_stub


def _address(n: int, cluster: str | None = None) -> dict[str, Any]:
    tags = [{"Key": "swiftfleet:cluster", "Value": cluster}] if cluster else []
    return {"AllocationId": f"eipalloc-{n:08x}", "PublicIp": f"192.0.2.{n}", "Domain": "vpc", "Tags": tags}


def _eip_row(spec: AwsCluster, quota: float | None, addresses: list[dict[str, Any]]) -> preflight.Row:
    quotas, quota_stub, ec2, ec2_stub = _eip_stubs(quota, addresses)
    with quota_stub, ec2_stub:
        row = preflight.eip_quota(spec, ec2, quotas, efa=True)
    quota_stub.assert_no_pending_responses()
    ec2_stub.assert_no_pending_responses()
    return row


def test_eip_quota_counts_other_addresses_not_the_clusters_own(ssh_key: Path, tmp_path: Path) -> None:
    """A re-up reuses the cluster's own EIPs: only those of others (tagged or not) take from the quota."""
    spec = _spec(tmp_path, ssh_key, instance_type="p4d.24xlarge", node_count=3)
    addresses = [_address(1, "other"), _address(2), _address(3, "sf-test"), _address(4, "sf-test")]
    assert _eip_row(spec, 5.0, addresses) == preflight.Row(
        "Elastic IPs", "ok", "needs 3 of 3 free (2 of 5 taken)"
    )


def test_eip_quota_too_small_fails_in_one_line_with_the_command(ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, instance_type="p4d.24xlarge", node_count=8)
    row = _eip_row(spec, 5.0, [_address(1)])
    assert row == preflight.Row(
        "Elastic IPs",
        "fail",
        "needs 8 Elastic IPs (one per EFA node), 4 of the 5 allowed in us-east-1 are free: release unused ones "
        "or raise the quota to 9: aws service-quotas request-service-quota-increase --region us-east-1 "
        "--service-code ec2 --quota-code L-0263D0A3 --desired-value 9",
    )


def test_eip_quota_unreadable_assumes_the_default_and_says_so_only_on_failure(
    ssh_key: Path, tmp_path: Path
) -> None:
    small = _spec(tmp_path, ssh_key, instance_type="p5.48xlarge", node_count=5)
    assert _eip_row(small, None, []) == preflight.Row("Elastic IPs", "ok", "needs 5 of 5 free (0 of 5 taken)")
    big = _spec(tmp_path, ssh_key, instance_type="p5.48xlarge", node_count=16)
    row = _eip_row(big, None, [])
    assert row.status == "fail" and "\n" not in row.detail
    assert row.detail.startswith(
        "needs 16 Elastic IPs (one per EFA node), 5 of the 5 allowed in us-east-1 are free (quota not readable: "
        "AccessDeniedException: not allowed; AWS's default): release unused ones or raise the quota to 16: "
    )


def test_eip_quota_applied_value_wins_over_the_default(ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, instance_type="p5.48xlarge", node_count=64)
    assert _eip_row(spec, 100.0, [_address(n) for n in range(30)]) == preflight.Row(
        "Elastic IPs", "ok", "needs 64 of 70 free (30 of 100 taken)"
    )


def test_no_elastic_ip_and_no_call_without_efa(ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, node_count=16)
    quotas, quota_stub = _quotas()
    ec2, ec2_stub = stubbed("ec2")
    with quota_stub, ec2_stub:  # any call would fail: nothing is stubbed
        row = preflight.eip_quota(spec, ec2, quotas, efa=False)
    assert row == preflight.Row(
        "Elastic IPs", "ok", "none needed: g5.xlarge nodes get an automatic public IPv4"
    )


def test_efa_follows_the_instance_type_data() -> None:
    assert preflight.has_efa({"NetworkInfo": {"EfaSupported": True, "EfaInfo": {"MaximumEfaInterfaces": 4}}})
    assert not preflight.has_efa({"NetworkInfo": {"EfaSupported": False}})
    assert not preflight.has_efa(
        {"NetworkInfo": {"EfaSupported": True, "EfaInfo": {"MaximumEfaInterfaces": 0}}}
    )


# Capacity reservations and Capacity Blocks (moto does not implement DescribeCapacityReservations).

CR = "cr-0123456789abcdef0"
ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


def _reservation(**changes: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "CapacityReservationId": CR,
        "InstanceType": "p4d.24xlarge",
        "AvailabilityZone": "us-east-1b",
        "TotalInstanceCount": 4,
        "AvailableInstanceCount": 4,
        "State": "active",
        "ReservationType": "default",
    }
    found.update(changes)
    return found


def _reservation_row(
    spec: AwsCluster, found: dict[str, Any] | None, instances: list[dict[str, Any]] | None = None
) -> tuple[preflight.Row, list[str]]:
    """capacity_reservation() against a stubbed EC2 answering `found` (None: not found) and, when given, the
    cluster's instances."""
    ec2, stub = stubbed("ec2")
    if found is None:
        stub.add_client_error(
            "describe_capacity_reservations",
            "InvalidCapacityReservationId.NotFound",
            f"The capacity reservation ID '{CR}' does not exist",
        )
    else:
        stub.add_response(
            "describe_capacity_reservations",
            {"CapacityReservations": [found]},
            {"CapacityReservationIds": [CR]},
        )
    if instances is not None:
        stub.add_response(
            "describe_instances",
            {"Reservations": [{"Instances": instances}]},
            {
                "Filters": [
                    {"Name": "tag:swiftfleet:cluster", "Values": ["sf-test"]},
                    {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
                ]
            },
        )
    with stub:
        result = preflight.capacity_reservation(spec, ec2, ZONES)
    stub.assert_no_pending_responses()
    return result


def _reserved_spec(tmp_path: Path, ssh_key: Path, **settings: Any) -> AwsCluster:
    return _spec(tmp_path, ssh_key, instance_type="p4d.24xlarge", capacity_reservation_id=CR, **settings)


def test_reservation_pins_the_zone(ssh_key: Path, tmp_path: Path) -> None:
    spec = _reserved_spec(tmp_path, ssh_key, node_count=3)
    assert _reservation_row(spec, _reservation()) == (
        preflight.Row("reservation", "ok", f"capacity reservation {CR}: 4 of 4 free in us-east-1b"),
        ["us-east-1b"],
    )


def test_capacity_block_ok_names_its_end(ssh_key: Path, tmp_path: Path) -> None:
    spec = _reserved_spec(tmp_path, ssh_key, node_count=2, capacity_block=True)
    found = _reservation(ReservationType="capacity-block", EndDate=datetime(2026, 12, 5, 11, 30, tzinfo=UTC))
    assert _reservation_row(spec, found) == (
        preflight.Row(
            "reservation", "ok", f"Capacity Block {CR}: 4 of 4 free in us-east-1b, until 2026-12-05 11:30 UTC"
        ),
        ["us-east-1b"],
    )


@pytest.mark.parametrize(
    ("settings", "changes", "problem"),
    [
        ({}, {"ReservationType": "capacity-block"}, "is a Capacity Block for ML: set capacity_block: true"),
        (
            {"capacity_block": True},
            {},
            "is an On-Demand Capacity Reservation, not a Capacity Block: leave capacity_block out",
        ),
        (
            {"capacity_block": True},
            {
                "ReservationType": "capacity-block",
                "State": "scheduled",
                "StartDate": datetime(2026, 12, 4, 11, 30, tzinfo=UTC),
            },
            "is scheduled and starts at 2026-12-04 11:30 UTC: run `cluster up` from then",
        ),
        ({}, {"State": "expired"}, "is expired, not active: nothing can launch into it"),
        ({}, {"InstanceType": "p5.48xlarge"}, "reserves p5.48xlarge, not the cluster file's p4d.24xlarge"),
        (
            {},
            {"AvailabilityZone": "us-east-1d"},
            "lies in us-east-1d, not among the zones to use (us-east-1a, us-east-1b, us-east-1c)",
        ),
    ],
    ids=["block-not-said", "said-block-is-not", "block-not-started", "expired", "other-type", "other-zone"],
)
def test_reservation_that_cannot_take_the_nodes_fails(
    settings: dict[str, Any], changes: dict[str, Any], problem: str, ssh_key: Path, tmp_path: Path
) -> None:
    spec = _reserved_spec(tmp_path, ssh_key, **settings)
    kind = "Capacity Block" if settings.get("capacity_block") else "capacity reservation"
    assert _reservation_row(spec, _reservation(**changes)) == (
        preflight.Row("reservation", "fail", f"{kind} {CR}: {problem}"),
        [],
    )


def test_missing_reservation_fails(ssh_key: Path, tmp_path: Path) -> None:
    row, zones = _reservation_row(_reserved_spec(tmp_path, ssh_key), None)
    assert row == preflight.Row(
        "reservation",
        "fail",
        f"capacity reservation {CR}: InvalidCapacityReservationId.NotFound: The capacity reservation ID '{CR}' "
        "does not exist",
    )
    assert zones == []


def test_reservation_room_counts_the_clusters_own_nodes(ssh_key: Path, tmp_path: Path) -> None:
    """A re-up (or recovery) of a 4-node cluster whose 3 live nodes already hold their places in it."""
    spec = _reserved_spec(tmp_path, ssh_key, node_count=4)
    mine = [{"InstanceId": f"i-0{n}", "CapacityReservationId": CR} for n in range(3)]
    other = [{"InstanceId": "i-0other", "CapacityReservationId": "cr-0fffffffffffffff0"}]
    row, zones = _reservation_row(spec, _reservation(AvailableInstanceCount=1), mine + other)
    assert row.status == "ok" and zones == ["us-east-1b"]
    row, zones = _reservation_row(spec, _reservation(AvailableInstanceCount=1), mine[:1] + other)
    assert row == preflight.Row(
        "reservation",
        "fail",
        f"capacity reservation {CR}: has 1 of 4 instances free (and 1 of this cluster); the cluster needs 4",
    )


class _WithReservation:
    """moto's EC2 client, with DescribeCapacityReservations (which moto lacks) answered by a stubbed client."""

    def __init__(self, ec2: Any, stubbed: Any) -> None:
        self._ec2 = ec2
        self.describe_capacity_reservations = stubbed.describe_capacity_reservations

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ec2, name)


@pytest.mark.moto
def test_run_with_a_reservation_uses_its_zone_only_and_no_vcpu_quota(
    aws: FaultProxy, ssh_key: Path, tmp_path: Path
) -> None:
    spec = _spec(tmp_path, ssh_key, instance_type="p4de.24xlarge", capacity_reservation_id=CR)
    clients = preflight.Clients.for_region(REGION)
    answers, stub = stubbed("ec2")
    found = _reservation(InstanceType="p4de.24xlarge", AvailabilityZone="us-east-1c")
    stub.add_response("describe_capacity_reservations", {"CapacityReservations": [found]})
    with stub:
        report = preflight.run(spec, dataclasses.replace(clients, ec2=_WithReservation(clients.ec2, answers)))
    rows = _rows(report)
    assert rows["reservation"] == ("ok", f"capacity reservation {CR}: 4 of 4 free in us-east-1c")
    assert rows["subnet"] == ("ok", "default subnet in us-east-1c")
    assert rows["vCPU quota"] == ("ok", f"not needed: the nodes launch into {CR}")
    # p4de has EFA: moto has no Service Quotas data, so AWS's default of 5 counts, and 2 nodes fit.
    assert rows["Elastic IPs"] == ("ok", "needs 2 of 5 free (0 of 5 taken)")
    assert report.zones == ["us-east-1c"] and not report.failed
