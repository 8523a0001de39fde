"""GPU instance types the kit knows: GPUs, GPU memory, EFA interfaces and an on-demand price.

Prices are us-east-1 on-demand USD per hour (public list prices, 2025); they feed the estimate printed before
apply, not billing. Terraform sizes EFA from the live instance-type data; the EFA column here is only for docs and
for checks that run before any cloud call.
"""

from typing import NamedTuple


class InstanceType(NamedTuple):
    gpus: int
    gpu_name: str
    gpu_memory_gib: int
    efa_interfaces: int
    usd_per_hour: float


def _g(gpus: int, name: str, mem: int, efa: int, usd: float) -> InstanceType:
    return InstanceType(gpus, name, mem, efa, usd)


INSTANCE_TYPES: dict[str, InstanceType] = {
    "g5.xlarge": _g(1, "A10G", 24, 0, 1.006),
    "g5.2xlarge": _g(1, "A10G", 24, 0, 1.212),
    "g5.4xlarge": _g(1, "A10G", 24, 0, 1.624),
    "g5.8xlarge": _g(1, "A10G", 24, 1, 2.448),
    "g5.16xlarge": _g(1, "A10G", 24, 1, 4.096),
    "g5.12xlarge": _g(4, "A10G", 24, 1, 5.672),
    "g5.24xlarge": _g(4, "A10G", 24, 1, 8.144),
    "g5.48xlarge": _g(8, "A10G", 24, 1, 16.288),
    "g6.xlarge": _g(1, "L4", 24, 0, 0.805),
    "g6.2xlarge": _g(1, "L4", 24, 0, 0.978),
    "g6.4xlarge": _g(1, "L4", 24, 0, 1.323),
    "g6.8xlarge": _g(1, "L4", 24, 1, 2.014),
    "g6.16xlarge": _g(1, "L4", 24, 1, 3.397),
    "g6.12xlarge": _g(4, "L4", 24, 1, 4.602),
    "g6.24xlarge": _g(4, "L4", 24, 1, 6.675),
    "g6.48xlarge": _g(8, "L4", 24, 1, 13.35),
    "g6e.xlarge": _g(1, "L40S", 48, 0, 1.861),
    "g6e.2xlarge": _g(1, "L40S", 48, 0, 2.242),
    "g6e.4xlarge": _g(1, "L40S", 48, 0, 3.004),
    "g6e.8xlarge": _g(1, "L40S", 48, 0, 4.529),
    "g6e.16xlarge": _g(1, "L40S", 48, 0, 7.578),
    "g6e.12xlarge": _g(4, "L40S", 48, 1, 10.493),
    "g6e.24xlarge": _g(4, "L40S", 48, 2, 15.066),
    "g6e.48xlarge": _g(8, "L40S", 48, 4, 30.131),
    "p4d.24xlarge": _g(8, "A100", 40, 4, 32.773),
    "p4de.24xlarge": _g(8, "A100", 80, 4, 40.966),
    "p5.48xlarge": _g(8, "H100", 80, 32, 98.32),
    "p5e.48xlarge": _g(8, "H200", 141, 32, 108.0),
    "p5en.48xlarge": _g(8, "H200", 141, 16, 110.0),
    "p6-b200.48xlarge": _g(8, "B200", 179, 8, 113.93),
}


def family(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]
