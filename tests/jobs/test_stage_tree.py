"""swiftfleet.jobs.stage_tree (stage.yml's action swiftfleet_stage_tree): the uploads as links named as the job
directory wants them, made anew each time, private to the controller's user."""

import stat
from pathlib import Path

from swiftfleet.jobs.stage_tree import lay_out


def test_links_named_as_the_job_directory_wants_them(tmp_path: Path) -> None:
    model, data = tmp_path / "my-model", tmp_path / "train.jsonl"
    model.mkdir()
    data.write_text("{}\n")
    tree = tmp_path / "tree"
    (tree / "stale").mkdir(parents=True)  # a layout of an earlier run: gone
    lay_out(
        str(tree), [{"src": str(model), "dest": "model"}, {"src": str(data), "dest": "data/0/train.jsonl"}]
    )
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*")) == [
        "data", "data/0", "data/0/train.jsonl", "model",
    ]  # fmt: skip
    assert (tree / "model").readlink() == model and (tree / "data/0/train.jsonl").readlink() == data
    assert stat.S_IMODE(tree.stat().st_mode) == 0o700  # nothing under it is reachable by other users
