"""The seed's manual flow against the kit's, phase by phase, on fresh local clusters of the same size (issue 12).

    .venv/bin/python bench/manual_vs_kit.py [--nodes 4] [--rounds 1] [--logs DIR] [--profile]

Manual flow: bench/manual_flow.sh, plain ssh/scp, one node after the other (its setup.sh: bench/manual_setup.sh).
Kit flow: `swiftfleet check`, playbooks/setup.yml twice, one `train.yml -e @job` (split at its own tasks).
Phases (each from its first command until the next phase begins):
  check   manual: ssh in (host name, cores); kit: `swiftfleet check` (login, GPUs, every node reaches rank 0's
          rendezvous port)
  setup   fresh nodes to uv + ms-swift + CPU torch (manual: scp + run setup.sh; kit: setup.yml)
  rerun   the same command again, with nothing to change
  stage   model and dataset onto every node (kit: train.yml from its start, planning included, to "Start rank 0")
  launch  from the first launch command until every rank's log shows the process group (world_size N)
  train   from there until rank 0's process ended (manual: `tail --pid` returned; kit: "Collect the job" begins)
  fetch   rank 0's output (the checkpoint) and every rank's log on the controller
Sums: setup+stage+launch (issue 12's goal: kit <= 0.5x manual, never slower on a phase) and stage..fetch.
--baked adds a third flow: after the kit's flow, its node 0 is baked into an image (`swiftfleet image bake`, the
seconds printed apart: once per stack), and the kit's flow runs again on a fresh cluster of the same size started
from that image (sfbm3 on 172.31.243.0/24); the image is removed at the end.
The job: the tiny model the tests make, LoRA, 20 steps, one process a node, tests/e2e's CPU arguments; a run
counts only if its fetched output holds checkpoint-20.
Each flow gets a fresh cluster (manual: sfbm1 on 172.31.246.0/24, kit: sfbm2 on 172.31.247.0/24), up before and
down after its flow, also on failure; rounds alternate which flow goes first; the table shows medians. The nodes'
package lists are aged to two days first, as on a real image (a node image younger than apt's cache_valid_time
would skip `apt-get update` and find no package to install).
Same sources and cache for both: the pins of roles/uv and roles/ms_swift (read from their defaults), uv from PyPI,
the CPU torch wheel from /opt/wheels, uv's cache in /var/cache/swiftfleet/uv-root (shared by every local node:
warm when the kit ran here before), this machine's CA files. The kit also installs what its roles add (the AWS CLI,
the stack check); the manual flow installs only what the job needs.
CPU-seconds beside wall time (bench/cpu_meter.py): controller = this process and everything it starts, SSH
masters included; nodes = the containers' cgroups. Local nodes share this machine's cores: the CPU columns show
the work each flow does, which parallelism cannot hide here. --profile adds ansible.posix.profile_tasks to the
kit's playbooks (see the logs). Needs the controller ms-swift (.venv-swift) for the tiny model.
"""

import argparse
import contextlib
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.cpu_meter import CpuMeter, Figures, Sample, between, container_group  # noqa: E402
from bench.setup_bench import cluster_cli  # noqa: E402
from bench.train_start_bench import job_file  # noqa: E402
from swiftfleet import local_cluster  # noqa: E402
from swiftfleet.filters import cli_flags  # noqa: E402
from swiftfleet.image import docker_client  # noqa: E402
from swiftfleet.inventory import inventory_path, known_hosts_path, read_inventory  # noqa: E402
from swiftfleet.jobs import node_facts  # noqa: E402
from swiftfleet.table import render  # noqa: E402
from tests.conftest import SWIFT_PYTHON, run_cli  # noqa: E402
from tests.e2e.conftest import TRAIN_ARGS  # noqa: E402
from tests.jobs.conftest import MAKE_TINY  # noqa: E402
from tests.roles.conftest import BIN, ansible_playbook  # noqa: E402

