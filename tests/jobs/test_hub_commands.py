"""The hub downloads a job's plan asks every node to run before the launch: the exact commands for both hubs, the
ids they take from ms-swift's dataset syntax (`org/name:subset#count`), the environment of the downloads and of
the launch, and the commands parsed by the real CLIs of the ms-swift environment (huggingface_hub's `hf` and
modelscope's), so a flag the pinned versions do not take fails here, without any network."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from swiftfleet.jobs import plan, render, spec
from swiftfleet.jobs.plan_model import JobPlan
from tests.conftest import SWIFT_PYTHON

NODES = plan.hypothetical_nodes(2)


def _plan(**job: Any) -> JobPlan:
    base = {"name": "hubjob", "kind": "swift sft", "model": "org/tiny-model", "args": {"tuner_type": "lora"}}
    return plan.build(spec.parse_job({"job": {**base, **job}}, "job"), NODES, "job")


@pytest.mark.parametrize(("hub", "program"), [("huggingface", "hf"), ("modelscope", "modelscope")])
def test_prefetch_commands_name_each_repo_once_without_subset_or_count(hub: str, program: str) -> None:
    job_plan = _plan(
        hub=hub, datasets=["org/chat:default#100", "org/chat:extra/part", "org/other#5"], val_datasets=["org/chat"],
    )  # fmt: skip
    assert [p.model_dump() for p in job_plan.prefetch] == [
        {"id": "org/tiny-model", "repo_type": "model",
         "argv": [program, "download", "org/tiny-model", "--repo-type", "model"]},
        {"id": "org/chat", "repo_type": "dataset", "argv": [program, "download", "org/chat", "--repo-type", "dataset"]},
        {"id": "org/other", "repo_type": "dataset", "argv": [program, "download", "org/other", "--repo-type", "dataset"]},
    ]  # fmt: skip
    # ms-swift itself still gets the subsets and counts.
    assert job_plan.config["dataset"] == ["org/chat:default#100", "org/chat:extra/part", "org/other#5"]
    assert job_plan.config["model"] == "org/tiny-model"


LOCAL_DATA = "./build/tiny/chat.jsonl"  # fake_tiny's files, in the test's working directory


def test_a_hugging_face_job_with_hub_models_only_launches_offline(fake_tiny: Path) -> None:
    job_plan = _plan(hub="huggingface", datasets=[LOCAL_DATA], env={"HF_HOME": "/data/hf"})
    assert job_plan.env == {"HF_HOME": "/data/hf", "USE_HF": "1", "HF_HUB_OFFLINE": "1"}
    # The downloads themselves must reach the hub; they skip huggingface_hub's check for a newer version.
    assert job_plan.prefetch_env == {
        "HF_HOME": "/data/hf",
        "USE_HF": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }
    node = job_plan.nodes[1]
    job_env = render.render_node(job_plan, node.rank)[f"{node.job_dir}/job.env"]
    assert '\nHF_HUB_OFFLINE="1"\n' in job_env and 'USE_HF="1"' in job_env


@pytest.mark.parametrize(
    ("job", "launch_env"),
    [
        # `datasets` offline reads only its own prepared cache, not the hub cache: a hub dataset keeps it online.
        ({"hub": "huggingface", "datasets": ["org/chat"]}, {"USE_HF": "1"}),
        # The job's own setting wins.
        (
            {"hub": "huggingface", "datasets": [LOCAL_DATA], "env": {"HF_HUB_OFFLINE": "0"}},
            {"HF_HUB_OFFLINE": "0", "USE_HF": "1"},
        ),
        # ModelScope has no offline switch; nothing of Hugging Face's is set.
        ({"hub": "modelscope", "datasets": [LOCAL_DATA]}, {}),
        # Nothing from the hub, nothing to download: the launch is as the job says.
        ({"hub": "huggingface", "model": "./build/tiny/model", "datasets": [LOCAL_DATA]}, {"USE_HF": "1"}),
    ],
)
def test_when_the_launch_stays_online(
    job: dict[str, Any], launch_env: dict[str, str], fake_tiny: Path
) -> None:
    assert _plan(**job).env == launch_env


# Parses argv lists with the CLIs' own parsers (no command runs, nothing is fetched) and prints what they read.
PARSE = r"""
import contextlib, io, json, sys, warnings
import click
from huggingface_hub.cli.hf import app
from modelscope_hub.cli.compat import normalize_download_args
from modelscope_hub.cli.main import _build_parser

def parse(argv):
    err = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err):
        warnings.simplefilter("always")
        try:
            if argv[0] == "hf":
                root = click.Context(app, info_name="hf")
                name, command, rest = app.resolve_command(root, argv[1:])  # hf's own dispatch (lazy commands)
                sub = command.make_context(name, rest, parent=root)
                params = sub.params
                got = {"repo_id": params["repo_id"], "repo_type": str(getattr(params["repo_type"], "value", params["repo_type"])),
                       "files": list(params["filenames"] or [])}
            else:
                ns = normalize_download_args(_build_parser().parse_args(argv[1:]))
                if ns.command != argv[1]:
                    return {"error": f"parsed as {ns.command}"}
                got = {"repo_id": ns.repo_id, "repo_type": ns.repo_type, "files": list(ns.files or [])}
        except (click.ClickException, SystemExit) as e:
            return {"error": getattr(e, "message", "") or err.getvalue().strip()}
    got["deprecated"] = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    return got

print(json.dumps([parse(a) for a in json.loads(sys.argv[1])]))
"""


def parse_with_the_real_clis(argvs: list[list[str]]) -> list[dict[str, Any]]:
    done = subprocess.run(
        [str(SWIFT_PYTHON), "-c", PARSE, json.dumps(argvs)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    parsed: list[dict[str, Any]] = json.loads(done.stdout.splitlines()[-1])
    return parsed


@pytest.mark.swift
def test_the_node_environments_clis_parse_the_commands_as_meant() -> None:
    argvs = [
        entry.argv
        for hub in ("huggingface", "modelscope")
        for entry in _plan(hub=hub, datasets=["org/chat:default#10"]).prefetch
    ]
    assert len(argvs) == 4
    for argv, got in zip(argvs, parse_with_the_real_clis(argvs), strict=True):
        assert got == {"repo_id": argv[2], "repo_type": argv[4], "files": [], "deprecated": []}, (argv, got)


@pytest.mark.swift
def test_the_parser_check_rejects_what_the_clis_do_not_take() -> None:
    """The check above can fail: a flag hf lacks, a flag modelscope lacks, and modelscope's deprecated form."""
    wrong = parse_with_the_real_clis(
        [
            ["hf", "download", "--model", "org/m"],
            ["modelscope", "download", "org/m", "--kind", "model"],
            ["modelscope", "download", "--dataset", "org/d"],
        ]
    )
    assert "No such option" in wrong[0]["error"]
    assert "unrecognized arguments: --kind" in wrong[1]["error"]
    assert wrong[2]["repo_id"] == "org/d" and "'--dataset' is deprecated" in wrong[2]["deprecated"][0]
