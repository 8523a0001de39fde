"""swiftfleet.jobs.checkpoints: which checkpoint is complete, what each watch round copies from which node (parts
merged), what counts as arrived, the marker, and the newest complete checkpoint `resume: latest` takes; and the
listing that playbooks/library/swiftfleet_unit_watch.py hands it, on a real directory tree."""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from swiftfleet.jobs import checkpoints
from tests.conftest import library_module

RUN = "v0-20261203-120000"
PLAN: dict[str, Any] = {
    "nodes": [{"host": "n0", "job_dir": "/j0"}, {"host": "n1", "job_dir": "/j1"}],
    "output": {"mode": "fetch", "uri": None, "local_dir": "/nowhere/outputs/job"},
}


def _look(link: str | None, **ckpts: list[str]) -> dict[str, Any]:
    """One rank's look: checkpoint name -> its files (each 10 bytes, written at time 100 + step)."""
    return {
        "checkpoints": [
            {
                "path": f"{RUN}/{name}",
                "files": [[f, 10, 100.0 + (checkpoints.step_of(name) or 0)] for f in files],
            }
            for name, files in ckpts.items()
        ],
        "last_checkpoints": {RUN: link} if link else {},
    }


def test_complete_means_rank0s_last_checkpoint_link_reached_it() -> None:
    links = {RUN: "checkpoint-4"}
    assert checkpoints.is_complete(f"{RUN}/checkpoint-2", links)
    assert checkpoints.is_complete(f"{RUN}/checkpoint-4", links)
    assert not checkpoints.is_complete(f"{RUN}/checkpoint-6", links)  # being written
    assert not checkpoints.is_complete("v1-x/checkpoint-2", links)  # another run's link, or none
    assert not checkpoints.is_complete(f"{RUN}/checkpoint-4-merged", links)


def test_parts_from_every_rank_merge_lowest_rank_first_and_only_complete_ones_go() -> None:
    # ZeRO-like: rank 0 has the model and its shard, rank 1 its own shard and a copy of a shared file.
    rank0 = _look("checkpoint-4", **{
        "checkpoint-4": ["adapter_model.safetensors", "global_step4/zero_pp_rank_0_states.pt", "trainer_state.json"],
        "checkpoint-6": ["adapter_model.safetensors"],
    })  # fmt: skip
    rank1 = _look(
        "checkpoint-4", **{"checkpoint-4": ["global_step4/zero_pp_rank_1_states.pt", "trainer_state.json"]}
    )
    copies = checkpoints.to_copy(PLAN, [rank0, rank1], done=[])
    assert [c["path"] for c in copies] == [f"{RUN}/checkpoint-4"]
    c = copies[0]
    base = f"/nowhere/outputs/job/output/{RUN}/checkpoint-4"
    assert (c["step"], c["ranks"], c["dest"], c["bytes"], c["written"]) == (4, [0, 1], base, 40, 104.0)
    assert {(f["host"], f["src"], f["dest"]) for f in c["files"]} == {
        ("n0", f"/j0/output/{RUN}/checkpoint-4/adapter_model.safetensors", f"{base}/adapter_model.safetensors"),
        ("n0", f"/j0/output/{RUN}/checkpoint-4/global_step4/zero_pp_rank_0_states.pt",
         f"{base}/global_step4/zero_pp_rank_0_states.pt"),
        ("n0", f"/j0/output/{RUN}/checkpoint-4/trainer_state.json", f"{base}/trainer_state.json"),
        ("n1", f"/j1/output/{RUN}/checkpoint-4/global_step4/zero_pp_rank_1_states.pt",
         f"{base}/global_step4/zero_pp_rank_1_states.pt"),
    }  # fmt: skip
    assert c["parts"][1] == {
        "host": "n1", "src": f"/j1/output/{RUN}/checkpoint-4", "dest": base,
        "names": ["global_step4/zero_pp_rank_1_states.pt"],
        "rsync": ["--include=*/", "--include=/global_step4/zero_pp_rank_1_states.pt", "--exclude=*",
                  "--prune-empty-dirs"],
    }  # fmt: skip
    assert c["marker_dest"] == f"{base}/{checkpoints.MARKER}"
    assert checkpoints.to_copy(PLAN, [rank0, rank1], done=[f"{RUN}/checkpoint-4"]) == []  # never twice


def test_a_checkpoint_rank0_lacks_or_marked_on_the_controller_is_not_copied(tmp_path: Path) -> None:
    plan = {**PLAN, "output": {**PLAN["output"], "local_dir": str(tmp_path)}}
    rank0 = _look("checkpoint-4", **{"checkpoint-2": ["a"], "checkpoint-4": ["a"]})
    rank1 = _look("checkpoint-4", **{"checkpoint-1": ["a"]})  # an older run's leftover on rank 1 only
    marker = tmp_path / "output" / RUN / "checkpoint-2" / checkpoints.MARKER
    marker.parent.mkdir(parents=True)
    marker.write_text("{}")
    assert [c["path"] for c in checkpoints.to_copy(plan, [rank0, rank1], [])] == [f"{RUN}/checkpoint-4"]