PHASES = ["check", "setup", "rerun", "stage", "launch", "train", "fetch"]
SUMS = {
    "setup+stage+launch": ["setup", "stage", "launch"],
    "stage..fetch": ["stage", "launch", "train", "fetch"],
}
CLUSTERS = {
    "manual": ("sfbm1", "172.31.246.0/24"), "kit": ("sfbm2", "172.31.247.0/24"), "baked": ("sfbm3", "172.31.243.0/24"),
}  # fmt: skip
BAKED_TAG = "swiftfleet-baked:bench-manual-vs-kit"
STEPS = 20
JOB = "bench-kit"
MANUAL_JOB_DIR = "/root/job"  # local nodes log in as root; manual_flow.sh works in ~/job
MANUAL_FLOW = REPO / "bench" / "manual_flow.sh"
CA_FILES = sorted(glob.glob("/usr/local/share/ca-certificates/*.crt"))  # what setup.yml hands local nodes
# train.yml's steps (playbooks/tasks/run.yml) that begin the launch and the fetch phases.
KIT_LAUNCH, KIT_FETCH = "TASK [Start rank 0]", "TASK [Collect the job]"


class Timeline:
    """Samples taken where each phase begins ("end" closes the last); any thread may mark."""

    def __init__(self, meter: CpuMeter) -> None:
        self.meter, self.marks = meter, dict[str, Sample]()

    def mark(self, phase: str) -> None:
        self.marks[phase] = self.meter.sample()

    def phases(self) -> dict[str, Figures]:
        missing = [p for p in [*PHASES, "end"] if p not in self.marks]
        if missing:
            raise SystemExit(f"phases never began: {missing}")
        bounds = [self.marks[p] for p in [*PHASES, "end"]]
        return {p: between(a, b) for p, a, b in zip(PHASES, bounds, bounds[1:], strict=False)}


@dataclass
class Cluster:
    name: str
    config: Path
    env: dict[str, str]
    logs: Path

    @property
    def nodes(self) -> list[str]:
        return [str(n.ansible_host) for n in sorted(read_inventory(self.name).nodes, key=lambda n: n.rank)]

    def container_pids(self) -> list[int]:
        found = docker_client().containers.list(filters={"label": f"{local_cluster.LABEL}={self.name}"})
        ranked = sorted(found, key=lambda c: int(c.labels[local_cluster.RANK_LABEL]))
        return [int(c.attrs["State"]["Pid"]) for c in ranked]

    def log(self, name: str, text: str) -> None:
        (self.logs / f"{self.name}-{name}.log").write_text(text)


@contextlib.contextmanager
def fresh_cluster(flow: str, nodes: int, root: Path, logs: Path, meter: CpuMeter) -> Iterator[Cluster]:
    """A new cluster for one flow, its containers metered; removed afterwards whatever happens."""
    name, subnet = CLUSTERS[flow]
    config = root / f"{name}.yml"
    image = {"image": BAKED_TAG} if flow == "baked" else {}
    config.write_text(
        yaml.safe_dump({"provider": "local", "name": name, "node_count": nodes, "subnet": subnet, **image})
    )
    env = {
        k: os.environ[k]
        for k in ("SWIFTFLEET_INVENTORY_DIR", "SWIFTFLEET_STATE_DIR", "SWIFTFLEET_OUTPUTS_DIR")
    }
    try:
        cluster_cli("up", config, env)
        containers = docker_client().containers.list(filters={"label": f"{local_cluster.LABEL}={name}"})
        for container in containers:
            # The node image's (empty) package lists look as old as a real image's: apt's cache_valid_time then
            # updates them. Within a day of building the image it would skip the update and find no package.
            container.exec_run(["touch", "-d", "2 days ago", "/var/lib/apt/lists"])
        meter.node_groups = [container_group(str(c.id)) for c in containers]
        yield Cluster(name, config, env, logs)
    finally:
        meter.node_groups = []
        down = run_cli("cluster", "down", "--config", str(config), "--force", env=env, timeout=900)
        if down.returncode != 0:
            print(f"cluster down {name} failed: {down.stdout}{down.stderr}", file=sys.stderr)


