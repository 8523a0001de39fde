"""The estimate printed before apply: on-demand from the kit's table, spot from EC2's price history."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from swiftfleet import pricing
from swiftfleet.settings import AwsCluster
from tests.aws.conftest import REGION, FaultProxy, aws_spec, stubbed


def _spec(tmp_path: Path, ssh_key: Path, **settings: Any) -> AwsCluster:
    return aws_spec(tmp_path / "c.yml", ssh_key, **settings)


def _ec2() -> tuple[Any, Stubber]:
    return stubbed("ec2")


def test_on_demand_uses_the_table_and_the_ttl_caps_it(ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, instance_type="p4d.24xlarge", node_count=2, ttl_hours=6)
    client, stub = _ec2()
    with stub:  # on-demand asks EC2 nothing: an unexpected call would fail here
        est = pricing.estimate(spec, "us-east-1a", client)
    assert est.hourly == pytest.approx(2 * 32.773)
    assert est.ttl_cap == pytest.approx(2 * 32.773 * 6)
    assert est.lines() == [
        "estimate: 2 x p4d.24xlarge: on-demand $32.773/h each (us-east-1 list price; regions differ)",
        "estimate: $65.55/h for the cluster; the 6 h TTL caps one run at $393.28",
    ]


@pytest.mark.parametrize(
    ("settings", "note"),
    [
        (
            {},
            "estimate: capacity reservation cr-0123456789abcdef0 bills at the on-demand rate whether or not nodes "
            "run in it: these nodes use it, they do not add to it",
        ),
        (
            {"capacity_block": True},
            "estimate: Capacity Block cr-0123456789abcdef0 was paid in full when bought: its nodes add no "
            "instance charge (the figures above are list prices)",
        ),
    ],
    ids=["reservation", "capacity-block"],
)
def test_a_reservation_says_how_it_is_billed(
    settings: dict[str, Any], note: str, ssh_key: Path, tmp_path: Path
) -> None:
    spec = _spec(
        tmp_path,
        ssh_key,
        instance_type="p4d.24xlarge",
        capacity_reservation_id="cr-0123456789abcdef0",
        **settings,
    )
    client, stub = _ec2()
    with stub:
        lines = pricing.estimate(spec, "us-east-1a", client).lines()
    assert len(lines) == 3 and lines[2] == note


def test_spot_takes_the_newest_price_of_the_zone(ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, spot=True, node_count=4)
    client, stub = _ec2()
    now = datetime.now(UTC)
    history = [
        {"AvailabilityZone": "us-east-1b", "SpotPrice": "0.9", "Timestamp": now, "InstanceType": "g5.xlarge"},
        {"AvailabilityZone": "us-east-1a", "SpotPrice": "0.5", "Timestamp": now - timedelta(hours=2)},
        {"AvailabilityZone": "us-east-1a", "SpotPrice": "0.4", "Timestamp": now - timedelta(minutes=5)},
    ]
    stub.add_response("describe_spot_price_history", {"SpotPriceHistory": history}, {
        "InstanceTypes": ["g5.xlarge"], "AvailabilityZone": "us-east-1a", "ProductDescriptions": ANY, "StartTime": ANY,
    })  # fmt: skip
    with stub:
        est = pricing.estimate(spec, "us-east-1a", client)
    assert est.spot_per_node == 0.4
    assert est.hourly == pytest.approx(1.6)
    assert est.ttl_cap == pytest.approx(1.6 * 12)
    assert "spot $0.4000/h each in us-east-1a (latest price; on-demand ceiling $4.02/h)" in est.lines()[0]


def test_spot_without_a_price_shows_the_on_demand_ceiling(ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, spot=True)
    client, stub = _ec2()
    stub.add_response("describe_spot_price_history", {"SpotPriceHistory": []})
    with stub:
        est = pricing.estimate(spec, "us-east-1a", client)
    assert est.hourly is None
    assert est.ttl_cap == pytest.approx(2 * 1.006 * 12)
    assert est.lines() == [
        "estimate: 2 x g5.xlarge: spot price in us-east-1a unknown; at most the on-demand ceiling $2.01/h",
        "estimate: unknown for the cluster; the 12 h TTL caps one run at $24.14",
    ]


@pytest.mark.moto
def test_spot_price_from_moto(aws: FaultProxy, ssh_key: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, ssh_key, spot=True)
    ec2 = boto3.client("ec2", region_name=REGION)
    served = ec2.describe_spot_price_history(InstanceTypes=["g5.xlarge"])["SpotPriceHistory"]
    expected = float(
        max((h for h in served if h["AvailabilityZone"] == "us-east-1b"), key=lambda h: h["Timestamp"])[
            "SpotPrice"
        ]
    )
    assert pricing.estimate(spec, "us-east-1b", ec2).spot_per_node == expected
