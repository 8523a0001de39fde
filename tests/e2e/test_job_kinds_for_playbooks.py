"""What the export, eval and deploy playbooks rely on in the plan: `swift export` jobs, a job's `checkpoint`
(a directory, or a training job's newest fetched checkpoint), evalscope's local datasets going up with the job,
and hub models listed for every node to download. Plans and rendered files only: no host, no ms-swift."""

from pathlib import Path
from typing import Any

import pytest

from swiftfleet.errors import SwiftfleetError
from swiftfleet.jobs import plan, render, spec
from swiftfleet.jobs.plan_model import JobPlan

NODES = plan.hypothetical_nodes(2)


def _plan(**job: Any) -> JobPlan:
    return plan.build(spec.parse_job({"job": job}, "job"), NODES, "job")


@pytest.fixture
def trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A model directory and a training job's fetched outputs with two checkpoints."""
    monkeypatch.setenv("SWIFTFLEET_OUTPUTS_DIR", str(tmp_path / "outputs"))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    for run, step in (("v0-1", 10), ("v1-2", 30), ("v1-2", 20)):
        ckpt = tmp_path / "outputs" / "lora" / "output" / run / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        (ckpt / "adapter_model.safetensors").write_text("x")
        (ckpt / "adapter_config.json").write_text("{}")
    return tmp_path


@pytest.mark.parametrize(
    ("kind", "args"),
    [("swift export", {"merge_lora": True}), ("swift merge-lora", {})],
    ids=["export", "merge-lora"],
)
def test_export_merges_the_newest_checkpoint_of_a_training_job(
    trained: Path, kind: str, args: dict[str, Any]
) -> None:
    job_plan = _plan(name="merge", kind=kind, model=str(trained / "model"), checkpoint="lora", args=args)
    assert job_plan.playbook == "export"
    newest = trained / "outputs" / "lora" / "output" / "v1-2" / "checkpoint-30"
    assert (str(newest), "adapters/checkpoint-30") in {(u.src, u.dest) for u in job_plan.uploads}
    assert job_plan.config["adapters"] == ["adapters/checkpoint-30"]
    assert (job_plan.config["output_dir"], job_plan.config["exist_ok"]) == ("output", True)
    assert [n.rank for n in job_plan.nodes] == [0] and job_plan.output.mode == "fetch"
    node = job_plan.nodes[0]
    files = render.render_node(job_plan, node.rank)
    run_sh = files[f"{node.job_dir}/run.sh"]
    sub = kind.split()[1]
    assert f'exec "$swift_env/bin/swift" {sub} config.yaml' in run_sh and "torchrun" not in run_sh
    # ms-swift keeps an existing merge (it skips the save): a re-run starts from an empty output/.
    assert run_sh.index("rm -rf -- output\n") < run_sh.index("exec ")
    assert f"{node.job_dir}/swift_launch.py" not in files


def test_merge_lora_needs_adapters_and_takes_no_data(trained: Path) -> None:
    model = str(trained / "model")
    with pytest.raises(SwiftfleetError) as err:
        _plan(name="m", kind="swift merge-lora", model=model)
    assert str(err.value).startswith(
        "job: checkpoint: `swift merge-lora` merges LoRA adapters into the model"
    )
    with pytest.raises(
        SwiftfleetError,
        match=r"^job: datasets: `swift merge-lora` runs on rank 0 alone, it takes no datasets",
    ):
        _plan(name="m", kind="swift merge-lora", model=model, checkpoint="lora", datasets=["a/b"])
    with pytest.raises(SwiftfleetError, match=r"is not a `swift merge-lora` argument of ms-swift 4\.6\.0"):
        _plan(name="m", kind="swift merge-lora", model=model, checkpoint="lora", args={"merge_loraa": True})
    given = _plan(name="m", kind="swift merge-lora", model=model, args={"adapters": ["org/lora-adapter"]})
    assert given.config["adapters"] == ["org/lora-adapter"]


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ({"checkpoint": "nope"}, "job: checkpoint: no checkpoint-N under"),
        (
            {"checkpoint": "./missing-dir"},
            "job: checkpoint: './missing-dir' is not a LoRA checkpoint here (no adapter_config.json)",
        ),
        ({"checkpoint": "org/adapter"}, "job: checkpoint: 'org/adapter' is neither a local directory"),
        (
            {"checkpoint": "lora", "args": {"adapters": ["x"]}},
            "give the checkpoint or args.adapters, not both",
        ),
    ],
)
def test_bad_checkpoints_are_one_line(trained: Path, job: dict[str, Any], message: str) -> None:
    with pytest.raises(SwiftfleetError, match=r"^job: checkpoint: ") as err:
        _plan(name="merge", kind="swift export", model=str(trained / "model"), **job)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_checkpoint_is_not_for_training_or_a_served_eval(trained: Path) -> None:
    with pytest.raises(SwiftfleetError, match="continues from a checkpoint with `resume`"):
        _plan(name="t", kind="swift sft", model=str(trained / "model"), datasets=["a/b"], checkpoint="lora")
    with pytest.raises(SwiftfleetError, match="scores the served model"):
        _plan(name="e", kind="swift eval", model="tiny", checkpoint="lora",
              args={"eval_url": "http://10.0.0.1:8000/v1"})  # fmt: skip


