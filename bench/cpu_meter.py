"""CPU-seconds spent by the controller and by a local cluster's nodes, read at phase boundaries.

Local nodes share the machine's cores, so a benchmark's wall time alone hides how much work a flow does.
Controller: this process moves itself into a cpuacct cgroup of its own (cgroups v1) at the start, so every process
it starts counts, the detached SSH master connections (ControlPersist) included, which getrusage(RUSAGE_CHILDREN)
never sees; without a writable cpuacct hierarchy it falls back to getrusage (self + waited-for children) and says so.
Nodes: each container's own cgroup counter (v1 cpuacct.usage, v2 cpu.stat usage_usec); processes started with
`docker exec` count there too, so a benchmark should read node files through /proc/<pid>/root instead.
"""

import contextlib
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class Sample:
    wall: float
    controller: float
    nodes: float


@dataclass(frozen=True)
class Figures:
    """What a stretch between two samples cost: wall seconds, CPU-seconds of the controller and of the nodes."""

    wall: float
    controller: float
    nodes: float

    @property
    def cpu(self) -> float:
        return self.controller + self.nodes


def between(a: Sample, b: Sample) -> Figures:
    return Figures(b.wall - a.wall, b.controller - a.controller, b.nodes - a.nodes)


def _seconds(group: Path) -> float | None:
    """CPU-seconds of a cgroup directory (v1 cpuacct or v2), None if it has no counter."""
    if (group / "cpuacct.usage").is_file():
        return int((group / "cpuacct.usage").read_text()) / 1e9
    if (group / "cpu.stat").is_file():
        for line in (group / "cpu.stat").read_text().splitlines():
            key, value = line.split()
            if key == "usage_usec":
                return int(value) / 1e6
    return None


def container_group(container_id: str) -> Path:
    """The cgroup directory of a Docker container (cgroupfs or systemd driver; v1 or v2)."""
    candidates = [
        CGROUP / "cpuacct" / "docker" / container_id,
        CGROUP / "cpu,cpuacct" / "docker" / container_id,
        CGROUP / "docker" / container_id,
        CGROUP / "system.slice" / f"docker-{container_id}.scope",
    ]
    for group in candidates:
        if _seconds(group) is not None:
            return group
    raise SystemExit(f"no CPU counter for container {container_id[:12]} under {CGROUP}")


class CpuMeter:
    """Wall clock and CPU-seconds (controller, nodes) at any moment; close() puts this process back."""

    def __init__(self) -> None:
        self.node_groups: list[Path] = []
        self._home: Path | None = None
        self._own: Path | None = None
        root = CGROUP / "cpuacct"
        line = next((x for x in Path("/proc/self/cgroup").read_text().splitlines() if ":cpuacct" in x), None)
        if line is not None and root.is_dir():
            home = root / line.split(":", 2)[2].lstrip("/")
            own = home / f"swiftfleet-bench-{os.getpid()}"
            try:
                own.mkdir()
                (own / "cgroup.procs").write_text(str(os.getpid()))
                self._home, self._own = home, own
            except OSError:
                with contextlib.suppress(OSError):
                    own.rmdir()
        if self._own is None:
            print("controller CPU: getrusage (self + waited-for children; detached SSH masters not counted)")

    def sample(self) -> Sample:
        if self._own is not None:
            controller = _seconds(self._own) or 0.0
        else:
            me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            controller = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
        nodes = sum(_seconds(g) or 0.0 for g in self.node_groups)
        return Sample(time.monotonic(), controller, nodes)

    def close(self) -> None:
        """Move this process and whatever it left running (SSH masters) back, then remove the cgroup."""
        if self._own is None or self._home is None:
            return
        for _ in range(50):
            pids = (self._own / "cgroup.procs").read_text().split()
            for pid in pids:
                with contextlib.suppress(OSError):  # gone meanwhile
                    (self._home / "cgroup.procs").write_text(pid)
            try:
                self._own.rmdir()
                return
            except OSError:
                time.sleep(0.1)
        print(f"could not remove {self._own}: remove it once its processes end")