def test_s3_copies_go_under_the_prefix() -> None:
    plan = {**PLAN, "output": {"mode": "s3", "uri": "s3://b/runs/job", "local_dir": "/x"}}
    (c,) = checkpoints.to_copy(plan, [_look("checkpoint-2", **{"checkpoint-2": ["a"]})], [])
    assert c["dest"] == f"s3://b/runs/job/{RUN}/checkpoint-2"
    assert c["marker_dest"] == f"s3://b/runs/job/{RUN}/checkpoint-2/{checkpoints.MARKER}"


def test_only_copies_that_arrived_whole_land_with_marker_and_report() -> None:
    rank0 = _look("checkpoint-4", **{"checkpoint-2": ["a", "b"], "checkpoint-4": ["a"]})
    rank1 = _look("checkpoint-4", **{"checkpoint-2": ["c"], "checkpoint-4": ["c"]})
    two, four = checkpoints.to_copy(PLAN, [rank0, rank1], [])
    # One transfer per rank's part (an rsync pull, or an S3 upload): rank 1's part of checkpoint-4 failed (rc 23:
    # rsync's partial transfer, the checkpoint was rotated away meanwhile).
    rank0_parts = {"results": [{"item": c["parts"][0], "rc": 0} for c in (two, four)]}
    rank1_parts = {"results": [{"item": two["parts"][1], "rc": 0}, {"item": four["parts"][1], "rc": 23}]}
    landed = checkpoints.landed([two, four], [rank0_parts, rank1_parts, {"skipped": True}])
    assert [c["path"] for c in landed] == [two["path"]]
    marker = json.loads(landed[0]["marker"])
    assert (marker["step"], marker["ranks"], marker["files"], marker["bytes"]) == (2, [0, 1], 3, 30)
    assert marker["written"] == "1970-01-01T00:01:42+00:00" and marker["lag_seconds"] > 0
    assert landed[0]["report"].startswith(
        f"checkpoint-2 safe at {two['dest']}: 3 files, 0.0 MB from rank 0, 1; lag "
    )
    parts = [{"item": p, "rc": 0} for p in two["parts"]]
    assert len(checkpoints.landed([two], [{"results": parts}])) == 1
    assert checkpoints.landed([two], [{"results": [{**parts[0], "rc": 1}, parts[1]]}]) == []
    assert checkpoints.landed([two], [{"results": parts[:1]}]) == []  # rank 1's part never ran


def test_resume_takes_the_newest_marked_checkpoint(tmp_path: Path) -> None:
    assert checkpoints.latest_complete(tmp_path) is None
    for run, step, marked in [("v0-a", 10, True), ("v1-b", 12, True), ("v1-b", 15, False)]:
        ckpt = tmp_path / "output" / run / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        if marked:
            (ckpt / checkpoints.MARKER).write_text("{}")
    assert checkpoints.latest_complete(tmp_path) == tmp_path / "output" / "v1-b" / "checkpoint-12"


def test_the_end_of_a_job_leaves_checkpoint_files_to_the_watch() -> None:
    paths = ["/j/output/v0/args.json", "/j/output/v0/checkpoint-2/a", "/j/output/v0/checkpoint-2-merged/b"]
    assert checkpoints.outside_checkpoints(paths) == [paths[0], paths[2]]


def test_the_unit_watch_lists_checkpoints_and_links(tmp_path: Path) -> None:
    watch = library_module("swiftfleet_unit_watch")
    run = tmp_path / RUN
    (run / "checkpoint-3" / "global_step3").mkdir(parents=True)
    (run / "checkpoint-3" / "global_step3" / "shard.pt").write_bytes(b"12345")
    (run / "checkpoint-3" / "trainer_state.json").write_text("{}")
    (run / "checkpoint-3" / "latest").symlink_to("global_step3")  # links inside are not files to copy
    (run / "logging.jsonl").write_text("")
    os.symlink("checkpoint-3", run / "last-checkpoint")
    found, links = watch.list_checkpoints(str(tmp_path))
    assert links == {RUN: "checkpoint-3"}
    assert [c["path"] for c in found] == [f"{RUN}/checkpoint-3"]
    assert [f[:2] for f in found[0]["files"]] == [["global_step3/shard.pt", 5], ["trainer_state.json", 2]]
    assert watch.list_checkpoints(str(tmp_path / "absent")) == ([], {})


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed (make deps installs it)")
def test_a_parts_rsync_filters_take_exactly_its_files(tmp_path: Path) -> None:
    """The filters of a rank's part, run by a real rsync: its files (wildcard characters in a name included) and the
    directories on their way arrive; the files another rank sends and unlisted ones do not."""
    src, dest = tmp_path / "checkpoint-4", tmp_path / "copy"
    names = ["adapter.safetensors", "iter/x[1].distcp", "w*?.pt"]
    for name in [*names, "iter/other.distcp", "global_step4/zero_pp_rank_1_states.pt"]:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(name)
    done = subprocess.run(
        ["rsync", "-a", *checkpoints.rsync_filters(names), f"{src}/", f"{dest}/"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == sorted(names)
    assert not (dest / "global_step4").exists()  # no empty directory of another rank's part