def test_export_takes_a_calibration_set_eval_does_not() -> None:
    job_plan = _plan(
        name="awq", kind="swift export", model="Qwen/Qwen2.5-7B-Instruct", datasets=["org/calib#64"],
        args={"quant_method": "awq", "quant_bits": 4},
    )  # fmt: skip
    assert job_plan.config["dataset"] == ["org/calib#64"]
    assert [(p.id, p.repo_type) for p in job_plan.prefetch] == [
        ("Qwen/Qwen2.5-7B-Instruct", "model"),
        ("org/calib", "dataset"),
    ]  # their commands: tests/jobs/test_hub_commands.py
    with pytest.raises(SwiftfleetError, match="it takes no datasets"):
        _plan(name="e", kind="swift eval", model="org/m", datasets=["org/d"])


def test_an_eval_sets_local_directory_goes_up_with_the_job_and_the_key_to_its_unit(tmp_path: Path) -> None:
    (tmp_path / "evalset").mkdir()
    job_plan = _plan(
        name="ev", kind="swift eval", model="tiny",
        args={"eval_url": "http://10.0.0.1:8000/v1", "eval_dataset": ["general_mcq"],
              "eval_dataset_args": {"general_mcq": {"local_path": str(tmp_path / "evalset"), "subset_list": ["t"]}}},
        env={"SWIFT_API_KEY": "k-secret"},
    )  # fmt: skip
    assert (str(tmp_path / "evalset"), "eval_data/general_mcq") in {(u.src, u.dest) for u in job_plan.uploads}
    assert job_plan.config["eval_dataset_args"] == {
        "general_mcq": {"local_path": "eval_data/general_mcq", "subset_list": ["t"]}
    }
    node = job_plan.nodes[0]
    files = render.render_node(job_plan, node.rank)
    assert f"EnvironmentFile={node.job_dir}/api-key.env" in files[f"/etc/systemd/system/{node.unit}"]
    assert "list_eval_dataset" in files[f"{node.job_dir}/swift_launch.py"]  # Native without opencompass
    with pytest.raises(
        SwiftfleetError, match=r"args.eval_dataset_args.general_mcq.local_path: .* not a directory"
    ):
        _plan(name="ev", kind="swift eval", model="tiny",
              args={"eval_url": "http://10.0.0.1:8000/v1",
                    "eval_dataset_args": {"general_mcq": {"local_path": str(tmp_path / "none")}}})  # fmt: skip


GPU_NODES = [
    plan.NodeInfo(f"gpu{i}", i, f"10.0.1.{10 + i}", "ubuntu", 8, 80, "p5.48xlarge") for i in range(2)
]


def test_megatron_export_is_torchrun_on_rank_0s_gpus_and_refused_on_cpu_nodes(tmp_path: Path) -> None:
    """Asserted only (no GPU here): the rendered files of a conversion to Megatron-Core on a GPU cluster."""
    job = {"name": "to-mcore", "kind": "megatron export", "model": "Qwen/Qwen2.5-7B-Instruct",
           "args": {"to_mcore": True, "tensor_model_parallel_size": 2}}  # fmt: skip
    job_plan = plan.build(spec.parse_job({"job": job}, "job"), GPU_NODES, "job")
    assert (job_plan.playbook, job_plan.torchrun, job_plan.nnodes, job_plan.nproc_per_node) == (
        "export",
        True,
        1,
        8,
    )
    assert (job_plan.config["output_dir"], job_plan.config["exist_ok"], job_plan.fresh_output) == (
        "output",
        True,
        True,
    )
    files = render.render_node(job_plan, 0)
    node = job_plan.nodes[0]
    assert 'exec "$swift_env/bin/megatron" export config.yaml' in files[f"{node.job_dir}/run.sh"]
    env = files[f"{node.job_dir}/job.env"]
    assert "NNODES=1\n" in env and "NODE_RANK=0\n" in env and "NPROC_PER_NODE=8\n" in env
    assert 'MASTER_ADDR="10.0.1.10"\n' in env

    cpu = [plan.NodeInfo(f"n{i}", i, f"10.0.0.{10 + i}", "root", 0, 0, "local") for i in range(2)]
    with pytest.raises(SwiftfleetError) as err:
        plan.build(spec.parse_job({"job": job}, "job"), cpu, "job")
    assert str(err.value) == (
        "job: kind: `megatron export` needs GPUs (Megatron-Core with transformer_engine), and the nodes have none "
        "(make check counts each node's GPUs)"
    )
    with pytest.raises(
        SwiftfleetError, match=r"^job: args: `megatron export` converts weights: to_mcore: true"
    ):
        spec.parse_job({"job": {**job, "args": {}}}, "job")
    with pytest.raises(SwiftfleetError, match=r"^job: nodes: `megatron export` runs on one node"):
        spec.parse_job({"job": {**job, "nodes": 2}}, "job")
