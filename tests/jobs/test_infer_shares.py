"""`swift infer` and `swift sample` across nodes: the plan splits the rows (contiguous shares in rank order), run.sh
cuts each node's share with node_plugins/shard_rows.py before swift runs, and a re-run keeps a node's complete
results (unless the rows or arguments changed)."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from swiftfleet import node_plugins
from swiftfleet.errors import SwiftfleetError
from swiftfleet.jobs import plan, render, spec
from swiftfleet.jobs.plan_model import JobPlan
from swiftfleet.node_plugins import shard_rows


def _rows(path: Path, first: int, count: int, blank_every: int = 0) -> Path:
    lines = []
    for i in range(first, first + count):
        lines.append(json.dumps({"messages": [{"role": "user", "content": f"q{i}"}]}) + "\n")
        if blank_every and i % blank_every == 0:
            lines.append("\n")  # blank lines are not rows, on either side
    path.write_text("".join(lines))
    return path


def _plan(tmp_path: Path, nodes: int = 3, **job: Any) -> JobPlan:
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text("{}")
    fields = {"name": "answers", "kind": "swift infer", "model": str(tmp_path / "model"), **job}
    return plan.build(spec.parse_job({"job": fields}, "job"), plan.hypothetical_nodes(nodes), "job")


def test_the_rows_are_shared_in_order_and_each_node_cuts_its_own(tmp_path: Path) -> None:
    a = _rows(tmp_path / "a.jsonl", 0, 7, blank_every=3)
    b = _rows(tmp_path / "b.jsonl", 7, 4)
    job_plan = _plan(tmp_path, val_datasets=[str(a), str(b)], args={"max_new_tokens": 8})
    shares = job_plan.shares
    assert shares is not None and not job_plan.torchrun and [n.rank for n in job_plan.nodes] == [0, 1, 2]
    assert (shares.total, shares.bounds) == (11, [[0, 4], [4, 8], [8, 11]])
    assert shares.sources == ["data/0-a.jsonl", "data/1-b.jsonl"]
    assert (job_plan.config["val_dataset"], job_plan.config["result_path"]) == (
        ["data/rows.jsonl"], "output/result.jsonl"
    )  # fmt: skip
    assert (str(node_plugins.SHARD_ROWS), shares.script) in {(u.src, u.dest) for u in job_plan.uploads}
    assert job_plan.playbook == "infer" and job_plan.output.mode == "fetch"

    # Each node's run.sh, run for real up to swift: the job directory as staging leaves it.
    answered = []
    for node in job_plan.nodes:
        job_dir = tmp_path / f"node{node.rank}"
        (job_dir / "data").mkdir(parents=True)
        (job_dir / "files" / "swiftfleet").mkdir(parents=True)
        for src, dest in (
            (a, "data/0-a.jsonl"),
            (b, "data/1-b.jsonl"),
            (node_plugins.SHARD_ROWS, shares.script),
        ):
            (job_dir / dest).write_bytes(Path(src).read_bytes())
        run_sh = render.render_node(job_plan, node.rank)[f"{node.job_dir}/run.sh"]
        assert "torchrun" not in run_sh and 'exec "$swift_env/bin/swift" infer config.yaml' in run_sh
        script = run_sh.split("swift_env=", 1)[1].split("\n", 1)[1].split("exec ", 1)[0]
        done = subprocess.run(
            ["bash", "-c", f"set -euo pipefail\ncd {job_dir}\nswift_env={Path(sys.executable).parent.parent}\n"
             f"{script}echo swift-would-run"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        lo, hi = shares.bounds[node.rank]
        assert (done.returncode, done.stdout) == (
            0,
            f"rows {lo}-{hi}: {hi - lo} to answer\nswift-would-run\n",
        )
        answered += [json.loads(line)["messages"][0]["content"] for line in (job_dir / shares.rows).open()]
    assert answered == [f"q{i}" for i in range(11)]  # every row once, in order


def test_a_re_run_answers_only_the_rows_not_yet_answered(tmp_path: Path) -> None:
    src = _rows(tmp_path / "rows.jsonl", 0, 6)
    result, share = tmp_path / "result.jsonl", tmp_path / "share.jsonl"
    argv = ["lines", "k1", "2", "6", str(share), str(result), str(src)]
    assert shard_rows.main(argv) == 0  # the first run: the key is recorded
    # A run stopped after one write batch of answers, in the middle of the next line.
    result.write_bytes(b'{"response": "a"}\n{"response": "b"}\n{"respon')
    assert shard_rows.main(argv) == 0
    assert result.read_bytes() == b'{"response": "a"}\n{"response": "b"}\n'  # ms-swift appends the rest
    assert [json.loads(x)["messages"][0]["content"] for x in share.open()] == ["q4", "q5"]
    result.write_text('{"response": "a"}\n{"response": "b"}\n{"response": "c"}\n{"response": "d"}\n')
    share.unlink()
    assert shard_rows.main(argv) == shard_rows.DONE
    assert not share.exists()
    # Other rows or arguments (another key): the answers of the earlier run are not kept.
    assert shard_rows.main(["lines", "k2", *argv[2:]]) == 0
    assert not result.exists() and len(share.read_text().splitlines()) == 4


def test_split_is_contiguous_and_even() -> None:
    assert shard_rows.split(40, 2) == [(0, 20), (20, 40)]
    assert shard_rows.split(5, 3) == [(0, 2), (2, 4), (4, 5)]
    assert shard_rows.split(3, 3) == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize(
    ("job", "where", "message"),
    [
        (
            {"val_datasets": ["org/rows"]},
            "val_datasets",
            "splits the rows over the nodes itself, so it takes local",
        ),
        ({"val_datasets": ["LOCAL#5"]}, "val_datasets", "(no hub id, s3:// or #N)"),
        ({"val_datasets": ["SMALL"]}, "nodes", "2 rows cannot be shared by 3 nodes: set nodes: 2 or fewer"),
        ({}, "val_datasets", "`swift infer` needs the rows to work on: at least one val_datasets entry"),
        ({"datasets": ["LOCAL"], "val_datasets": ["LOCAL"]}, "datasets", "takes its rows from val_datasets"),
        ({"val_datasets": ["LOCAL"], "nproc_per_node": 2}, "nproc_per_node", "one process per node"),
        (
            {"val_datasets": ["LOCAL"], "resume": "latest"},
            "resume",
            "a re-run does only what is not yet done",
        ),
        ({"val_datasets": ["LOCAL"], "output": "keep"}, "output", "joins the nodes' results on this machine"),
    ],
)
def test_what_infer_refuses_is_one_line(
    tmp_path: Path, job: dict[str, Any], where: str, message: str
) -> None:
    local, small = _rows(tmp_path / "rows.jsonl", 0, 10), _rows(tmp_path / "small.jsonl", 0, 2)
    names = {"LOCAL": str(local), "SMALL": str(small)}
    job = {k: [names.get(v.split("#")[0], v.split("#")[0]) + v[len(v.split("#")[0]):] for v in val]
           if isinstance(val, list) else val for k, val in job.items()}  # fmt: skip
    with pytest.raises(SwiftfleetError) as err:
        _plan(tmp_path, **job)
    assert str(err.value).startswith(f"job: {where}: ") and message in str(err.value), err.value
    assert "\n" not in str(err.value)
