"""Example job files, the editor schema, and what the rendered files say (the same through Ansible and Python)."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from swiftfleet.errors import SwiftfleetError
from swiftfleet.jobs import node_facts, plan, render, spec
from swiftfleet.jobs.plan_model import JobPlan
from tests.conftest import REPO
from tests.jobs.conftest import recorded, write_record

EXAMPLES = sorted((REPO / "jobs").glob("*.yml"))


def test_schema_file_is_up_to_date() -> None:
    assert (REPO / "jobs" / "job.schema.json").read_text() == spec.schema_text(), "run `make schema`"


def test_every_kind_has_an_example() -> None:
    kinds = {yaml.safe_load(p.read_text())["job"]["kind"] for p in EXAMPLES}
    assert kinds == {
        "swift sft", "swift rlhf", "megatron sft", "swift deploy", "swift eval", "swift export", "swift merge-lora",
        "swift infer", "swift sample", "swift app", "swift web-ui",
        "megatron export",
    }  # fmt: skip
    assert len(EXAMPLES) >= 12


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_validates_and_plans(path: Path, fake_tiny: Path) -> None:
    job = spec.load_job(path)
    job_plan = plan.build(job, plan.hypothetical_nodes(2), str(path))
    assert job_plan.nodes, job_plan


def _plan(job: dict[str, Any], nodes: list[plan.NodeInfo]) -> JobPlan:
    return plan.build(spec.parse_job({"job": job}, "test"), nodes, "test")


GPU_NODES = [
    plan.NodeInfo(f"gpu{i}", i, f"10.0.1.{10 + i}", "ubuntu", 8, 80, "p5.48xlarge") for i in range(3)
]


def test_training_env_on_every_rank(fake_tiny: Path) -> None:
    """MASTER_ADDR is rank 0's private IP on every node, rank 0 included; never 127.0.0.1."""
    job_plan = _plan(yaml.safe_load((REPO / "jobs" / "lora-sft.yml").read_text())["job"], GPU_NODES)
    assert job_plan.nproc_per_node == 8
    for node in job_plan.nodes:
        env_file = render.render_node(job_plan, node.rank)[f"{node.job_dir}/job.env"]
        assert 'MASTER_ADDR="10.0.1.10"\n' in env_file
        assert f"NODE_RANK={node.rank}\n" in env_file and "NNODES=3\n" in env_file
        assert "127.0.0.1" not in env_file
        assert "NPROC_PER_NODE=8\n" in env_file and "MASTER_PORT=29500\n" in env_file
    assert "sizing" not in " ".join(job_plan.notes) or job_plan.notes


def test_deploy_never_uses_torchrun_and_keeps_the_key_off_command_lines() -> None:
    key = "sk-test-$ecret`x`"
    job = {
        "name": "srv",
        "kind": "swift deploy",
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "args": {"port": 8001, "infer_backend": "vllm"},
        "env": {"SWIFT_API_KEY": key},
    }
    job_plan = _plan(job, GPU_NODES)
    assert [n.rank for n in job_plan.nodes] == [0]
    node = job_plan.nodes[0]
    files = render.render_node(job_plan, node.rank)
    jd = node.job_dir
    assert "NNODES" not in files[f"{jd}/job.env"] and "NPROC_PER_NODE" not in files[f"{jd}/job.env"]
    unit = files["/etc/systemd/system/swiftfleet-srv-rank0.service"]
    assert f"EnvironmentFile={jd}/api-key.env" in unit
    for name, text in files.items():
        if not name.endswith("api-key.env"):
            assert "sk-test" not in text, name
    assert files[f"{jd}/api-key.env"].endswith('SWIFT_API_KEY="sk-test-\\$ecret\\`x\\`"\n')
    assert {f.dest: f.mode for f in node.files}[f"{jd}/api-key.env"] == "0600"
    config = yaml.safe_load(files[f"{jd}/config.yaml"])
    assert config["host"] == "0.0.0.0" and config["port"] == 8001


@pytest.mark.parametrize("limit", [None, "1h30m"])
def test_time_limit_becomes_every_rank_units_runtime_limit(limit: str | None) -> None:
    job = {"name": "t", "kind": "swift sft", "model": "Qwen/Qwen2.5-7B", "datasets": ["org/data"]}
    job_plan = _plan({**job, "time_limit": limit} if limit else job, GPU_NODES[:2])
    for node in job_plan.nodes:
        unit = render.render_node(job_plan, node.rank)[f"/etc/systemd/system/{node.unit}"]
        assert ("RuntimeMaxSec=1h30m\n" in unit) is (limit is not None), unit
        assert "Restart=no" in unit  # a timed-out rank stays down: the watch reports it


def test_quantizing_needs_a_gpu_node(fake_tiny: Path) -> None:
    """awq on the local CPU cluster is refused on the laptop; a dry run says so; a GPU node renders the export."""
    job = yaml.safe_load((REPO / "jobs" / "quantize-awq.yml").read_text())["job"]
    cpu = [plan.NodeInfo("sfl-node0", 0, "172.31.250.10", "root", 0, 0.0, "local")]
    with pytest.raises(SwiftfleetError, match=r"^test: args\.quant_method: awq quantization needs a GPU"):
        _plan(job, cpu)
    assert any("needs a GPU" in note for note in _plan(job, plan.hypothetical_nodes(1)).notes)
    job_plan = _plan(job, GPU_NODES)
    assert job_plan.config["quant_method"] == "awq" and job_plan.nnodes == 1
    run_sh = render.render_node(job_plan, 0)[f"{job_plan.nodes[0].job_dir}/run.sh"]
    assert run_sh.rstrip().endswith('"$swift_env/bin/swift" export config.yaml'), run_sh


