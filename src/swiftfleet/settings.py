"""The cluster file (`cluster.yml`): which nodes to get and where. Validated before any cloud or host call.

Three providers share one inventory format:
- `local`: systemd + sshd containers on a private bridge (the embedded default, no AWS settings needed);
- `aws`: the Terraform module under terraform/;
- `hosts`: machines made any other way, listed in a hosts file.
"""

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    RootModel,
    field_validator,
    model_validator,
)

from swiftfleet import ports
from swiftfleet.errors import SwiftfleetError
from swiftfleet.instance_types import INSTANCE_TYPES
from swiftfleet.validation import parse, read_yaml

DLAMI_PARAMETER = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
SSH_KEY_PREFIXES = ("ssh-ed25519 ", "ssh-rsa ", "ecdsa-sha2-")
# S3 general purpose bucket naming rules, then the key prefix. The prefix becomes an IAM policy resource, so
# the characters IAM reads as wildcards or policy variables (* ? $) are refused, and so are empty path parts.
S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
S3_BUCKET_NOT = re.compile(
    r"\.\.|^\d+\.\d+\.\d+\.\d+$|^(xn--|sthree-|amzn-s3-demo-)|(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$"
)
S3_PREFIX = re.compile(r"^[^*?$\x00-\x1f\x7f]{0,512}$")
IAM_NAME = r"^[A-Za-z0-9+=,.@_-]{1,128}$"
# EC2 capacity reservation ids (On-Demand Capacity Reservations and Capacity Blocks for ML alike).
RESERVATION_ID = re.compile(r"^cr-([0-9a-f]{8}|[0-9a-f]{17})$")


