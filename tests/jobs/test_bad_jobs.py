"""Bad job files get one clear line and exit 2 from `swiftfleet render`, and no host is touched.

The cluster's Tripwire (stand-in ssh/ansible-playbook/terraform/docker that record any call, and listeners for
AWS and Docker) proves "no host": the stand-ins must never run.
"""

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from swiftfleet.inventory import Cluster, Node, write_inventory
from tests.conftest import run_cli
from tests.jobs.conftest import CHAT_ROW
from tests.test_cluster_file_errors import Tripwire, tripwire  # noqa: F401 (the fixture)


@pytest.fixture
def gpu_cluster(isolated_state: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An inventory of 2 g5.12xlarge nodes (4 A10G 24 GiB each) and an empty outputs directory."""
    monkeypatch.setenv("SWIFTFLEET_OUTPUTS_DIR", str(isolated_state / "outputs"))
    nodes = [
        Node(
            name=f"trainers-{i}",
            rank=i,
            ansible_host=f"198.51.100.{i + 1}",
            private_ip=f"10.0.1.{i + 10}",
            ssh_user="ubuntu",
            ssh_key=isolated_state / "key",
            gpu_count=4,
            gpu_memory_gib=24,
            instance_type="g5.12xlarge",
        )
        for i in range(2)
    ]
    write_inventory(Cluster(name="trainers", provider="aws", nodes=nodes), [])
    return "trainers"


def sft(data: Path, **changes: Any) -> dict[str, Any]:
    job: dict[str, Any] = {
        "name": "bad",
        "kind": "swift sft",
        "model": "Qwen/Qwen2.5-7B-Instruct",
        "datasets": [str(data)],
        "args": {"tuner_type": "lora", "lora_rank": 8},
    }
    job.update(changes)
    return {"job": {k: v for k, v in job.items() if v is not None}}


def with_args(data: Path, **args: Any) -> dict[str, Any]:
    return sft(data, args={"tuner_type": "lora", **args})


# (case id, job file content from the dataset path, words the one line must contain)
CASES = [
    ("unknown-kind", lambda d: sft(d, kind="swift train"), ["kind", "'swift sft'"]),
    ("rlhf-without-type", lambda d: sft(d, kind="swift rlhf"), ["rlhf_type", "needs rlhf_type", "dpo"]),
    (
        "rlhf-type-wrong",
        lambda d: sft(d, kind="swift rlhf", rlhf_type="dpoo"),
        ["rlhf_type", "did you mean 'dpo'"],
    ),
    (
        "megatron-rlhf-type-unsupported",
        lambda d: sft(d, kind="megatron rlhf", rlhf_type="orpo", args={}),
        ["rlhf_type", "'orpo' is not one of", "megatron rlhf"],
    ),
    ("misspelt-arg", lambda d: with_args(d, lora_rnak=8), ["args.lora_rnak", "did you mean 'lora_rank'"]),
    (
        "train-type-v3",
        lambda d: sft(d, args={"train_type": "lora"}),
        ["args.train_type", "renamed", "--tuner_type"],
    ),
    (
        "arg-bad-choice",
        lambda d: with_args(d, torch_dtype="bf16"),
        ["args.torch_dtype", "'bf16' is not one of"],
    ),
    ("arg-null", lambda d: with_args(d, lora_alpha=None), ["args.lora_alpha", "null"]),
    ("arg-managed", lambda d: with_args(d, output_dir="/tmp/x"), ["args.output_dir", "the kit sets it"]),
    ("dataset-missing", lambda d: sft(d, datasets=["./no-such-file.jsonl"]), ["datasets", "does not exist"]),
    ("dataset-bad-count", lambda d: sft(d, datasets=[f"{d}#0"]), ["datasets", "#count", "positive"]),
    ("dataset-count-not-number", lambda d: sft(d, datasets=[f"{d}#all"]), ["#count"]),
    (
        "dataset-bad-s3",
        lambda d: sft(d, datasets=["s3://My_Bucket/data.jsonl"]),
        ["datasets", "s3://bucket/key"],
    ),
    ("no-datasets", lambda d: sft(d, datasets=[]), ["datasets", "needs at least one dataset"]),
    ("model-bad", lambda d: sft(d, model="qwen 7b"), ["model", "neither a local model directory"]),
    ("too-many-nodes", lambda d: sft(d, nodes=3), ["nodes", "wants 3 nodes, the cluster has 2"]),
    ("nproc-over-gpus", lambda d: sft(d, nproc_per_node=8), ["nproc_per_node", "4 usable GPUs"]),
    ("resume-no-checkpoint", lambda d: sft(d, resume="latest"), ["resume", "no checkpoint-N"]),
    (
        "resume-path-missing",
        lambda d: sft(d, resume="./ckpt-nowhere"),
        ["resume", "not a checkpoint directory"],
    ),
    ("recover-not-bool", lambda d: sft(d, recover="yes please"), ["recover", "boolean"]),
    (
        "recover-with-s3-output",
        lambda d: sft(d, recover=True, output="s3://sf-out/runs"),
        ["recover", "copied to this machine: output: fetch"],
    ),
    (
        "recover-on-deploy",
        lambda d: {
            "job": {
                "name": "srv",
                "kind": "swift deploy",
                "model": "Qwen/Qwen2.5-7B-Instruct",
                "recover": True,
            }
        },
        ["recover", "it takes no recover"],
    ),
    ("master-port-outside", lambda d: sft(d, master_port=29700), ["master_port", "29600"]),
    ("time-limit-unit", lambda d: sft(d, time_limit="5 parsecs"), ["time_limit", "should match pattern"]),
    (
        "time-limit-on-deploy",
        lambda d: {
            "job": {
                "name": "srv",
                "kind": "swift deploy",
                "model": "Qwen/Qwen2.5-7B-Instruct",
                "time_limit": "2h",
            }
        },
        ["time_limit", "stop.yml"],
    ),
    (
        "megatron-with-deepspeed",
        lambda d: sft(d, kind="megatron sft", args={"deepspeed": "zero3"}),
        ["args.deepspeed", "`megatron sft`", "belongs to `swift sft`"],
    ),
    (
        "eval-url-no-v1",
        lambda d: {
            "job": {
                "name": "ev",
                "kind": "swift eval",
                "model": "qwen7b",
                "args": {"eval_url": "http://10.0.1.10:8000"},
            }
        },
        ["args.eval_url", "/v1"],
    ),
    (
        "deploy-api-key-in-args",
        lambda d: {
            "job": {
                "name": "srv",
                "kind": "swift deploy",
                "model": "Qwen/Qwen2.5-7B-Instruct",
                "args": {"api_key": "s3cret"},
            }
        },
        ["args.api_key", "SWIFT_API_KEY", "0600"],
    ),
    (
        "deploy-on-two-nodes",
        lambda d: {
            "job": {"name": "srv", "kind": "swift deploy", "model": "Qwen/Qwen2.5-7B-Instruct", "nodes": 2}
        },
        ["nodes", "one node"],
    ),
    (
        "model-too-big",
        lambda d: sft(d, model="Qwen/Qwen2.5-72B-Instruct", args={"tuner_type": "full"}),
        ["model", "too big", "GiB per GPU", "g5.12xlarge"],
    ),
    ("unknown-hub", lambda d: sft(d, hub="github"), ["hub", "'modelscope' or 'huggingface'"]),
    (
        "env-kit-variable",
        lambda d: sft(d, env={"MASTER_ADDR": "127.0.0.1"}),
        ["env", "MASTER_ADDR", "set by the kit"],
    ),
    ("output-bad", lambda d: sft(d, output="ftp://host/x"), ["output", "fetch, keep or an s3://"]),
    (
        "setting-misspelt",
        lambda d: sft(d, dataset=[str(d)]),
        ["dataset: unknown key (did you mean 'datasets'?)"],
    ),
    ("no-job-key", lambda d: sft(d)["job"], ["top-level `job:` key"]),
    ("name-bad", lambda d: sft(d, name="My Job"), ["name", "pattern"]),
    ("job-not-a-mapping", lambda d: {"job": "hello"}, ["job: must be a mapping (name, kind, ...)"]),
    (
        "env-value-a-list",  # one problem, not one per member of str | int | float | bool
        lambda d: sft(d, env={"NCCL_DEBUG": ["WARN", "INFO"]}),
        ["env.NCCL_DEBUG: must be a string, number or boolean"],
    ),
    (
        "time-limit-overflows",
        lambda d: sft(d, time_limit="99999999999999999999d"),
        ["time_limit", "over 365 days", "no limit at all"],
    ),
    (
        "hf-token-after-underscore",
        lambda d: with_args(d, run_name="x_hf_" + "a1B2" * 9),
        ["args.run_name", "a Hugging Face token", "`env`"],
    ),
    (
        "openai-key-nested",
        lambda d: with_args(d, model_kwargs={"judge": ["sk-proj-" + "Ab3_" * 6]}),
        ["args.model_kwargs.judge.0", "an OpenAI API key", "`env`"],
    ),
    (
        "github-token-in-output",
        lambda d: sft(d, output="s3://out-bucket/ghp_" + "x" * 36),
        ["output", "a GitHub token", "`env`"],
    ),
    (
        "aws-key-id-in-json-string",
        lambda d: with_args(d, model_kwargs='{"aws": "AKIAIOSFODNN7EXAMPLE"}'),
        ["args.model_kwargs.aws", "an AWS access key id"],
    ),
    *(
        (
            f"eval-judge-api-key-{form}",
            lambda d, args=args: {
                "job": {"name": "ev", "kind": "swift eval", "model": "Qwen/Qwen2.5-7B-Instruct", "args": args}
            },
            [
                "args.extra_eval_args.judge_model_args.api_key: a secret in args lands in config.yaml "
                "(readable by every user of the node) and in ms-swift's log; put it in `env`"
            ],
        )
        for form, args in [
            ("mapping", {"extra_eval_args": {"judge_model_args": {"api_key": "sk-live-abcdef123456"}}}),
            ("json", {"extra_eval_args": '{"judge_model_args": {"api_key": "sk-live-abcdef123456"}}'}),
        ]
    ),
    (
        "eval-url-credentials",
        lambda d: {
            "job": {
                "name": "ev",
                "kind": "swift eval",
                "model": "qwen7b",
                "args": {"eval_url": "http://admin:s3cr3tpass@10.0.0.5:8000/v1"},
            }
        },
        ["args.eval_url: credentials do not go in URLs", "`env`"],
    ),
]


def _render(job_file: Path, cluster: str, out: Path, wire: Tripwire) -> subprocess.CompletedProcess[str]:
    """`swiftfleet render` of a job file for the test cluster, with the tripwire armed."""
    return run_cli("render", str(job_file), "--inventory-cluster", cluster, "--out", str(out), env=wire.env())


@pytest.mark.parametrize(("case", "content", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_job_is_one_clear_line(  # type: ignore[no-untyped-def]
    case,
    content,
    words,
    tmp_path: Path,
    gpu_cluster: str,
    tripwire: Tripwire,  # noqa: F811
) -> None:
    assert_refused_in_one_line(case, content, words, tmp_path, gpu_cluster, tripwire)


def assert_refused_in_one_line(  # type: ignore[no-untyped-def]
    case: str, content, words: list[str], tmp_path: Path, cluster: str, wire: Tripwire
) -> None:
    """The job file content(dataset path) makes is refused by `swiftfleet render` in one line holding every word,
    with nothing rendered and no host, cloud or engine reached."""
    data = tmp_path / "train.jsonl"
    data.write_text(CHAT_ROW)
    job_file = tmp_path / f"{case}.yml"
    job_file.write_text(yaml.safe_dump(content(data)))
    res = _render(job_file, cluster, tmp_path / "out", wire)
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"swiftfleet: job file {job_file}: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not (tmp_path / "out").exists()
    assert wire.connections == 0
    assert not wire.calls.exists(), wire.calls.read_text()


def test_good_twin_renders(tmp_path: Path, gpu_cluster: str, tripwire: Tripwire) -> None:  # noqa: F811
    """The base job of the cases above, with nothing wrong, renders for both nodes (and still touches no host)."""
    data = tmp_path / "train.jsonl"
    data.write_text(CHAT_ROW)
    job_file = tmp_path / "good.yml"
    job_file.write_text(yaml.safe_dump(sft(data)))
    res = _render(job_file, gpu_cluster, tmp_path / "out", tripwire)
    assert res.returncode == 0, res.stderr
    assert "about 16 GiB per GPU needed, 24 GiB per GPU available" in res.stdout
    assert (tmp_path / "out" / "rank1-trainers-1" / "home/ubuntu/swiftfleet/jobs/bad/job.env").is_file()
    assert tripwire.connections == 0
    assert not tripwire.calls.exists()
