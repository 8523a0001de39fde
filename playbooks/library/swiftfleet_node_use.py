#!/usr/bin/python
"""Ansible module: what a node's processors, memory and GPUs are doing now, in one line (status.yml)."""

DOCUMENTATION = r"""
module: swiftfleet_node_use
short_description: A node's load, memory and GPU use now
description:
  - The 1-minute load against the processor count, memory in use (MemTotal - MemAvailable of /proc/meminfo), and
    for each GPU its utilization and memory from C(nvidia-smi --query-gpu) where nvidia-smi is installed. Reads
    only; changes nothing.
options: {}
"""

RETURN = r"""
line: {description: "One line: `load 1.3/8 CPUs, memory 41.0/186.7 GiB, GPU0 87% 30.1/80.0 GiB, ...`", type: str, returned: always}
gpus: {description: "Each GPU: index, utilization (%), memory used and total (GiB)", type: list, elements: dict, returned: always}
"""

import os

from ansible.module_utils.basic import AnsibleModule

QUERY = "--query-gpu=index,utilization.gpu,memory.used,memory.total"


def memory_gib() -> tuple[float, float]:
    info = {}
    with open("/proc/meminfo", encoding="ascii") as f:
        for line in f:
            key, value = line.split(":", 1)
            info[key] = int(value.split()[0]) / 2**20  # kB -> GiB
    return info["MemTotal"] - info["MemAvailable"], info["MemTotal"]


def gpu_use(module: AnsibleModule) -> tuple[list[dict], str]:  # type: ignore[type-arg]
    smi = module.get_bin_path("nvidia-smi")
    if smi is None:
        return [], "no GPU (no nvidia-smi)"
    rc, out, err = module.run_command([smi, QUERY, "--format=csv,noheader,nounits"])
    if rc != 0:
        text = (err or out).strip()
        return [], f"GPUs: nvidia-smi failed ({text.splitlines()[0] if text else f'exit status {rc}'})"
    gpus = []
    for row in out.strip().splitlines():
        index, util, used, total = (x.strip() for x in row.split(","))
        gpus.append(
            {"index": int(index), "util": int(util), "used_gib": int(used) / 1024, "total_gib": int(total) / 1024}
        )
    said = ", ".join(f"GPU{g['index']} {g['util']}% {g['used_gib']:.1f}/{g['total_gib']:.1f} GiB" for g in gpus)
    return gpus, said or "no GPU (nvidia-smi lists none)"


def main() -> None:
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    used, total = memory_gib()
    gpus, gpu_line = gpu_use(module)
    line = f"load {os.getloadavg()[0]:.1f}/{os.cpu_count()} CPUs, memory {used:.1f}/{total:.1f} GiB, {gpu_line}"
    module.exit_json(changed=False, line=line, gpus=gpus)


if __name__ == "__main__":
    main()
