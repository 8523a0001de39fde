"""The real rehearsal on a 2-node local cluster, over SSH, with the playbooks a user runs: setup, LoRA training
across both nodes (one process group), export (merge), deploy (a chat answered through the bridge), eval (a
local multiple-choice set), a killed rank reported by name, and a job too big for the inventory refused before
any host is touched. One cluster for the module; its own name, subnet, inventory, state and outputs."""

import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from swiftfleet import local_cluster
from swiftfleet.inventory import inventory_path, known_hosts_path
from swiftfleet.jobs.plan import latest_checkpoint
from tests.conftest import REPO, run_cli
from tests.e2e.chat import chat
from tests.e2e.make_eval_set import make as make_eval_set
from tests.roles.conftest import BIN, Run, ansible_playbook

pytestmark = [pytest.mark.docker, pytest.mark.swift]
CLUSTER = {"provider": "local", "name": "sfe2e", "node_count": 2, "subnet": "172.31.240.0/24"}
RANK0_IP = "172.31.240.10"
KEY = "e2e-key-5f1c9a"
CPU_ARGS = {"model_type": "qwen2", "template": "qwen", "torch_dtype": "float32"}
TRAIN_ARGS = {
    **CPU_ARGS,
    "tuner_type": "lora",
    "report_to": "none",
    "dataloader_num_workers": 0,
    "dataset_num_proc": 1,
    "check_model": False,
    "per_device_train_batch_size": 2,
    "logging_steps": 2,
}


@dataclass
class Rehearsal:
    root: Path
    env: dict[str, str]
    tiny: Path

    @property
    def outputs(self) -> Path:
        return Path(self.env["SWIFTFLEET_OUTPUTS_DIR"])

    def job(self, **job: Any) -> Path:
        path = self.root / f"{job['name']}.yml"
        path.write_text(yaml.safe_dump({"job": job}))
        return path

    def argv(self, playbook: str, job: Path) -> list[str]:
        return [
            "-i", str(inventory_path(str(CLUSTER["name"]))), str(REPO / "playbooks" / playbook),
            "-e", f"@{job}", "-e", "poll_seconds=3",
        ]  # fmt: skip

    def play(self, playbook: str, job: Path) -> Run:
        return ansible_playbook(*self.argv(playbook, job), env=self.env)

    def node(self, rank: int, *argv: str) -> str:
        name = local_cluster.container_name(str(CLUSTER["name"]), rank)
        done = subprocess.run(["docker", "exec", name, *argv], capture_output=True, text=True, check=False)
        return done.stdout


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory: pytest.TempPathFactory, node_image: str, tiny: Path) -> Iterator[Rehearsal]:
    root = tmp_path_factory.mktemp("e2e")
    env = {
        "SWIFTFLEET_INVENTORY_DIR": str(root / "inventory"),
        "SWIFTFLEET_STATE_DIR": str(root / "state"),
        "SWIFTFLEET_OUTPUTS_DIR": str(root / "outputs"),
        "SWIFT_API_KEY": KEY,
    }
    config = root / "cluster.yml"
    config.write_text(yaml.safe_dump(CLUSTER))
    make_eval_set(tiny / "eval.jsonl", root / "evalset")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        mp.delenv("SWIFTFLEET_CLUSTER", raising=False)
        try:
            up = run_cli("cluster", "up", "--config", str(config), env=env)
            assert up.returncode == 0, up.stdout + up.stderr
            yield Rehearsal(root, env, tiny)
        finally:
            run_cli("cluster", "down", "--config", str(config), env=env)


def test_a_job_too_big_for_the_inventory_touches_no_host(rehearsal: Rehearsal) -> None:
    job = rehearsal.job(
        name="too-big", kind="swift sft", model=str(rehearsal.tiny / "model"),
        datasets=[str(rehearsal.tiny / "chat.jsonl")], nodes=3, args=TRAIN_ARGS,
    )  # fmt: skip
    run = rehearsal.play("train.yml", job)
    assert run.rc != 0
    assert "job: nodes: the job wants 3 nodes, the cluster has 2" in run.output
    assert set(run.recap()) == {"localhost"}, run.output[-3000:]  # no node was contacted
    assert "too-big" not in rehearsal.node(0, "ls", "/root/swiftfleet/jobs")


def test_setup_installs_the_cpu_stack_twice_the_second_run_changes_nothing(rehearsal: Rehearsal) -> None:
    """setup.yml on both nodes in parallel; run again, it changes nothing; the stack table says consistent."""
    argv = [
        "-i", str(inventory_path(str(CLUSTER["name"]))), str(REPO / "playbooks" / "setup.yml"),
        "-e", json.dumps({"ms_swift_extras": ["eval"]}),
    ]  # fmt: skip
    hosts = {f"{CLUSTER['name']}-node{rank}" for rank in (0, 1)}
    first = ansible_playbook(*argv, env=rehearsal.env)
    print(f"setup.yml (2 nodes, with evalscope), first run: {first.seconds:.0f} s")
    assert first.rc == 0, first.output[-5000:]
    assert set(first.recap()) == hosts
    assert all(r["changed"] > 0 and r["failed"] == 0 for r in first.recap().values()), first.recap()

    second = ansible_playbook(*argv, env=rehearsal.env)
    print(f"setup.yml (2 nodes), second run: {second.seconds:.0f} s")
    assert second.rc == 0, second.output[-5000:]
    assert set(second.recap()) == hosts
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in second.recap().values()), second.recap()

    report = json.loads((known_hosts_path(str(CLUSTER["name"])).parent / "stack.json").read_text())
    assert set(report) == hosts
    for node in report.values():
        assert (node["torch"], node["torch_cuda"], node["gpu"]) == ("2.13.0+cpu", None, "no GPU")
        assert node["ms_swift"] == "4.6.0" and node["consistent"] is True, node
    assert "consistent" in second.output and "2.13.0+cpu" in second.output  # the table was printed


