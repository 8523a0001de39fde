"""The spot-notice callback (swiftfleet/node_plugins/save_on_notice.py): which jobs the plan gives it, merged after
the user's own plugins and callbacks; and, in the pinned ms-swift, that it registers through external_plugins and
makes every rank of a gloo group of two save together when only one rank's node has a notice, once per notice."""

import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from swiftfleet import node_plugins
from swiftfleet.jobs import plan, spec
from swiftfleet.jobs.plan_model import JobPlan
from tests.conftest import free_port
from tests.jobs.conftest import CHAT_ROW

NODES = plan.hypothetical_nodes(2)
DEST = "files/swiftfleet/save_on_notice.py"
NAME = node_plugins.SAVE_ON_NOTICE_CALLBACK


def _plan(tmp_path: Path, **job: Any) -> JobPlan:
    data = tmp_path / "chat.jsonl"
    data.write_text(CHAT_ROW)
    base = {"name": "notice", "kind": "swift sft", "model": "org/base", "datasets": [str(data)]}
    return plan.build(spec.parse_job({"job": {**base, **job}}, "job"), NODES, "job")


@pytest.mark.parametrize("kind", ["swift sft", "swift pt"])
def test_hf_trainer_jobs_carry_the_callback(tmp_path: Path, kind: str) -> None:
    job_plan = _plan(tmp_path, kind=kind)
    assert (str(node_plugins.SAVE_ON_NOTICE), DEST) in {(u.src, u.dest) for u in job_plan.uploads}
    assert (job_plan.config["external_plugins"], job_plan.config["callbacks"]) == ([DEST], [NAME])


def test_the_users_plugins_and_callbacks_stay_first(tmp_path: Path) -> None:
    plugin = tmp_path / "my_loss.py"
    plugin.write_text("# a plugin\n")
    job_plan = _plan(tmp_path, args={"external_plugins": str(plugin), "callbacks": "early_stop"})
    assert job_plan.config["external_plugins"] == ["files/external_plugins/my_loss.py", DEST]
    assert job_plan.config["callbacks"] == ["early_stop", NAME]


@pytest.mark.parametrize(
    "job",
    [
        {"kind": "megatron sft", "args": {"tuner_type": "lora"}},  # Megatron's trainer has no callbacks_map
        {"args": {"save_strategy": "no"}},  # the user wants no checkpoint at all
        {"kind": "swift export", "datasets": []},
    ],
)
def test_other_jobs_do_not(tmp_path: Path, job: dict[str, Any]) -> None:
    job_plan = _plan(tmp_path, **job)
    assert "callbacks" not in job_plan.config and "external_plugins" not in job_plan.config
    # still shipped: a model saved by a training job names the plugin in its args.json, and ms-swift imports it
    # wherever that model is loaded (the rehearsal's deploy of a merged export)
    assert DEST in [u.dest for u in job_plan.uploads]


# Two gloo ranks on this machine, each with its own flag file (its own node): only rank 1's node gets notices.
AGREEMENT = """
import json, os, sys
from pathlib import Path
import torch.distributed as dist
import torch.multiprocessing as mp
from swift.utils import import_external_file

def rank(r, port, tmp):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=r, world_size=2)
    from swift.callbacks import callbacks_map
    from transformers import TrainerControl, TrainerState
    import_external_file(sys.argv[1])
    cls = callbacks_map[sys.argv[2]]
    flag = Path(tmp) / f"flag{r}"
    sys.modules[cls.__module__].FLAG = flag
    args = type("Args", (), {"device": "cpu"})()
    callback, state, saves = cls(args, None), TrainerState(), []
    for step, notice in enumerate([None, '{"action": "terminate"}', None, '{"action": "stop"}', None], 1):
        if r == 1 and notice:
            flag.write_text(notice)
        state.global_step = step
        saves.append(callback.on_step_end(args, state, TrainerControl()).should_save)
    Path(tmp, f"saves{r}.json").write_text(json.dumps(saves))

if __name__ == "__main__":
    mp.spawn(rank, args=(int(sys.argv[3]), sys.argv[4]), nprocs=2)
"""


@pytest.mark.swift
def test_every_rank_saves_once_per_notice_when_one_node_has_it(tmp_path: Path, swift_python: Path) -> None:
    script = tmp_path / "agreement.py"
    script.write_text(textwrap.dedent(AGREEMENT))
    done = subprocess.run(
        [str(swift_python), str(script), str(node_plugins.SAVE_ON_NOTICE), NAME, str(free_port("127.0.0.1")), str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # steps 2 and 4 post a notice on rank 1's node; steps 3 and 5 still see the same one there
    for r in (0, 1):
        assert (tmp_path / f"saves{r}.json").read_text() == "[false, true, false, true, false]"
    assert (
        'spot interruption notice on this node: {"action": "terminate"}; saving checkpoint-2' in done.stdout
    )
    assert "spot interruption notice on another node; saving checkpoint-4" in done.stdout