def test_env_file_reads_back_the_same_in_sh() -> None:
    """The quoting of values: sh sources job.env and gets every value back byte for byte."""
    tricky = {"A": 'x"y', "B": "$HOME `id` \\n", "C": "it's", "D": ""}
    job = {
        "name": "q",
        "kind": "swift sft",
        "model": "Qwen/Qwen2.5-7B",
        "datasets": ["org/data"],
        "env": tricky,
    }
    facts = {GPU_NODES[0].name: recorded("/home/ubuntu", "/home/ubuntu/swift-env", "ubuntu")}  # no env files
    job_plan = plan.build(spec.parse_job({"job": job}, "test"), GPU_NODES[:1], "test", facts)
    node = job_plan.nodes[0]
    text = render.render_node(job_plan, node.rank)[f"{node.job_dir}/job.env"]
    script = text + "".join(f'printf "%s\\0" "${k}"\n' for k in tricky)
    out = subprocess.run(
        ["sh", "-c", script], capture_output=True, check=True, env={"PATH": os.environ["PATH"]}
    )
    assert out.stdout.decode().split("\0")[:-1] == list(tricky.values())


def test_ansible_renders_the_same_files(fake_tiny: Path, tmp_path: Path, isolated_state: Path) -> None:
    """The templates through Ansible's template module (filters from filter_plugins/) give the same bytes as
    `swiftfleet render`, from the same setup record of the nodes (a job user and an environment of their own),
    and Ansible's plan filter refuses a bad job with the same line (local connection only)."""
    nodes = plan.hypothetical_nodes(2)
    facts = {
        n.name: recorded("/srv/trainer", "/opt/envs/swift", "trainer", ("/etc/swiftfleet/cuda.env",))
        for n in nodes
    }
    write_record("c", facts)
    hosts = {
        n.name: {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "node_rank": n.rank,
            "private_ip": n.private_ip,
            "gpu_count": 0,
            "gpu_memory_gib": 0,
            "instance_type": n.instance_type,
            "ansible_user": n.user,
            "swiftfleet_cluster": "c",
        }
        for n in nodes
    }
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"c": {"hosts": hosts}}}}))
    out = tmp_path / "ansible"
    playbook = tmp_path / "render.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "c",
                    "gather_facts": False,
                    "vars": {
                        "job_plan": "{{ job | swiftfleet_job_plan(groups['c'] | map('extract', hostvars) | list) }}",
                        "job_node": "{{ job_plan.nodes | selectattr('host', 'eq', inventory_hostname) | first }}",
                    },
                    "tasks": [
                        # as playbooks/tasks/plan.yml does: a bad job's plan is its one line
                        {
                            "name": "Fail on a bad job",
                            "ansible.builtin.fail": {"msg": "{{ job_plan.error }}"},
                            "when": "job_plan.error is defined",
                        },
                        {
                            "name": "Render",
                            "ansible.builtin.template": {
                                "src": f"{REPO}/templates/{{{{ item.template }}}}",
                                "dest": f"{out}/rank{{{{ job_node.rank }}}}-{{{{ inventory_hostname }}}}{{{{ item.dest }}}}",
                                "mode": "{{ item.mode }}",
                            },
                            "loop": "{{ job_node.files }}",
                        },
                    ],
                }
            ]
        )
    )
    for item in ("rank0-node0", "rank1-node1"):
        (out / item / "srv/trainer/swiftfleet/jobs/tiny-lora").mkdir(parents=True)
        (out / item / "etc/systemd/system").mkdir(parents=True)
    env = {
        **os.environ,
        "ANSIBLE_FILTER_PLUGINS": str(REPO / "filter_plugins"),
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
    }
    ansible = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "ansible-playbook"
    ansible = ansible if ansible.exists() else REPO / ".venv" / "bin" / "ansible-playbook"
    job_file = REPO / "jobs" / "tiny-lora.yml"
    run = subprocess.run(
        [str(ansible), "-i", str(inventory), str(playbook), "-e", f"@{job_file}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=fake_tiny,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    python_out = tmp_path / "python"
    render.render_all(plan.build(spec.load_job(job_file), nodes, "x", node_facts.load("c")), python_out)
    py_files = sorted(p.relative_to(python_out) for p in python_out.rglob("*") if p.is_file())
    ans_files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert py_files == ans_files and len(py_files) == 9  # rank 0 also has stage-rsyncd.conf
    for rel in py_files:
        assert (python_out / rel).read_text() == (out / rel).read_text(), rel
        assert (python_out / rel).stat().st_mode == (out / rel).stat().st_mode, rel

    bad = tmp_path / "bad.yml"
    bad.write_text(
        job_file.read_text().replace("lora_rank", "x").replace("tuner_type: lora", "train_type: lora")
    )
    run = subprocess.run(
        [str(ansible), "-i", str(inventory), str(playbook), "-e", f"@{bad}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=fake_tiny,
        timeout=300,
        check=False,
    )
    assert run.returncode != 0
    assert (
        "job: args.train_type: 'train_type' is not a `swift sft` argument of ms-swift 4.6.0: ms-swift 4 renamed"
        in run.stdout + run.stderr
    )
