"""Everything a job names in `args` goes with it: files are uploaded and the argument rewritten to the node's
path; models are downloaded on every node before the launch, like `model`, so offline launches still work."""

from pathlib import Path
from typing import Any

import pytest

from swiftfleet.errors import SwiftfleetError
from swiftfleet.jobs import ms_swift_args, plan, spec
from swiftfleet.jobs.plan_model import JobPlan, Prefetch
from tests.jobs.conftest import CHAT_ROW

NODES = plan.hypothetical_nodes(2)


def _plan(tmp_path: Path, **job: Any) -> JobPlan:
    data = tmp_path / "chat.jsonl"
    # a row every kind here takes: a conversation, and the rejected answer that preference kinds need
    data.write_text(CHAT_ROW.replace("}]}", '}], "rejected_response": "no"}'))
    base = {"name": "carry", "kind": "swift sft", "model": "org/base", "datasets": [str(data)]}
    return plan.build(spec.parse_job({"job": {**base, **job}}, "job"), NODES, "job")


def test_every_carried_argument_is_an_ms_swift_argument() -> None:
    known = set().union(
        *(ms_swift_args.names(c) for c in ("swift sft", "swift rlhf", "swift deploy", "megatron sft"))
    )
    assert known >= plan.CARRIED_ARGS, plan.CARRIED_ARGS - known


def test_files_go_up_and_the_argument_names_the_node_path(tmp_path: Path) -> None:
    plugin, ds = tmp_path / "my_loss.py", tmp_path / "ds_z2.json"
    plugin.write_text("# a plugin\n")
    ds.write_text("{}\n")
    job_plan = _plan(
        tmp_path, args={"external_plugins": [str(plugin)], "deepspeed": str(ds), "tuner_type": "lora"}
    )
    # the user's plugin first, then the kit's spot-notice callback (tests/jobs/test_save_on_notice.py)
    assert job_plan.config["external_plugins"] == [
        "files/external_plugins/my_loss.py",
        "files/swiftfleet/save_on_notice.py",
    ]
    assert job_plan.config["deepspeed"] == "files/deepspeed/ds_z2.json"
    assert (str(plugin), "files/external_plugins/my_loss.py") in {(u.src, u.dest) for u in job_plan.uploads}
    assert (str(ds), "files/deepspeed/ds_z2.json") in {(u.src, u.dest) for u in job_plan.uploads}


def test_presets_are_not_paths(tmp_path: Path) -> None:
    job_plan = _plan(tmp_path, args={"deepspeed": "zero3"})
    assert job_plan.config["deepspeed"] == "zero3"
    assert [u.dest for u in job_plan.uploads] == ["data/0-chat.jsonl", "files/swiftfleet/save_on_notice.py"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"deepspeed": "ds.json"}, r"args\.deepspeed: 'ds\.json': start a local path with \./"),
        (
            {"external_plugins": ["./absent.py"]},
            r"args\.external_plugins: '\./absent\.py' does not exist here",
        ),
        ({"external_plugins": ["s3://bucket/p.py"]}, r"args\.external_plugins: s3:// is read for `model`"),
    ],
)
def test_a_file_that_cannot_go_up_is_refused(tmp_path: Path, args: dict[str, Any], message: str) -> None:
    with pytest.raises(SwiftfleetError, match=rf"^job: {message}"):
        _plan(tmp_path, args=args)


def test_models_in_args_are_downloaded_ahead_and_the_launch_stays_offline(tmp_path: Path) -> None:
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text("{}")
    job_plan = _plan(
        tmp_path,
        kind="swift rlhf",
        rlhf_type="gkd",
        hub="huggingface",
        args={"teacher_model": str(teacher), "ref_model": "org/ref-model"},
    )
    assert job_plan.config["teacher_model"] == "models/teacher_model"
    assert job_plan.config["ref_model"] == "org/ref-model"
    assert (str(teacher), "models/teacher_model") in {(u.src, u.dest) for u in job_plan.uploads}
    assert [p.id for p in job_plan.prefetch] == ["org/base", "org/ref-model"]
    assert all(isinstance(p, Prefetch) and p.repo_type == "model" for p in job_plan.prefetch)
    assert job_plan.env["HF_HUB_OFFLINE"] == "1"  # every hub repo was fetched on every node first


def test_a_list_of_models_keeps_one_slot_each(tmp_path: Path) -> None:
    job_plan = _plan(
        tmp_path, kind="swift rlhf", rlhf_type="grpo", args={"reward_model": ["org/rm-a", "s3://bkt/rm-b"]}
    )
    assert job_plan.config["reward_model"] == ["org/rm-a", "models/reward_model-1"]
    assert [(d.uri, d.dest) for d in job_plan.downloads] == [("s3://bkt/rm-b", "models/reward_model-1")]


def test_a_bad_model_argument_names_the_argument(tmp_path: Path) -> None:
    with pytest.raises(SwiftfleetError, match=r"^job: args\.ref_model: 'not a model' is neither"):
        _plan(tmp_path, kind="swift rlhf", rlhf_type="dpo", args={"ref_model": "not a model"})
