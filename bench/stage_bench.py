"""Issue 12's staging goal: a directory to 4 nodes in at most 1.3x the time it takes to 1, when the uplink is slow.

    .venv/bin/python bench/stage_bench.py [--size-mb 1024] [--nodes 4] [--rate 100mbit] [--logs DIR]

One local cluster of --nodes nodes (sfbstage on 172.31.240.0/24; inventory, state and outputs in a temporary
directory), up and set up once (setup.yml), down at the end, also on failure. The upload, made on the controller:
a fake model directory (config.json, all the job plan asks of a local model, beside shards of random, incompressible
bytes totalling --size-mb MiB) and a 2-line chat dataset. Two uplinks, one after the other:
  <rate>  the controller's side of the cluster's bridge (br-<network id[:12]>) limited with
          `tc qdisc add dev BR root tbf rate <rate> burst 64kb latency 400ms`: what the controller sends to the nodes
          is slow, the nodes still talk to each other at full speed (a laptop's uplink); removed again afterwards
  none    no limit
On each, two jobs of their own names (nothing of them on any node yet) run `train.yml -e wait=false`: one with
`nodes: 1`, one with every node. Measured per run:
  train.yml  from its start to its return (planned, staged, every unit started)
  staging    from its task "Lay out the uploads for one transfer" until "Start rank 0" begins: the one rsync to rank 0,
             the job files (and rank 0's staging server), the other nodes' copies from rank 0; the per-run line
             names each task of the staging that took 0.5 s or more
  CPU-s      during staging: controller (this process and everything it starts, SSH masters included) + the
             nodes' containers (bench/cpu_meter.py); local nodes share this machine's cores
Each job is stopped with stop.yml right after (the fake model cannot train) and its directory removed from the nodes.
Verdict: the 4/1 staging ratio under the limit against 1.3 (and the same for the whole train.yml run).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.cpu_meter import CpuMeter, Figures, Sample, between, container_group  # noqa: E402
from bench.train_start_bench import job_file  # noqa: E402
from swiftfleet import local_cluster  # noqa: E402
from swiftfleet.image import docker_client  # noqa: E402
from swiftfleet.inventory import inventory_path  # noqa: E402
from swiftfleet.jobs import node_facts  # noqa: E402
from swiftfleet.table import render  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.e2e.conftest import TRAIN_ARGS  # noqa: E402
from tests.roles.conftest import BIN, ansible_playbook  # noqa: E402

NAME, SUBNET = "sfbstage", "172.31.240.0/24"
GOAL = 1.3
SHARD_MB = 128
# train.yml's tasks (playbooks/tasks/stage.yml, start.yml): staging lasts from the start of the first until the
# start of the second; every task header between them splits it (whatever stage.yml's tasks are called).
STAGE_BEGIN, STAGE_END = "Lay out the uploads for one transfer", "Start rank 0"
PART_MIN_S = 0.5  # the per-run line names the staging tasks that took at least this long


@dataclass(frozen=True)
class Result:
    total: float  # train.yml, start to return
    staging: Figures
    parts: list[tuple[str, float]]  # each staging task (in order) and its seconds


def make_upload(root: Path, size_mb: int) -> tuple[Path, Path]:
    """A fake model directory of size_mb MiB of random bytes (plus config.json) and a tiny chat dataset."""
    model = root / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text(
        json.dumps({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"})
    )
    shards = max(1, -(-size_mb // SHARD_MB))
    left = size_mb
    for i in range(shards):
        with (model / f"model-{i + 1:05d}-of-{shards:05d}.safetensors").open("wb") as out:
            for _ in range(min(SHARD_MB, left)):
                out.write(os.urandom(1 << 20))
        left -= SHARD_MB
    data = root / "chat.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "hello"}]}
            for i in range(2)]  # fmt: skip
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return model, data


def bridge() -> str:
    """The controller's side of the cluster's bridge, as local_cluster names it (br-<network id[:12]>)."""
    network = docker_client().networks.get(local_cluster.network_name(NAME))
    return f"br-{str(network.id)[:12]}"


def tc(*args: str, check: bool = True) -> None:
    done = subprocess.run(["tc", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"tc {' '.join(args)} failed: {done.stderr.strip()}")


def timed_train(job: Path, env: dict[str, str], meter: CpuMeter, log: Path) -> Result:
    """train.yml -e wait=false, its output streamed: a sample where each task of interest begins."""
    argv = [str(BIN / "ansible-playbook"), "-i", str(inventory_path(NAME)), str(REPO / "playbooks" / "train.yml"),
            "-e", f"@{job}", "-e", "wait=false"]  # fmt: skip
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "NO_COLOR": "1", "PYTHONUNBUFFERED": "1",
                **env}  # fmt: skip
    tasks: list[tuple[str, Sample]] = []  # every task header, as it began
    start = meter.sample()
    with log.open("w") as sink, subprocess.Popen(argv, cwd=REPO, env=full_env, stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT, text=True) as proc:  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.write(line)
            if line.startswith("TASK ["):
                tasks.append((line[len("TASK [") :].rsplit("]", 1)[0], meter.sample()))
    end = meter.sample()
    if proc.returncode != 0:
        raise SystemExit(f"train.yml failed for {job.stem} (log {log}):\n{log.read_text()[-4000:]}")
    names = [t for t, _ in tasks]
    first = next((i for i, t in enumerate(names) if t.startswith(STAGE_BEGIN)), None)
    last = next((i for i, t in enumerate(names) if t.startswith(STAGE_END) and i > (first or 0)), None)
    if first is None or last is None:
        raise SystemExit(
            f"{job.stem}: no {STAGE_BEGIN!r} then {STAGE_END!r} in train.yml's output (log {log})"
        )
    parts = [
        (t, b.wall - a.wall)
        for (t, a), (_, b) in zip(tasks[first:last], tasks[first + 1 : last + 1], strict=True)
    ]
    return Result(end.wall - start.wall, between(tasks[first][1], tasks[last][1]), parts)


def stop_and_clean(job: Path, job_name: str, env: dict[str, str]) -> None:
    run = ansible_playbook("-i", str(inventory_path(NAME)), str(REPO / "playbooks" / "stop.yml"), "-e", f"@{job}",
                           env=env)  # fmt: skip
    if run.rc != 0:
        raise SystemExit(f"stop.yml failed for {job_name}:\n{run.output[-4000:]}")
    for host, facts in (node_facts.load(NAME) or {}).items():
        container = local_cluster.container_name(NAME, int(host.rsplit("node", 1)[1]))
        subprocess.run(["docker", "exec", container, "rm", "-rf", facts.job_dir(job_name)], check=True)


def cell(r: Result) -> str:
    return f"{r.total:.1f} ({r.staging.wall:.1f})"


def cpu_cell(r: Result) -> str:
    return f"{r.staging.cpu:.1f} ({r.staging.controller:.1f}+{r.staging.nodes:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1024, help="the upload's size in MiB (default 1024)")
    parser.add_argument(
        "--nodes", type=int, default=4, help="the cluster's size, the second job's nodes (default 4)"
    )
    parser.add_argument(
        "--rate", default="100mbit", help="tc tbf rate of the limited uplink (default 100mbit)"
    )
    parser.add_argument("--logs", type=Path, help="keep every train.yml output here (default: removed)")
    opts = parser.parse_args()
    if not 2 <= opts.nodes <= 8 or opts.size_mb < 1:
        parser.error("--nodes must be 2..8 (a local cluster) and --size-mb at least 1")
    meter = CpuMeter()
    results: dict[tuple[str, int], Result] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="sfbench-stage-") as tmp:
            root = Path(tmp)
            env = {"SWIFTFLEET_INVENTORY_DIR": str(root / "inventory"), "SWIFTFLEET_STATE_DIR": str(root / "state"),
                   "SWIFTFLEET_OUTPUTS_DIR": str(root / "outputs")}  # fmt: skip
            os.environ.update(env)  # inventory_path() and node_facts read them in this process too
            logs = opts.logs or root / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            model, data = make_upload(root / "upload", opts.size_mb)
            print(f"upload: {opts.size_mb} MiB of random bytes in {model}", flush=True)
            config = root / f"{NAME}.yml"
            config.write_text(yaml.safe_dump({"provider": "local", "name": NAME, "node_count": opts.nodes,
                                              "subnet": SUBNET}))  # fmt: skip
            try:
                up = run_cli("cluster", "up", "--config", str(config), env=env, timeout=900)
                if up.returncode != 0:
                    raise SystemExit(f"cluster up failed: {up.stdout}{up.stderr}")
                setup = ansible_playbook("-i", str(inventory_path(NAME)), str(REPO / "playbooks" / "setup.yml"),
                                         env=env)  # fmt: skip
                (logs / "setup.log").write_text(setup.output)
                if setup.rc != 0:
                    raise SystemExit(f"setup.yml failed:\n{setup.output[-4000:]}")
                print(f"cluster {NAME}: {opts.nodes} nodes up and set up ({setup.seconds:.0f} s)", flush=True)
                containers = docker_client().containers.list(
                    filters={"label": f"{local_cluster.LABEL}={NAME}"}
                )
                meter.node_groups = [container_group(str(c.id)) for c in containers]
                dev = bridge()
                for limit in (opts.rate, "none"):
                    if limit != "none":
                        tc("qdisc", "add", "dev", dev, "root", "tbf", "rate", limit, "burst", "64kb", "latency",
                           "400ms")  # fmt: skip
                    try:
                        for nodes in (1, opts.nodes):
                            job_name = f"stage-{os.getpid()}-{limit}-n{nodes}"
                            job = job_file(root, name=job_name, kind="swift sft", model=str(model),
                                           datasets=[str(data)], nodes=nodes, nproc_per_node=1, time_limit="30m",
                                           env={"CUDA_VISIBLE_DEVICES": ""}, args={**TRAIN_ARGS, "max_steps": 1})  # fmt: skip
                            try:
                                r = timed_train(job, env, meter, logs / f"{job_name}.log")
                            finally:
                                stop_and_clean(job, job_name, env)
                            results[(limit, nodes)] = r
                            parts = "; ".join(f"{t} {v:.1f}" for t, v in r.parts if v >= PART_MIN_S)
                            print(f"uplink {limit}, {nodes} node(s): train.yml {r.total:.1f} s, staging "
                                  f"{r.staging.wall:.1f} s ({parts}), staging CPU-s {cpu_cell(r)}", flush=True)  # fmt: skip
                    finally:
                        if limit != "none":
                            tc("qdisc", "del", "dev", dev, "root", check=False)
            finally:
                meter.node_groups = []
                down = run_cli("cluster", "down", "--config", str(config), "--force", env=env, timeout=900)
                if down.returncode != 0:
                    print(f"cluster down {NAME} failed: {down.stdout}{down.stderr}", file=sys.stderr)
    finally:
        meter.close()

    rows = []
    for limit in (opts.rate, "none"):
        one, many = results[(limit, 1)], results[(limit, opts.nodes)]
        rows.append([limit, cell(one), cell(many),
                     f"{many.total / one.total:.2f} ({many.staging.wall / one.staging.wall:.2f})",
                     cpu_cell(one), cpu_cell(many)])  # fmt: skip
    print(f"\n{opts.size_mb} MiB to 1 and to {opts.nodes} nodes; seconds as train.yml -e wait=false (its staging); "
          "CPU-s of the staging = controller + nodes (shared cores)")  # fmt: skip
    print(render(["uplink", "1 node s", f"{opts.nodes} nodes s", f"ratio {opts.nodes}/1",
                  "CPU-s 1 node", f"CPU-s {opts.nodes} nodes"], rows))  # fmt: skip
    one, many = results[(opts.rate, 1)], results[(opts.rate, opts.nodes)]
    line_rate = opts.size_mb * 2**20 * 8 / _bits_per_second(opts.rate) if _bits_per_second(opts.rate) else 0.0
    if one.staging.wall < 0.9 * line_rate:
        print(f"WARNING: staging to 1 node took {one.staging.wall:.1f} s, less than the {line_rate:.1f} s that "
              f"{opts.size_mb} MiB need at {opts.rate}: the limit was not on the controller's path")  # fmt: skip
    staged, whole = many.staging.wall / one.staging.wall, many.total / one.total
    print(f"verdict ({opts.rate} uplink): staging to {opts.nodes} nodes took {staged:.2f}x staging to 1 "
          f"({'meets' if staged <= GOAL else 'misses'} the <= {GOAL}x goal); the whole train.yml start "
          f"{whole:.2f}x ({'meets' if whole <= GOAL else 'misses'})")  # fmt: skip


def _bits_per_second(rate: str) -> float:
    """tc's rate (e.g. 100mbit, 1gbit, 12500kbps) in bits per second; 0 if not understood."""
    units = {"gbit": 1e9, "mbit": 1e6, "kbit": 1e3, "bit": 1, "gbps": 8e9, "mbps": 8e6, "kbps": 8e3, "bps": 8}
    for unit, factor in units.items():
        if rate.lower().endswith(unit):
            try:
                return float(rate[: -len(unit)]) * factor
            except ValueError:
                return 0.0
    return 0.0


if __name__ == "__main__":
    main()
