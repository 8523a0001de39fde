"""`swift sample` across nodes: each node samples its own share of `datasets` (not ms-swift's data_range, which
drops the last rows of an uneven split), ms-swift's own state resumes a share that stopped, a finished share is not
sampled again, and what ms-swift would silently get wrong is one line before any spend."""

import json
from pathlib import Path
from typing import Any

import pytest

from swiftfleet.errors import SwiftfleetError
from swiftfleet.jobs import plan, render, spec
from swiftfleet.jobs.plan_model import JobPlan
from swiftfleet.node_plugins import shard_rows


def _rows(path: Path, count: int) -> Path:
    path.write_text(
        "".join(
            json.dumps(
                {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]}
            )
            + "\n"
            for i in range(count)
        )
    )
    return path


def _plan(tmp_path: Path, nodes: int = 2, rows: int = 10, **job: Any) -> JobPlan:
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text("{}")
    fields = {
        "name": "samples",
        "kind": "swift sample",
        "model": str(tmp_path / "model"),
        "datasets": [str(_rows(tmp_path / "rows.jsonl", rows))],
        **job,
    }
    return plan.build(spec.parse_job({"job": fields}, "job"), plan.hypothetical_nodes(nodes), "job")


def test_each_node_samples_its_share_into_one_file_that_ms_swift_writes_when_done(tmp_path: Path) -> None:
    job_plan = _plan(tmp_path, nodes=3, args={"num_return_sequences": 4})
    shares, cfg = job_plan.shares, job_plan.config
    assert shares is not None and not job_plan.torchrun and job_plan.playbook == "infer"
    assert (shares.mode, shares.total, shares.bounds) == ("file", 10, [[0, 4], [4, 7], [7, 10]])
    assert (shares.verb, shares.batch, shares.progress) == ("sampled", 1, "output/ckpt_state.json")
    # ms-swift's sample: --dataset the share, output_dir/output_file the result, its own resume, the rows' order.
    assert cfg["dataset"] == ["data/rows.jsonl"] and "data_range" not in cfg
    assert (cfg["output_dir"], cfg["output_file"], cfg["resume"], cfg["dataset_shuffle"]) == (
        "output", "result.jsonl", True, False
    )  # fmt: skip
    run_sh = render.render_node(job_plan, 1)[f"{job_plan.nodes[1].job_dir}/run.sh"]
    assert (
        f"shard_rows.py file {shares.key} 4 7 data/rows.jsonl output/result.jsonl data/0-rows.jsonl" in run_sh
    )
    assert 'exec "$swift_env/bin/swift" sample config.yaml' in run_sh


def test_the_key_changes_with_the_arguments_and_the_rows(tmp_path: Path) -> None:
    key = _plan(tmp_path, args={"temperature": 0.7}).shares.key  # type: ignore[union-attr]
    assert _plan(tmp_path, args={"temperature": 0.7}).shares.key == key  # type: ignore[union-attr]
    assert _plan(tmp_path, args={"temperature": 0.9}).shares.key != key  # type: ignore[union-attr]
    assert _plan(tmp_path, rows=12, args={"temperature": 0.7}).shares.key != key  # type: ignore[union-attr]


def test_a_finished_share_is_done_and_a_stopped_one_resumes_from_ms_swift_state(tmp_path: Path) -> None:
    src = _rows(tmp_path / "rows.jsonl", 6)
    out = tmp_path / "output"
    out.mkdir()
    result, share = out / "result.jsonl", tmp_path / "data" / "rows.jsonl"
    argv = ["file", "k1", "3", "6", str(share), str(result), str(src)]
    assert shard_rows.main(argv) == 0
    assert [json.loads(x)["messages"][0]["content"] for x in share.open()] == ["q3", "q4", "q5"]
    # Stopped after a batch: ms-swift's state beside the result; the share is written whole again, as ms-swift
    # resumes from its own index.
    (out / "result.jsonl.resume").write_text('{"id": "x"}\n')
    (out / "ckpt_state.json").write_text('{"index": 0}')
    share.unlink()
    assert shard_rows.main(argv) == 0 and len(share.read_text().splitlines()) == 3
    assert (out / "result.jsonl.resume").exists()
    # Done: ms-swift moved its results to the result file.
    (out / "result.jsonl.resume").rename(result)
    assert shard_rows.main(argv) == shard_rows.DONE
    # Other rows or arguments: the earlier results and state go, the share is sampled anew.
    assert shard_rows.main(["file", "k2", *argv[2:]]) == 0
    assert not result.exists() and not (out / "ckpt_state.json").exists()