def watch_joined(timeline: Timeline, logs: list[Path], stop: threading.Event) -> threading.Thread:
    """Marks "train" once every rank's log shows the whole process group. Reads the nodes' files through
    /proc/<pid>/root (no `docker exec`, whose processes would count as the nodes' CPU)."""
    needle = f"world_size: {len(logs)}"

    def seen(log: Path) -> bool:
        try:
            return needle in log.read_text(errors="replace")
        except OSError:
            return False

    def run() -> None:
        while not stop.is_set():
            if all(seen(log) for log in logs):
                timeline.mark("train")
                return
            time.sleep(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def rank_logs(cluster: Cluster, paths: list[str]) -> list[Path]:
    return [
        Path(f"/proc/{pid}/root") / p.lstrip("/")
        for pid, p in zip(cluster.container_pids(), paths, strict=True)
    ]


def pins() -> list[str]:
    uv = yaml.safe_load((REPO / "roles/uv/defaults/main.yml").read_text())
    ms = yaml.safe_load((REPO / "roles/ms_swift/defaults/main.yml").read_text())
    return [uv["uv_version"], ms["ms_swift_version"], ms["ms_swift_torch_version"]]


def manual_flow(cluster: Cluster, tiny: Path, timeline: Timeline, dest: Path) -> None:
    nodes = cluster.nodes
    env = {
        **os.environ, "NODES": " ".join(nodes), "SSH_KEY": str(Path(os.environ["SWIFTFLEET_STATE_DIR"]) / cluster.name
        / "id_ed25519"), "KNOWN_HOSTS": str(known_hosts_path(cluster.name)),
    }  # fmt: skip

    def step(phase: str, *args: str, out: Path | None = None) -> None:
        log = out or cluster.logs / f"{cluster.name}-{phase}.log"
        with log.open("a") as sink:
            done = subprocess.run(["bash", str(MANUAL_FLOW), phase, *args], env=env, stdout=sink,
                                  stderr=subprocess.STDOUT, check=False)  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"manual {phase} failed (rc {done.returncode}): {log.read_text()[-3000:]}")

    flags = cli_flags({
        "model": f"{MANUAL_JOB_DIR}/model", "dataset": f"{MANUAL_JOB_DIR}/chat.jsonl",
        "output_dir": f"{MANUAL_JOB_DIR}/output", **TRAIN_ARGS, "max_steps": STEPS, "save_steps": STEPS,
    })  # fmt: skip
    timeline.mark("check")
    step("check")
    timeline.mark("setup")
    step("setup", *pins(), *CA_FILES)
    timeline.mark("rerun")
    step("setup", *pins(), *CA_FILES, out=cluster.logs / f"{cluster.name}-rerun.log")
    timeline.mark("stage")
    step("stage", str(tiny / "model"), str(tiny / "chat.jsonl"))
    stop = threading.Event()
    logs = rank_logs(cluster, [f"{MANUAL_JOB_DIR}/rank{r}.log" for r in range(len(nodes))])
    timeline.mark("launch")
    watcher = watch_joined(timeline, logs, stop)
    try:
        step("launch", flags)
        step("tail")
    finally:
        stop.set()
        watcher.join()
    timeline.mark("fetch")
    step("fetch", str(dest))
    timeline.mark("end")