def test_lora_trains_across_both_nodes(rehearsal: Rehearsal) -> None:
    job = rehearsal.job(
        name="tiny-e2e", kind="swift sft", model=str(rehearsal.tiny / "model"),
        datasets=[str(rehearsal.tiny / "chat.jsonl")], nproc_per_node=1,
        args={**TRAIN_ARGS, "max_steps": 6, "save_steps": 6}, env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    run = rehearsal.play("train.yml", job)
    print(f"train.yml (2 nodes, 6 steps): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    assert "step 6/6  loss" in run.output  # rank 0's progress, printed as it came
    out = rehearsal.outputs / "tiny-e2e"
    for rank in (0, 1):  # one process group of two: each rank's own log, fetched and tagged
        text = (out / f"rank{rank}.log").read_text()
        assert f"rank: {rank}, local_rank: 0, world_size: 2, local_world_size: 1" in text
    ckpt = latest_checkpoint(out / "output")
    assert ckpt is not None and ckpt.name == "checkpoint-6"
    assert (ckpt / "adapter_model.safetensors").stat().st_size > 0


def test_export_merges_the_lora(rehearsal: Rehearsal) -> None:
    job = rehearsal.job(
        name="tiny-merge", kind="swift export", model=str(rehearsal.tiny / "model"), checkpoint="tiny-e2e",
        args={**CPU_ARGS, "merge_lora": True}, env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    run = rehearsal.play("export.yml", job)
    print(f"export.yml (merge): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    merged = rehearsal.outputs / "tiny-merge" / "output"
    assert (merged / "model.safetensors").stat().st_size > 0
    assert "lora" not in (merged / "config.json").read_text().lower()


def test_deploy_serves_a_chat_through_the_bridge(rehearsal: Rehearsal) -> None:
    job = rehearsal.job(
        name="tiny-server", kind="swift deploy", model=str(rehearsal.outputs / "tiny-merge" / "output"),
        args={**CPU_ARGS, "infer_backend": "transformers", "served_model_name": "tiny", "port": 8000},
        env={"CUDA_VISIBLE_DEVICES": "", "SWIFT_API_KEY": "{{ lookup('ansible.builtin.env', 'SWIFT_API_KEY') }}"},
    )  # fmt: skip
    run = rehearsal.play("deploy.yml", job)
    print(f"deploy.yml: {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    assert f"tiny-server serves tiny at http://{RANK0_IP}:8000/v1" in run.output
    assert KEY not in run.output
    answer = chat(f"http://{RANK0_IP}:8000/v1", "tiny", "alpha beta gamma", KEY)
    assert answer["choices"][0]["message"]["role"] == "assistant", answer  # type: ignore[index]
    assert KEY not in rehearsal.node(0, "cat", "/root/swiftfleet/jobs/tiny-server/rank0.log")


def test_eval_scores_the_served_model_offline(rehearsal: Rehearsal) -> None:
    job = rehearsal.job(
        name="tiny-eval", kind="swift eval", model="tiny",
        args={
            "eval_url": "http://{{ swiftfleet_rank0_ip }}:8000/v1", "eval_backend": "Native",
            "eval_dataset": ["general_mcq"], "eval_limit": 5, "eval_num_proc": 1,
            "eval_dataset_args": {"general_mcq": {"local_path": str(rehearsal.root / "evalset"), "subset_list": ["tiny"]}},
            "eval_generation_config": {"max_tokens": 16},
        },
        env={"SWIFT_API_KEY": "{{ lookup('ansible.builtin.env', 'SWIFT_API_KEY') }}"},
    )  # fmt: skip
    run = rehearsal.play("eval.yml", job)
    print(f"eval.yml (5 questions against the server): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    reports = list(
        (rehearsal.outputs / "tiny-eval" / "output").glob("native/*/reports/tiny/general_mcq.json")
    )
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["metrics"][0]["num"] == 5 and 0.0 <= report["score"] <= 1.0
    assert "general_mcq  mean_acc" in run.output  # the printed table


def test_a_killed_rank_stops_the_run_and_is_named(rehearsal: Rehearsal) -> None:
    job = rehearsal.job(
        name="tiny-kill", kind="swift sft", model=str(rehearsal.tiny / "model"),
        datasets=[str(rehearsal.tiny / "chat.jsonl")], nproc_per_node=1,
        args={**TRAIN_ARGS, "max_steps": 500, "save_steps": 1000, "logging_steps": 1},
        env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    log = rehearsal.root / "kill.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "ansible-playbook"), *rehearsal.argv("train.yml", job)],
            cwd=REPO, env={**os.environ, **rehearsal.env, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        while "step 1/500" not in log.read_text():  # training is under way on both ranks
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(2)
        rehearsal.node(1, "systemctl", "kill", "--signal=SIGKILL", "swiftfleet-tiny-kill-rank1.service")
        rc = proc.wait(timeout=600)
    finally:
        proc.kill()
    text = log.read_text()
    assert rc != 0
    assert "job tiny-kill: rank 1 (sfe2e-node1) failed first" in text, text[-3000:]
    assert "Every other rank was stopped" in text and "[rank 1] " in text
    for rank in (0, 1):
        state = rehearsal.node(rank, "systemctl", "is-active", f"swiftfleet-tiny-kill-rank{rank}.service")
        assert state.strip() in ("inactive", "failed"), state
    assert (rehearsal.outputs / "tiny-kill" / "rank1.log").is_file()