@pytest.mark.parametrize(
    ("job", "where", "message"),
    [
        ({"datasets": [], "val_datasets": ["ROWS"]}, "val_datasets", "takes its rows from datasets"),
        ({"datasets": []}, "datasets", "`swift sample` needs the rows to work on"),
        ({"args": {"data_range": [0, 2]}}, "args.data_range", "the kit gives each node its share"),
        ({"args": {"dataset_shuffle": True}}, "args.dataset_shuffle", "keeps the rows' order"),
        ({"args": {"output_file": "x.jsonl"}}, "args.output_file", "the kit sets it"),
        ({"args": {"resume": True}}, "args.resume", "resumes a node's share that stopped"),
        ({"args": {"num_sampling_batches": 3}}, "args.num_sampling_batches", "cut every node's share"),
        ({"args": {"sampler_type": "best"}}, "args.sampler_type", "best"),
        ({"output": "keep"}, "output", "joins the nodes' results on this machine"),
    ],
)
def test_what_sample_refuses_is_one_line(
    tmp_path: Path, job: dict[str, Any], where: str, message: str
) -> None:
    job = {k: [str(_rows(tmp_path / "v.jsonl", 4))] if v == ["ROWS"] else v for k, v in job.items()}
    with pytest.raises(SwiftfleetError) as err:
        _plan(tmp_path, **job)
    assert str(err.value).startswith(f"job: {where}: ") and message in str(err.value), err.value
    assert "\n" not in str(err.value)


def test_a_batch_size_that_would_drop_rows_is_refused(tmp_path: Path) -> None:
    # 10 rows on 2 nodes: 5 each; ms-swift samples 5 // 2 = 2 batches (4 rows) of each share.
    with pytest.raises(SwiftfleetError, match=r"^job: args.num_sampling_batch_size: 2: rank 0's share of 5 rows "
                       r"is not whole batches.*its last 1 rows would be skipped.*\(5, 5 rows\)"):  # fmt: skip
        _plan(tmp_path, args={"num_sampling_batch_size": 2})
    assert _plan(tmp_path, args={"num_sampling_batch_size": 5}).shares.batch == 5  # type: ignore[union-attr]


def test_the_engine_gets_the_job_template(tmp_path: Path) -> None:
    """ms-swift 4.6.0's TransformersEngine ignores the sampler's template for a model path (measured with the tiny
    model: "Failed to automatically match `template_type`" without this)."""
    cfg = _plan(tmp_path, args={"template": "qwen", "engine_kwargs": '{"max_batch_size": 4}'}).config
    assert json.loads(cfg["engine_kwargs"]) == {"max_batch_size": 4, "template_type": "qwen"}
    assert "engine_kwargs" not in _plan(tmp_path, args={"sampler_engine": "vllm", "template": "qwen"}).config
    with pytest.raises(SwiftfleetError, match=r"^job: args.engine_kwargs: not JSON"):
        _plan(tmp_path, args={"template": "qwen", "engine_kwargs": "{max_batch_size: 4"})


@pytest.mark.parametrize("arg", ["num_sampling_batch_size", "num_return_sequences"])
def test_no_rows_per_batch_or_sequences_per_row_is_refused(tmp_path: Path, arg: str) -> None:
    with pytest.raises(SwiftfleetError, match=rf"^job: args.{arg}: .*>= 1"):
        _plan(tmp_path, args={arg: 0})