def _s3_uri(uri: str) -> str:
    """An s3://bucket[/prefix] the nodes may use; a prefix covers the object of that name and everything under
    it as a folder (never `prefix-other`)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} must start with s3://")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not S3_BUCKET.match(bucket) or S3_BUCKET_NOT.search(bucket):
        raise ValueError(
            f"{uri!r}: {bucket!r} is not a valid S3 bucket name (3-63 of a-z 0-9 . -, starting and ending "
            "with a letter or digit)"
        )
    if not S3_PREFIX.match(prefix) or "//" in f"/{prefix}":
        raise ValueError(
            f"{uri!r}: the key prefix must not hold wildcards or policy variables (* ? $), control "
            "characters or empty parts (//), and at most 512 characters"
        )
    return uri


S3Uri = Annotated[str, AfterValidator(_s3_uri)]


def _cidr(value: object) -> ipaddress.IPv4Network:
    """An IPv4 network written as text: YAML reads a bare number as an int, which ipaddress takes as an address."""
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a CIDR; write it as text such as 203.0.113.7/32")
    try:
        return ipaddress.IPv4Network(value)
    except ValueError:
        pass
    try:
        network = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 CIDR such as 203.0.113.7/32") from None
    raise ValueError(f"{value}: host bits set: did you mean {network}?")


Cidr = Annotated[ipaddress.IPv4Network, BeforeValidator(_cidr)]
# The shortest prefix a rule may open to without its explicit allow_*_from_anywhere: /0 and a pair of /1s open
# the same.
MIN_PREFIX = 8
MAX_TTL_HOURS = 168
# Minutes without a job unit or SSH session before a node powers itself off (roles/idle_stop); 0: never.
IdleStopMinutes = Annotated[int, Field(ge=0, le=7 * 24 * 60, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalCluster(_Strict):
    provider: Literal["local"] = "local"
    name: Annotated[str, Field(pattern=NAME_PATTERN)] = "local"
    node_count: Annotated[int, Field(ge=1, le=8, strict=True)] = 2
    # A private range of the project's own; the bridge and its fixed IPs live only on this machine.
    subnet: Cidr = ipaddress.IPv4Network("172.30.0.0/24")
    image: str = "swiftfleet-node:bookworm"
    # Off: the nodes share this machine, which a power-off must never touch (only its container ends).
    idle_stop_minutes: IdleStopMinutes = 0

    @field_validator("subnet")
    @classmethod
    def _private_subnet(cls, v: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not v.is_private or v.prefixlen > 28:
            raise ValueError(f"{v} must be a private range of /28 or larger")
        return v


class AwsCluster(_Strict):
    provider: Literal["aws"]
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")]
    instance_type: str
    node_count: Annotated[int, Field(ge=1, le=64, strict=True)]
    admin_cidrs: Annotated[list[Cidr], Field(min_length=1)]
    allow_ssh_from_anywhere: bool = False
    client_cidrs: list[Cidr] = []
    allow_deploy_from_anywhere: bool = False
    deploy_port: Annotated[int, Field(ge=1, le=65535)] = 8000
    public_key_file: Path
    private_key_file: Path | None = None
    availability_zones: list[Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")]] = []
    subnet_id: Annotated[str, Field(pattern=r"^subnet-[0-9a-f]+$")] | None = None
    spot: bool = False
    ttl_hours: Annotated[int, Field(ge=1, le=MAX_TTL_HOURS)] = 12
    # An hour: time to fetch results and start the next step (export, eval) after a job, while a forgotten
    # cluster bills at most about an hour past its last work instead of running on to ttl_hours.
    idle_stop_minutes: IdleStopMinutes = 60
    root_volume_gib: Annotated[int, Field(ge=50, le=16384)] = 200
    placement_group: bool | None = None  # None: on where the type supports it
    ami_ssm_parameter: Annotated[str, Field(pattern=r"^/")] = DLAMI_PARAMETER
    ami_id: Annotated[str, Field(pattern=r"^ami-[0-9a-f]+$")] | None = None
    ssh_user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]*$")] = "ubuntu"
    # S3 access of the nodes (jobs' s3:// models, datasets, outputs): none by default. Either prefixes, for which
    # the module makes a role of least privilege, or an existing instance profile.
    s3_read: Annotated[list[S3Uri], Field(max_length=20)] = []
    s3_write: Annotated[list[S3Uri], Field(max_length=20)] = []
    instance_profile: Annotated[str, Field(pattern=IAM_NAME)] | None = None
    # A capacity reservation every node launches into (targeted): an On-Demand Capacity Reservation, or with
    # capacity_block: true a Capacity Block for ML. It fixes the AZ (preflight reads it) and the placement group.
    capacity_reservation_id: str | None = None
    capacity_block: bool = False
    # efs: one encrypted Amazon EFS file system for the cluster (terraform/shared_fs.tf), mounted by every node at
    # /shared for the hub cache; it bills per GB stored and `cluster down` deletes it with all it holds.
    shared_fs: Literal["none", "efs"] = "none"

    @field_validator("capacity_reservation_id")
    @classmethod
    def _reservation_id(cls, v: str | None) -> str | None:
        if v is not None and not RESERVATION_ID.match(v):
            raise ValueError(f"{v!r} is not a capacity reservation id such as cr-0123456789abcdef0")
        return v

    @field_validator("instance_type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        if v not in INSTANCE_TYPES:
            raise ValueError(f"unknown GPU instance type {v!r}; known: {', '.join(sorted(INSTANCE_TYPES))}")
        return v

    @field_validator("deploy_port")
    @classmethod
    def _deploy_port(cls, v: int) -> int:
        # terraform/variables.tf refuses the same ports, but only at apply time.
        problem = ports.server_port_problem(v)
        if problem:
            raise ValueError(f"{problem}; pick another, e.g. 8000")
        return v

    @field_validator("public_key_file", "private_key_file")
    @classmethod
    def _readable(cls, v: Path | None) -> Path | None:
        if v is None:
            return v
        path = v.expanduser()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise ValueError(f"key file {path} does not exist or is not readable")
        return path.resolve()

    @field_validator("public_key_file")
    @classmethod
    def _public_key(cls, v: Path) -> Path:
        if not v.read_text(errors="replace").startswith(SSH_KEY_PREFIXES):
            raise ValueError(f"{v} is not an OpenSSH public key (ssh-ed25519/ssh-rsa/ecdsa)")
        return v

    @model_validator(mode="after")
    def _checks(self) -> "AwsCluster":
        self._not_too_wide("admin_cidrs", "allow_ssh_from_anywhere", "SSH", "your own CIDR")
        self._not_too_wide(
            "client_cidrs",
            "allow_deploy_from_anywhere",
            f"the deploy API (port {self.deploy_port})",
            "your clients' CIDRs",
        )
        if self.instance_profile and (self.s3_read or self.s3_write):
            raise ValueError(
                "instance_profile: give either an existing instance profile or s3_read/s3_write "
                "(for which swiftfleet makes one), not both"
            )
        for zone in self.availability_zones:
            if zone[:-1] != self.region:
                raise ValueError(f"availability_zones: {zone} does not lie in region {self.region}")
        if self.subnet_id and len(self.availability_zones) > 1:
            raise ValueError("availability_zones: subnet_id pins one AZ: give at most one entry with it")
        self._reservation_fits()
        if self.private_key_file is None:
            private = self.public_key_file.with_suffix("")
            if private == self.public_key_file or not private.is_file():
                raise ValueError("private_key_file: not given and no private key beside public_key_file")
            object.__setattr__(self, "private_key_file", private)
        return self

    def _reservation_fits(self) -> None:
        """What a targeted reservation rules out; terraform/variables.tf refuses the same, but only at apply."""
        if self.capacity_block and not self.capacity_reservation_id:
            raise ValueError(
                "capacity_block: true needs capacity_reservation_id (the Capacity Block's cr- id)"
            )
        if not self.capacity_reservation_id:
            return
        if self.spot:
            raise ValueError(
                "spot: a capacity reservation (a Capacity Block too) holds on-demand capacity; drop spot: true "
                "or capacity_reservation_id"
            )
        if self.placement_group:
            raise ValueError(
                "placement_group: true conflicts with capacity_reservation_id (a targeted reservation places the "
                "nodes itself); leave placement_group out"
            )
        if len(self.availability_zones) > 1:
            raise ValueError(
                "availability_zones: capacity_reservation_id pins the reservation's AZ: give at most one entry "
                "with it"
            )

    def _not_too_wide(self, field: str, flag: str, opens: str, instead: str) -> None:
        for cidr in getattr(self, field):
            if cidr.prefixlen < MIN_PREFIX and not getattr(self, flag):
                reach = (
                    "the whole internet"
                    if cidr.prefixlen == 0
                    else f"{cidr.num_addresses:,} addresses (a prefix shorter than /{MIN_PREFIX})"
                )
                raise ValueError(
                    f"{field}: {cidr} opens {opens} to {reach}; name {instead} or set {flag}: true"
                )


class HostsCluster(_Strict):
    provider: Literal["hosts"]
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    hosts_file: Path
    # Off: these are someone's own machines; set it for cloud VMs made another way.
    idle_stop_minutes: IdleStopMinutes = 0


ClusterSpec = LocalCluster | AwsCluster | HostsCluster


class ClusterFile(RootModel[Annotated[ClusterSpec, Field(discriminator="provider")]]):
    """The whole file: one of the providers' settings, picked by `provider`."""


