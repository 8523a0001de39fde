"""What the cluster will cost per hour, printed before apply, and the most its TTL lets it cost.

On-demand prices come from the kit's table (us-east-1 list prices; the Pricing API needs other credentials and
is not regional). Spot prices come from EC2's spot price history in the zone the cluster will be created in.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from swiftfleet.instance_types import INSTANCE_TYPES
from swiftfleet.settings import AwsCluster


@dataclass(frozen=True)
class Estimate:
    nodes: int
    instance_type: str
    zone: str
    on_demand_per_node: float
    spot: bool
    spot_per_node: float | None  # None: spot, but no price could be read
    ttl_hours: int
    reservation: str | None = None  # the capacity reservation the nodes launch into
    capacity_block: bool = False  # ... a Capacity Block for ML

    @property
    def ceiling(self) -> float:
        """Hourly cost at on-demand prices: what spot can never exceed."""
        return self.nodes * self.on_demand_per_node

    @property
    def hourly(self) -> float | None:
        if not self.spot:
            return self.ceiling
        return None if self.spot_per_node is None else self.nodes * self.spot_per_node

    @property
    def ttl_cap(self) -> float:
        """The most one TTL period can cost: nodes power off (and terminate) after ttl_hours."""
        return (self.ceiling if self.hourly is None else self.hourly) * self.ttl_hours

    def lines(self) -> list[str]:
        what = f"{self.nodes} x {self.instance_type}"
        if not self.spot:
            price = f"on-demand ${self.on_demand_per_node:.3f}/h each (us-east-1 list price; regions differ)"
        elif self.spot_per_node is None:
            price = f"spot price in {self.zone} unknown; at most the on-demand ceiling ${self.ceiling:.2f}/h"
        else:
            price = (
                f"spot ${self.spot_per_node:.4f}/h each in {self.zone} (latest price; on-demand ceiling "
                f"${self.ceiling:.2f}/h)"
            )
        hourly = "unknown" if self.hourly is None else f"${self.hourly:.2f}/h"
        return [
            f"estimate: {what}: {price}",
            f"estimate: {hourly} for the cluster; the {self.ttl_hours} h TTL caps one run at ${self.ttl_cap:.2f}",
            *self._reserved(),
        ]

    def _reserved(self) -> list[str]:
        if self.capacity_block:
            return [
                f"estimate: Capacity Block {self.reservation} was paid in full when bought: its nodes add no "
                "instance charge (the figures above are list prices)"
            ]
        if self.reservation:
            return [
                f"estimate: capacity reservation {self.reservation} bills at the on-demand rate whether or not "
                "nodes run in it: these nodes use it, they do not add to it"
            ]
        return []


def latest_spot_price(ec2: Any, instance_type: str, zone: str) -> float | None:
    """The spot price in effect now in `zone` (Linux), or None when EC2 gives none."""
    try:
        history = ec2.describe_spot_price_history(
            InstanceTypes=[instance_type],
            AvailabilityZone=zone,
            ProductDescriptions=["Linux/UNIX", "Linux/UNIX (Amazon VPC)"],
            StartTime=datetime.now(UTC),
        )["SpotPriceHistory"]
    except (BotoCoreError, ClientError, ResponseParserError):
        return None
    # The zone filter is not honoured by every implementation: filter again, then take the newest entry.
    in_zone = [h for h in history if h.get("AvailabilityZone") == zone]
    if not in_zone:
        return None
    return float(max(in_zone, key=lambda h: h["Timestamp"])["SpotPrice"])


def estimate(spec: AwsCluster, zone: str, ec2: Any) -> Estimate:
    return Estimate(
        nodes=spec.node_count,
        instance_type=spec.instance_type,
        zone=zone,
        on_demand_per_node=INSTANCE_TYPES[spec.instance_type].usd_per_hour,
        spot=spec.spot,
        spot_per_node=latest_spot_price(ec2, spec.instance_type, zone) if spec.spot else None,
        ttl_hours=spec.ttl_hours,
        reservation=spec.capacity_reservation_id,
        capacity_block=spec.capacity_block,
    )
