"""GRPO in vLLM server mode as one job (`rollout:`): `swift rollout` on the job's last nodes, the trainers pointed at
their private IPs, started first and health-checked. No GPU here: the rendered files and the playbooks' start order
are asserted, CPU nodes refuse it with the reason, and every mistake is one line before any spend."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from swiftfleet.errors import SwiftfleetError
from swiftfleet.jobs import plan, render, spec
from swiftfleet.jobs.plan_model import JobPlan
from tests.conftest import REPO

GPU_NODES = [
    plan.NodeInfo(f"gpu{i}", i, f"10.0.1.{10 + i}", "ubuntu", 8, 80, "p5.48xlarge") for i in range(4)
]
GRPO = {
    "name": "grpo-server",
    "kind": "swift rlhf",
    "rlhf_type": "grpo",
    "model": "Qwen/Qwen2.5-7B-Instruct",
    "datasets": ["AI-MO/NuminaMath-TIR#100"],
    "args": {"tuner_type": "lora", "template": "qwen2_5", "max_length": 2048, "reward_funcs": ["format"]},
}


def _plan(cluster: list[plan.NodeInfo] = GPU_NODES, **job: Any) -> JobPlan:
    return plan.build(spec.parse_job({"job": {**GRPO, **job}}, "job"), cluster, "job")


def test_the_last_nodes_serve_rollouts_and_the_others_train_against_them() -> None:
    job_plan = _plan(
        rollout={"nodes": 2, "args": {"vllm_tensor_parallel_size": 4, "vllm_data_parallel_size": 2}}
    )
    assert [(n.rank, n.role) for n in job_plan.nodes] == [
        (0, "train"),
        (1, "train"),
        (2, "rollout"),
        (3, "rollout"),
    ]
    assert job_plan.nnodes == 2 and job_plan.nproc_per_node == 8 and job_plan.master_addr == "10.0.1.10"
    rollout = job_plan.rollout
    assert rollout is not None and rollout.hosts == ["10.0.1.12", "10.0.1.13"] and rollout.health == "/health"
    cfg = job_plan.config
    assert (cfg["use_vllm"], cfg["vllm_mode"], cfg["vllm_server_host"], cfg["vllm_server_port"]) == (
        True, "server", ["10.0.1.12", "10.0.1.13"], [8000, 8000]
    )  # fmt: skip
    # The servers load the job's model with its template and length, and listen for the trainers.
    assert rollout.config == {
        "model": "Qwen/Qwen2.5-7B-Instruct", "template": "qwen2_5", "max_length": 2048,
        "vllm_tensor_parallel_size": 4, "vllm_data_parallel_size": 2, "host": "0.0.0.0", "port": 8000,
    }  # fmt: skip

    server, trainer = render.render_node(job_plan, 3), render.render_node(job_plan, 1)
    server_dir, trainer_dir = job_plan.nodes[3].job_dir, job_plan.nodes[1].job_dir
    assert 'exec "$swift_env/bin/swift" rollout config.yaml' in server[f"{server_dir}/run.sh"]
    assert (
        "NNODES" not in server[f"{server_dir}/job.env"] and "NODE_RANK" not in server[f"{server_dir}/job.env"]
    )
    served = yaml.safe_load(server[f"{server_dir}/config.yaml"])
    assert served == rollout.config
    assert 'exec "$swift_env/bin/swift" rlhf config.yaml' in trainer[f"{trainer_dir}/run.sh"]
    assert "NNODES=2\nNODE_RANK=1\n" in trainer[f"{trainer_dir}/job.env"]
    trained = yaml.safe_load(trainer[f"{trainer_dir}/config.yaml"])
    assert (
        trained["vllm_server_host"] == ["10.0.1.12", "10.0.1.13"]
        and "vllm_tensor_parallel_size" not in trained
    )
    unit = server[f"/etc/systemd/system/{job_plan.nodes[3].unit}"]
    assert "Description=swiftfleet job grpo-server rank 3/4 (swift rollout, serving the trainers)" in unit


def test_the_rollout_port_is_the_trainers_and_the_example_plans() -> None:
    job_plan = _plan(cluster=GPU_NODES[:2], rollout={"args": {"port": 8011}})
    assert job_plan.config["vllm_server_port"] == [8011] and job_plan.rollout.port == 8011  # type: ignore[union-attr]
    example = plan.build(spec.load_job(REPO / "jobs" / "grpo-server.yml"), GPU_NODES[:3], "example")
    assert [n.role for n in example.nodes] == ["train", "train", "rollout"] and example.nnodes == 2


def test_the_servers_start_and_answer_before_any_trainer() -> None:
    """The playbook's order: start the rollout units, their health on their node and from rank 0 (the trainers'
    path), stop them all and fail when one did not answer, and only then rank 0 and the other trainers."""
    tasks = yaml.safe_load((REPO / "playbooks" / "tasks" / "start.yml").read_text())
    names = [t["name"] for t in tasks]
    assert names == [
        "Start the rollout servers",
        "Ask each rollout server's health on its node until it answers",
        "Ask every rollout server from rank 0 over the private network",
        "Find the rollout servers that did not answer",
        "Read the log of a rollout server that did not answer",
        "Stop the rollout servers (one did not answer)",
        "Fail, naming the rollout server that did not answer",
        "Start rank 0",
        "Start the other ranks",
    ]
    by_name = {t["name"]: t for t in tasks}
    assert by_name["Start the rollout servers"]["when"] == "job_node.role == 'rollout'"
    assert "{{ job_plan.rollout.health }}" in by_name[names[1]]["ansible.builtin.uri"]["url"]
    assert by_name["Start the other ranks"]["when"] == "job_node.rank != 0 and job_node.role == 'train'"
    watch = (REPO / "playbooks" / "tasks" / "watch_round.yml").read_text()
    assert (
        "selectattr('role', '==', 'rollout') | rejectattr('running')" in watch
    )  # a server that ended failed
    collect = yaml.safe_load((REPO / "playbooks" / "tasks" / "collect.yml").read_text())
    assert any(t["name"] == "Stop the rollout servers (the trainers are done)" for t in collect)


def test_cpu_nodes_refuse_it_with_the_reason() -> None:
    cpu = [plan.NodeInfo(f"cpu{i}", i, f"10.0.2.{10 + i}", "root", 0, 0.0, "c7i.4xlarge") for i in range(2)]
    with pytest.raises(
        SwiftfleetError, match=r"^job: rollout: GRPO server mode needs GPUs: `swift rollout` serves"
    ):
        _plan(cluster=cpu, rollout={"nodes": 1})


@pytest.mark.parametrize(
    ("job", "where", "message"),
    [
        ({"kind": "swift sft", "rlhf_type": None, "rollout": {}}, "rollout", "not `swift sft`"),
        ({"rlhf_type": "dpo", "rollout": {}}, "rollout", "not `swift rlhf` dpo"),
        ({"nodes": 2, "rollout": {"nodes": 2}}, "nodes", "leave no trainer"),
        ({"rollout": {"nodes": 4}}, "nodes", "4 node(s) and rollout.nodes 4 leave no trainer"),
        ({"rollout": {"nodes": 0}}, "rollout.nodes", "greater than or equal to 1"),
        ({"args": {**GRPO["args"], "vllm_server_host": ["10.0.0.9"]}, "rollout": {}}, "args.vllm_server_host",
         "the kit points the trainers at the rollout nodes"),
        ({"args": {**GRPO["args"], "vllm_mode": "colocate"}, "rollout": {}}, "args.vllm_mode", "the mode is server"),
        ({"args": {**GRPO["args"], "use_vllm": False}, "rollout": {}}, "args.use_vllm", "leave use_vllm out"),
        ({"rollout": {"args": {"model": "x/y"}}}, "rollout.args.model", "use the job's `model`"),
        ({"rollout": {"args": {"host": "0.0.0.0"}}}, "rollout.args.host", "listens on 0.0.0.0"),
        ({"rollout": {"args": {"vllm_tensor_paralel_size": 2}}}, "rollout.args.vllm_tensor_paralel_size",
         "vllm_tensor_parallel_size"),
        ({"rollout": {"args": {"vllm_tensor_parallel_size": 16}}}, "rollout.args.vllm_tensor_parallel_size",
         "needs 16 GPUs on one node, the nodes have 8"),
        ({"rollout": {"args": {"vllm_pipeline_parallel_size": 2}}}, "rollout.args.vllm_pipeline_parallel_size",
         "no pipeline parallelism"),
        ({"rollout": {"args": {"api_key": "abc"}}}, "rollout.args.api_key", "never a command line"),
        ({"rollout": {}, "recover": True}, "recover", "a lost rollout node is not brought back"),
        ({"rollout": {"size": 1}}, "rollout.size", "unknown key (known here: nodes, args)"),
    ],
)  # fmt: skip
def test_what_server_mode_refuses_is_one_line(job: dict[str, Any], where: str, message: str) -> None:
    with pytest.raises(SwiftfleetError) as err:
        _plan(**job)
    text = str(err.value)
    assert text.startswith(f"job: {where}: ") and message in text and "\n" not in text, text


def test_server_mode_without_a_server_names_the_rollout_field(tmp_path: Path) -> None:
    with pytest.raises(SwiftfleetError, match=r"args.vllm_mode: .*`rollout: \{nodes: 1\}`"):
        _plan(args={**GRPO["args"], "use_vllm": True, "vllm_mode": "server"})