def kit_flow(cluster: Cluster, root: Path, timeline: Timeline, profile: bool) -> None:
    tiny = root / "tiny"
    env = {**cluster.env, **({"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"} if profile else {})}
    inventory = str(inventory_path(cluster.name))
    timeline.mark("check")
    check = run_cli("check", "--config", str(cluster.config), env=env)
    cluster.log("check", check.stdout + check.stderr)
    if check.returncode != 0:
        raise SystemExit(f"swiftfleet check failed: {check.stdout}{check.stderr}")
    for phase in ("setup", "rerun"):
        timeline.mark(phase)
        run = ansible_playbook("-i", inventory, str(REPO / "playbooks" / "setup.yml"), env=env)
        cluster.log(phase, run.output)
        if run.rc != 0:
            raise SystemExit(f"setup.yml ({phase}) failed on {cluster.name}:\n{run.output[-4000:]}")
    if "setup: nothing to do" not in run.output:
        print("  kit rerun: not the fingerprint path (see its log)")
    job = job_file(root, name=JOB, kind="swift sft", model=str(tiny / "model"),
                   datasets=[str(tiny / "chat.jsonl")], nproc_per_node=1, env={"CUDA_VISIBLE_DEVICES": ""},
                   args={**TRAIN_ARGS, "max_steps": STEPS, "save_steps": STEPS})  # fmt: skip
    facts = node_facts.load(cluster.name) or {}
    hosts = sorted(facts, key=lambda h: int(h.rsplit("node", 1)[1]))
    stop = threading.Event()
    watcher = watch_joined(timeline, rank_logs(cluster, [f"{facts[h].job_dir(JOB)}/rank{r}.log"
                                                         for r, h in enumerate(hosts)]), stop)  # fmt: skip
    timeline.mark("stage")
    argv = [
        str(BIN / "ansible-playbook"),
        "-i",
        inventory,
        str(REPO / "playbooks" / "train.yml"),
        "-e",
        f"@{job}",
    ]
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1",
                **env}  # fmt: skip
    out = cluster.logs / f"{cluster.name}-train.log"
    try:
        with out.open("w") as sink, subprocess.Popen(argv, cwd=REPO, env=full_env, stdout=subprocess.PIPE,
                                                     stderr=subprocess.STDOUT, text=True) as proc:  # fmt: skip
            assert proc.stdout is not None
            for line in proc.stdout:
                sink.write(line)
                if line.startswith(KIT_LAUNCH) and "launch" not in timeline.marks:
                    timeline.mark("launch")
                elif line.startswith(KIT_FETCH) and "fetch" not in timeline.marks:
                    timeline.mark("fetch")
        timeline.mark("end")
    finally:
        stop.set()
        watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"train.yml failed on {cluster.name}: {out.read_text()[-4000:]}")


def bake(cluster: Cluster) -> float:
    """Node 0 of the kit's cluster, set up and idle after its job, made into BAKED_TAG; the seconds it took."""
    began = time.monotonic()
    done = run_cli("image", "bake", "--config", str(cluster.config), "--node", "0", "--name", BAKED_TAG,
                   env=cluster.env, timeout=900)  # fmt: skip
    cluster.log("bake", done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"image bake failed: {done.stdout}{done.stderr}")
    return time.monotonic() - began


def one_flow(
    flow: str,
    nodes: int,
    root: Path,
    logs: Path,
    meter: CpuMeter,
    profile: bool,
    baking: dict[str, float] | None,
) -> dict[str, Figures]:
    """One flow on its own fresh cluster; its phases, once its fetched output proved the training ran. With
    `baking` (kit flow), node 0 is baked afterwards and the seconds recorded there."""
    timeline = Timeline(meter)
    dest = root / "manual-output" if flow == "manual" else Path(os.environ["SWIFTFLEET_OUTPUTS_DIR"]) / JOB
    shutil.rmtree(dest, ignore_errors=True)  # an earlier round's output proves nothing
    logs.mkdir(parents=True, exist_ok=True)
    with fresh_cluster(flow, nodes, root, logs, meter) as cluster:
        if flow == "manual":
            manual_flow(cluster, root / "tiny", timeline, dest)
        else:
            kit_flow(cluster, root, timeline, profile)
            if baking is not None:
                baking["seconds"] = bake(cluster)
    if not any(dest.rglob(f"checkpoint-{STEPS}")):
        raise SystemExit(f"{flow} flow: no checkpoint-{STEPS} under {dest}: the run does not count")
    return timeline.phases()


def cell(f: Figures) -> str:
    return f"{f.wall:.1f} s | {f.cpu:.1f} ({f.controller:.1f}+{f.nodes:.1f})"


