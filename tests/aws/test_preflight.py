"""Preflight against moto (through the test proxy), and the vCPU quota paths moto cannot serve with a Stubber."""

from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from swiftfleet import preflight
from swiftfleet.errors import SwiftfleetError
from swiftfleet.settings import AwsCluster
from tests.aws.conftest import REGION, FaultProxy, aws_spec


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
    client = boto3.client(
        "service-quotas", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    return client, Stubber(client)


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