def load_cluster(path: Path | None) -> ClusterSpec:
    """Read the cluster file; with none given (nor $SWIFTFLEET_CLUSTER), the local default."""
    if path is None and os.environ.get("SWIFTFLEET_CLUSTER"):
        path = Path(os.environ["SWIFTFLEET_CLUSTER"])
    if path is None:
        return LocalCluster()
    data = read_yaml(path, "cluster file")
    if not isinstance(data, dict):
        raise SwiftfleetError(f"cluster file {path}: expected a mapping of settings")
    if "provider" not in data:
        _refuse_missing_provider(data, path)
        data["provider"] = "local"
    spec = parse(ClusterFile, data, f"cluster file {path}").root
    if isinstance(spec, HostsCluster) and not spec.hosts_file.is_absolute():
        spec = spec.model_copy(update={"hosts_file": (path.parent / spec.hosts_file).resolve()})
    return spec


def _refuse_missing_provider(data: dict[object, object], path: Path) -> None:
    """A file without `provider:` is local; when its keys are another provider's, the missing line is the
    mistake, not each of those keys."""
    foreign = [str(k) for k in data if k not in LocalCluster.model_fields]
    for spec in (AwsCluster, HostsCluster):
        if foreign and set(foreign) <= set(spec.model_fields):
            tag = get_args(spec.model_fields["provider"].annotation)[0]
            raise SwiftfleetError(
                f"cluster file {path}: provider: missing; these keys ({', '.join(foreign)}) belong to provider: {tag}"
            )
