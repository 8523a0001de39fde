"""Where a job's files and hub caches go on a node: what setup's node_storage recorded (local NVMe, a shared file
system), read from the setup record; a record from before that role keeps the old places."""

import os
import subprocess

from swiftfleet.jobs import plan, render, spec
from swiftfleet.jobs.node_facts import NodeFacts
from swiftfleet.jobs.plan_model import JobPlan
from tests.jobs.conftest import recorded

NODES = [plan.NodeInfo(f"gpu{i}", i, f"10.0.1.{10 + i}", "ubuntu", 8, 80, "p4d.24xlarge") for i in range(2)]
NVME = {
    "data_dir": "/opt/dlami/nvme/swiftfleet",
    "scratch": "/opt/dlami/nvme",
    "shared_dir": None,
    "hub_cache": "/opt/dlami/nvme/swiftfleet/hub",
}
SHARED = {**NVME, "shared_dir": "/shared/swiftfleet", "hub_cache": "/shared/swiftfleet/hub"}


def _facts(**storage: object) -> NodeFacts:
    return recorded("/home/ubuntu", "/home/ubuntu/swift-env", "ubuntu").model_copy(update=storage)


def _plan(facts: dict[str, NodeFacts], env: dict[str, str] | None = None) -> JobPlan:
    job = {"name": "lora", "kind": "swift sft", "model": "Qwen/Qwen2.5-7B", "datasets": ["org/data"]}
    if env:
        job["env"] = env  # type: ignore[assignment]
    return plan.build(spec.parse_job({"job": job}, "test"), NODES, "test", facts)


def _sourced(job_plan: JobPlan, rank: int, *names: str) -> list[str]:
    node = job_plan.nodes[rank]
    text = render.render_node(job_plan, rank)[f"{node.job_dir}/job.env"]
    script = text + "".join(f'printf "%s\\0" "${n}"\n' for n in names)
    out = subprocess.run(
        ["sh", "-c", script], capture_output=True, check=True, env={"PATH": os.environ["PATH"]}
    )
    return out.stdout.decode().split("\0")[:-1]


def test_nvme_holds_the_job_directory_checkpoints_and_hub_caches() -> None:
    job_plan = _plan({n.name: _facts(**NVME) for n in NODES})
    for node in job_plan.nodes:
        assert node.job_dir == "/opt/dlami/nvme/swiftfleet/jobs/lora"
        assert node.log == f"/opt/dlami/nvme/swiftfleet/jobs/lora/rank{node.rank}.log"
        assert all(
            f.dest.startswith(("/opt/dlami/nvme/swiftfleet/jobs/lora/", "/etc/systemd/")) for f in node.files
        )
        assert _sourced(job_plan, node.rank, "HF_HOME", "MODELSCOPE_CACHE") == [
            "/opt/dlami/nvme/swiftfleet/hub/huggingface",
            "/opt/dlami/nvme/swiftfleet/hub/modelscope",
        ]
    assert not job_plan.prefetch_once  # each node's NVMe is its own: every node downloads
    assert job_plan.prefetch  # the hub model is fetched before the launch


def test_the_jobs_own_cache_setting_wins() -> None:
    job_plan = _plan({n.name: _facts(**NVME) for n in NODES}, env={"HF_HOME": "/data/hf"})
    assert job_plan.nodes[0].env == {"MODELSCOPE_CACHE": "/opt/dlami/nvme/swiftfleet/hub/modelscope"}
    assert _sourced(job_plan, 0, "HF_HOME", "MODELSCOPE_CACHE") == [
        "/data/hf",
        "/opt/dlami/nvme/swiftfleet/hub/modelscope",
    ]


def test_a_shared_hub_cache_is_filled_once_by_rank_0() -> None:
    job_plan = _plan({n.name: _facts(**SHARED) for n in NODES})
    assert job_plan.prefetch_once
    assert {n.env["MODELSCOPE_CACHE"] for n in job_plan.nodes} == {"/shared/swiftfleet/hub/modelscope"}
    assert job_plan.nodes[1].job_dir == "/opt/dlami/nvme/swiftfleet/jobs/lora"  # job files stay node-local


def test_a_job_that_moves_a_hub_cache_has_every_node_download() -> None:
    """The job's own cache may be node-local: rank 0 alone would leave the others without the files."""
    for var in ("HF_HOME", "HF_HUB_CACHE", "MODELSCOPE_CACHE"):
        assert not _plan({n.name: _facts(**SHARED) for n in NODES}, env={var: "/data/cache"}).prefetch_once


def test_one_node_without_the_shared_cache_makes_every_node_download() -> None:
    job_plan = _plan({NODES[0].name: _facts(**SHARED), NODES[1].name: _facts(**NVME)})
    assert not job_plan.prefetch_once


def test_a_record_from_before_node_storage_keeps_the_home_directory() -> None:
    job_plan = _plan({n.name: _facts() for n in NODES})
    assert [n.job_dir for n in job_plan.nodes] == ["/home/ubuntu/swiftfleet/jobs/lora"] * 2
    assert all(n.env == {} for n in job_plan.nodes) and not job_plan.prefetch_once
    assert _sourced(job_plan, 0, "HF_HOME") == [""]