def table(results: dict[str, list[dict[str, Figures]]]) -> str:
    def median(flow: str, phases: list[str]) -> Figures:
        runs = [[r[p] for p in phases] for r in results[flow]]
        return Figures(*(statistics.median(sum(getattr(f, k) for f in run) for run in runs)
                         for k in ("wall", "controller", "nodes")))  # fmt: skip

    kits = [flow for flow in ("kit", "baked") if results.get(flow)]
    rows = []
    for label, phases in [*((p, [p]) for p in PHASES), *SUMS.items()]:
        m = median("manual", phases)
        row = [label, cell(m)]
        for flow in kits:
            k = median(flow, phases)
            row += [cell(k), f"{k.wall / m.wall:.2f}", f"{k.cpu / m.cpu:.2f}"]
        rows.append(row)
    header = ["phase", "manual: wall | CPU-s (ctl+nodes)"]
    for flow in kits:
        name = {"kit": "kit", "baked": "kit, baked image"}[flow]
        header += [f"{name}: wall | CPU-s (ctl+nodes)", f"{flow}/manual wall", f"{flow}/manual CPU"]
    return render(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument(
        "--rounds", type=int, default=1, help="each round runs both flows; the order alternates"
    )
    parser.add_argument("--logs", type=Path, help="keep every command's output here (default: removed)")
    parser.add_argument("--profile", action="store_true", help="profile_tasks on the kit's playbooks")
    parser.add_argument(
        "--baked", action="store_true", help="also the kit's flow on nodes from a baked image"
    )
    opts = parser.parse_args()
    if not 1 <= opts.nodes <= 200 or opts.rounds < 1:
        parser.error("--nodes must be 1..200 and --rounds at least 1")
    meter = CpuMeter()
    results: dict[str, list[dict[str, Figures]]] = {"manual": [], "kit": [], "baked": []}
    bakes: list[float] = []
    try:
        with tempfile.TemporaryDirectory(prefix="sfbench-manual-kit-") as tmp:
            root = Path(tmp)
            for key, sub in (("INVENTORY", "inventory"), ("STATE", "state"), ("OUTPUTS", "outputs")):
                os.environ[f"SWIFTFLEET_{key}_DIR"] = str(root / sub)  # read in this process too
            subprocess.run(
                [str(SWIFT_PYTHON), str(MAKE_TINY), str(root / "tiny")], check=True, capture_output=True
            )
            try:
                for i in range(opts.rounds):
                    flows = ["manual", "kit"] if i % 2 == 0 else ["kit", "manual"]
                    if opts.baked:
                        flows.insert(flows.index("kit") + 1, "baked")  # right after the kit's flow baked it
                    for flow in flows:
                        logs = root / "logs" / f"round{i + 1}"
                        baking: dict[str, float] | None = {} if flow == "kit" and opts.baked else None
                        figures = one_flow(flow, opts.nodes, root, logs, meter, opts.profile, baking)
                        results[flow].append(figures)
                        print(f"round {i + 1} {flow}: " + json.dumps({p: round(f.wall, 1) for p, f in figures.items()}),
                              flush=True)  # fmt: skip
                        if baking:
                            bakes.append(baking["seconds"])
                            print(
                                f"round {i + 1} image bake of the kit's node 0: {baking['seconds']:.1f} s",
                                flush=True,
                            )
            finally:
                if opts.logs and (root / "logs").is_dir():
                    shutil.copytree(root / "logs", opts.logs, dirs_exist_ok=True)
                if opts.baked:
                    run_cli("image", "rm", BAKED_TAG)
    finally:
        meter.close()
    print(
        f"\n{opts.nodes} nodes, median of {opts.rounds} round(s); CPU-s = controller + nodes (shared cores)"
    )
    print(table(results))
    if bakes:
        print(f"image bake (once per stack, not in the table): median {statistics.median(bakes):.1f} s")


if __name__ == "__main__":
    main()
