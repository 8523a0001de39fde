"""Unknown keys in a job file, and a job file with no job: one line naming the key and the closest known one,
through `swiftfleet render`, with no host, engine or cloud touched (the cluster's Tripwire)."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.jobs.test_bad_jobs import _render, gpu_cluster, sft  # noqa: F401 (the fixture)
from tests.test_cluster_file_errors import Tripwire, tripwire  # noqa: F401 (the fixture)

JOB_KEYS = (
    "name, kind, rlhf_type, model, hub, datasets, val_datasets, nodes, nproc_per_node, args, env, output, resume, "
    "rollout, recover, checkpoint, time_limit, master_port"
)


def renamed(data: Path, old: str, new: str) -> dict[str, Any]:
    job = sft(data)["job"]
    job[new] = job.pop(old)
    return {"job": job}


# (case id, job file text from the dataset path, the line after "swiftfleet: job file PATH: ")
CASES: list[tuple[str, Callable[[Path], str], str]] = [
    (
        "datasets-misspelt",
        lambda d: yaml.safe_dump(renamed(d, "datasets", "datsets")),
        "datsets: unknown key (did you mean 'datasets'?)",
    ),
    (
        "required-key-misspelt",  # the "missing model" it causes is the same problem, not one more
        lambda d: yaml.safe_dump(renamed(d, "model", "modle")),
        "modle: unknown key (did you mean 'model'?)",
    ),
    (
        "master-port-misspelt",
        lambda d: yaml.safe_dump(sft(d, master_prot=29501)),
        "master_prot: unknown key (did you mean 'master_port'?)",
    ),
    (
        "val-datasets-misspelt",
        lambda d: yaml.safe_dump(sft(d, val_dataset=[str(d)])),
        "val_dataset: unknown key (did you mean 'val_datasets'?)",
    ),
    (
        "nothing-close",
        lambda d: yaml.safe_dump(sft(d, gpus=8)),
        f"gpus: unknown key (known here: {JOB_KEYS})",
    ),
    (
        "wrapper-misspelt",
        lambda d: yaml.safe_dump({"jbo": sft(d)["job"]}),
        "jbo: unknown key (did you mean 'job'?)",
    ),
    (
        "second-top-level-key",
        lambda d: yaml.safe_dump({**sft(d), "jobs": []}),
        "jobs: unknown key (did you mean 'job'?)",
    ),
    ("empty-file", lambda d: "", "file: empty: it needs a `job:` mapping (name, kind, model, ...)"),
    ("yaml-null", lambda d: "~\n", "file: empty: it needs a `job:` mapping (name, kind, model, ...)"),
    ("empty-mapping", lambda d: "{}\n", "file: empty: it needs a `job:` mapping (name, kind, model, ...)"),
    ("job-null", lambda d: "job:\n", "file: empty: it needs a `job:` mapping (name, kind, model, ...)"),
    ("job-empty", lambda d: "job: {}\n", "file: empty: it needs a `job:` mapping (name, kind, model, ...)"),
    ("a-list", lambda d: "- job\n", "file: it needs a `job:` mapping (name, kind, model, ...)"),
]


@pytest.mark.parametrize(("case", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_job_key_is_one_line_with_a_suggestion(
    case: str,
    content: Callable[[Path], str],
    expected: str,
    tmp_path: Path,
    gpu_cluster: str,  # noqa: F811
    tripwire: Tripwire,  # noqa: F811
) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    job_file = tmp_path / f"{case}.yml"
    job_file.write_text(content(data))
    res = _render(job_file, gpu_cluster, tmp_path / "out", tripwire)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stderr.strip().splitlines() == [f"swiftfleet: job file {job_file}: {expected}"]
    assert not (tmp_path / "out").exists()
    assert tripwire.connections == 0
    assert not tripwire.calls.exists(), tripwire.calls.read_text()
