"""How long train.yml takes to get every rank running, on 2 and 4 local nodes; and the warm rehearsal's steps.

    .venv/bin/python bench/train_start_bench.py [--nodes 2 4] [--rehearsal]

Each size gets its own local cluster (own name, subnet, inventory, state and outputs in a temporary directory),
set up with setup.yml (the shared package cache makes this cheap after the first). Per size:
  started = `train.yml -e wait=false` from its start to its return (validated, staged, every unit started);
  joined  = from the same start until every rank's log shows the process group (world_size N);
  full    = `train.yml` (waiting, progress, logs and checkpoint fetched) for the tiny 6-step LoRA.
--rehearsal also times export (merge), deploy (until /v1/models answers) and eval on the 2-node cluster.
Needs the controller ms-swift (.venv-swift) for the tiny model.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from swiftfleet import local_cluster  # noqa: E402
from swiftfleet.inventory import inventory_path  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.e2e.conftest import CPU_ARGS, TRAIN_ARGS  # noqa: E402
from tests.e2e.make_eval_set import make as make_eval_set  # noqa: E402
from tests.jobs.conftest import MAKE_TINY, SWIFT_PYTHON  # noqa: E402
from tests.roles.conftest import Run, ansible_playbook  # noqa: E402


def job_file(root: Path, **job: object) -> Path:
    path = root / f"{job['name']}.yml"
    path.write_text(yaml.safe_dump({"job": job}))
    return path


def play(name: str, playbook: str, job: Path, env: dict[str, str], *extra: str) -> Run:
    run = ansible_playbook(
        "-i", str(inventory_path(name)), str(REPO / "playbooks" / playbook), "-e", f"@{job}",
        "-e", "poll_seconds=2", *extra, env=env,
    )  # fmt: skip
    if run.rc != 0:
        sys.exit(f"{playbook} failed on {name}:\n{run.output[-4000:]}")
    return run


def joined(name: str, nodes: int, job: str) -> bool:
    for rank in range(nodes):
        log = f"/root/swiftfleet/jobs/{job}/rank{rank}.log"
        argv = [
            "docker",
            "exec",
            local_cluster.container_name(name, rank),
            "grep",
            "-q",
            f"world_size: {nodes}",
            log,
        ]
        if subprocess.run(argv, check=False).returncode != 0:
            return False
    return True


def bench_env(root: Path) -> dict[str, str]:
    """Inventory, state and outputs of a benchmark's clusters in its temporary directory (also set here)."""
    env = {
        "SWIFTFLEET_INVENTORY_DIR": str(root / "inventory"),
        "SWIFTFLEET_STATE_DIR": str(root / "state"),
        "SWIFTFLEET_OUTPUTS_DIR": str(root / "outputs"),
        "SWIFT_API_KEY": "bench-key",
    }
    os.environ.update(env)
    return env


def up_and_set_up(
    name: str, nodes: int, subnet: str, root: Path, env: dict[str, str], extras: list[str]
) -> Run:
    """A local cluster of its own, up and set up with setup.yml; returns the setup run. Its file: root/NAME.yml."""
    config = root / f"{name}.yml"
    config.write_text(
        yaml.safe_dump({"provider": "local", "name": name, "node_count": nodes, "subnet": subnet})
    )
    up = run_cli("cluster", "up", "--config", str(config), env=env)
    if up.returncode != 0:
        sys.exit(up.stdout + up.stderr)
    setup = ansible_playbook(
        "-i", str(inventory_path(name)), str(REPO / "playbooks" / "setup.yml"),
        "-e", json.dumps({"ms_swift_extras": extras}), env=env,
    )  # fmt: skip
    if setup.rc != 0:
        sys.exit(setup.output[-4000:])
    return setup


def bench_size(nodes: int, root: Path, tiny: Path, rehearsal: bool) -> dict[str, float]:
    name = f"sfbtrain{nodes}"
    env = bench_env(root)
    config = root / f"{name}.yml"
    result: dict[str, float] = {}
    try:
        extras = ["eval"] if rehearsal else []
        result["setup"] = up_and_set_up(name, nodes, f"172.31.{230 + nodes}.0/24", root, env, extras).seconds
        common = {"model": str(tiny / "model"), "datasets": [str(tiny / "chat.jsonl")], "nproc_per_node": 1,
                  "env": {"CUDA_VISIBLE_DEVICES": ""}}  # fmt: skip
        start_job = job_file(root, name="bench-start", kind="swift sft", args={**TRAIN_ARGS, "max_steps": 200},
                             **common)  # fmt: skip
        began = time.monotonic()
        result["started"] = play(name, "train.yml", start_job, env, "-e", "wait=false").seconds
        while not joined(name, nodes, "bench-start"):
            time.sleep(0.5)
        result["joined"] = time.monotonic() - began
        play(name, "stop.yml", start_job, env)
        full_job = job_file(root, name="bench-full", kind="swift sft",
                            args={**TRAIN_ARGS, "max_steps": 6, "save_steps": 6}, **common)  # fmt: skip
        result["full"] = play(name, "train.yml", full_job, env).seconds
        if rehearsal:
            merge = job_file(root, name="bench-merge", kind="swift export", model=str(tiny / "model"),
                             checkpoint="bench-full", args={**CPU_ARGS, "merge_lora": True},
                             env={"CUDA_VISIBLE_DEVICES": ""})  # fmt: skip
            result["export"] = play(name, "export.yml", merge, env).seconds
            server = job_file(root, name="bench-server", kind="swift deploy",
                              model=str(root / "outputs" / "bench-merge" / "output"),
                              args={**CPU_ARGS, "infer_backend": "transformers", "served_model_name": "tiny"},
                              env={"CUDA_VISIBLE_DEVICES": ""})  # fmt: skip
            result["deploy"] = play(name, "deploy.yml", server, env).seconds
            make_eval_set(tiny / "eval.jsonl", root / "evalset")
            evaluation = job_file(root, name="bench-eval", kind="swift eval", model="tiny",
                                  args={"eval_url": "http://{{ swiftfleet_rank0_ip }}:8000/v1",
                                        "eval_dataset": ["general_mcq"], "eval_limit": 5, "eval_num_proc": 1,
                                        "eval_dataset_args": {"general_mcq": {"local_path": str(root / "evalset"),
                                                                              "subset_list": ["tiny"]}}})  # fmt: skip
            result["eval"] = play(name, "eval.yml", evaluation, env).seconds
    finally:
        run_cli("cluster", "down", "--config", str(config), env=env)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--rehearsal", action="store_true", help="also export, deploy and eval (2 nodes)")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sfbench-train-") as tmp:
        root = Path(tmp)
        subprocess.run(
            [str(SWIFT_PYTHON), str(MAKE_TINY), str(root / "tiny")], check=True, capture_output=True
        )
        rows = []
        for nodes in opts.nodes:
            r = bench_size(nodes, root, root / "tiny", opts.rehearsal and nodes == 2)
            rows.append([nodes, *(f"{r[k]:.0f} s" if k in r else "-" for k in
                                  ("setup", "started", "joined", "full", "export", "deploy", "eval"))])  # fmt: skip
            print(f"{nodes} nodes: {r}", flush=True)
    from swiftfleet.table import render

    print(render(["nodes", "setup", "started", "joined", "train 6 steps", "export", "deploy", "eval"], rows))


if __name__ == "__main__":
    main()
