"""The real rehearsal on a 2-node local cluster, over SSH, with the playbooks a user runs: setup, LoRA training
across both nodes (one process group), export (merge), deploy (a chat answered through the bridge), eval (a
local multiple-choice set), a killed rank reported by name, and a job too big for the inventory refused before
any host is touched. The cluster is the session's (conftest.py)."""

import hashlib
import json
import re
import time

import pytest

from swiftfleet import lock
from swiftfleet.inventory import known_hosts_path
from swiftfleet.jobs.plan import latest_checkpoint
from tests.conftest import run_cli
from tests.e2e.chat import chat
from tests.e2e.conftest import CPU_ARGS, KEY, RANK0_IP, TRAIN_ARGS, Rehearsal
from tests.roles.conftest import Run

pytestmark = [pytest.mark.docker, pytest.mark.swift]


def test_a_job_too_big_for_the_inventory_touches_no_host(installed: Rehearsal) -> None:
    job = installed.job(
        name="too-big", kind="swift sft", model=str(installed.tiny / "model"),
        datasets=[str(installed.tiny / "chat.jsonl")], nodes=3, args=TRAIN_ARGS,
    )  # fmt: skip
    run = installed.play("train.yml", job)
    assert run.rc != 0
    assert "job: nodes: the job wants 3 nodes, the cluster has 2" in run.output
    assert set(run.recap()) == {"localhost"}, run.output[-3000:]  # no node was contacted
    assert "too-big" not in installed.node(0, "ls", "/root/swiftfleet/jobs")


def test_setup_installs_the_cpu_stack_every_role_again_changes_nothing_then_no_role_runs(
    rehearsal: Rehearsal, setup_runs: tuple[Run, Run, Run]
) -> None:
    """setup.yml on both nodes in parallel; every role again changes nothing; the stack table says consistent;
    a plain re-run finds both nodes current (fingerprint, no drift) and runs no role, changing nothing."""
    first, second, third = setup_runs
    hosts = {f"{rehearsal.name}-node{rank}" for rank in (0, 1)}
    assert first.rc == 0, first.output[-5000:]
    # localhost only takes the cluster's lock (swiftfleet.lock), which changes nothing on any host.
    recap = first.recap()
    assert set(recap) == hosts | {"localhost"}
    assert (recap["localhost"]["changed"], recap["localhost"]["failed"]) == (0, 0)
    assert all(recap[h]["changed"] > 0 and recap[h]["failed"] == 0 for h in hosts), recap
    assert second.rc == 0, second.output[-5000:]
    assert set(second.recap()) == hosts | {"localhost"}
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in second.recap().values()), second.recap()

    report = json.loads((known_hosts_path(rehearsal.name).parent / "stack.json").read_text())
    assert set(report) == hosts
    for node in report.values():
        assert (node["torch"], node["torch_cuda"], node["gpu"]) == ("2.13.0+cpu", None, "no GPU")
        assert node["ms_swift"] == "4.6.0" and node["consistent"] is True, node
    assert "consistent" in second.output and "2.13.0+cpu" in second.output  # the table was printed
    assert "setup: nothing to do" not in second.output and "TASK [uv : " in second.output

    assert third.rc == 0, third.output[-5000:]
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in third.recap().values()), third.recap()
    assert (
        f"setup: nothing to do on {rehearsal.name}-node0, {rehearsal.name}-node1: each matches"
        in third.output
    )
    assert "TASK [uv : " not in third.output and "TASK [ms_swift : " not in third.output  # no role ran
    assert json.loads((known_hosts_path(rehearsal.name).parent / "stack.json").read_text()) == report
    fingerprints = [
        json.loads(rehearsal.node(r, "cat", "/etc/swiftfleet/setup.json"))["fingerprint"] for r in (0, 1)
    ]
    assert all(len(f) == 64 for f in fingerprints), fingerprints


def test_lora_trains_across_both_nodes(installed: Rehearsal) -> None:
    job = installed.job(
        name="tiny-e2e", kind="swift sft", model=str(installed.tiny / "model"),
        datasets=[str(installed.tiny / "chat.jsonl")], nproc_per_node=1,
        args={**TRAIN_ARGS, "max_steps": 6, "save_steps": 6}, env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    run = installed.play("train.yml", job)
    print(f"train.yml (2 nodes, 6 steps): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    assert "step 6/6  loss" in run.output  # rank 0's progress, printed as it came
    for rank in (0, 1):  # the watch's first round: every node's load and memory (no GPU here, and it says so)
        assert re.search(rf"rank {rank}: load \d+\.\d/\d+ CPUs, memory [\d.]+/[\d.]+ GiB, no GPU", run.output)
    out = installed.outputs / "tiny-e2e"
    for rank in (0, 1):  # one process group of two: each rank's own log, fetched and tagged
        text = (out / f"rank{rank}.log").read_text()
        assert f"rank: {rank}, local_rank: 0, world_size: 2, local_world_size: 1" in text
    ckpt = latest_checkpoint(out / "output")
    assert ckpt is not None and ckpt.name == "checkpoint-6"
    assert (ckpt / "adapter_model.safetensors").stat().st_size > 0
    # Staging: the model directory went to rank 0 only; rank 1 copied it from rank 0's server, which is gone.
    assert "staging" in run.output and "the other 1 node(s) copy it from there" in run.output
    model = installed.tiny / "model"
    ours = {
        str(p.relative_to(model)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in model.rglob("*")
        if p.is_file()
    }
    for rank in (0, 1):
        listing = installed.node(
            rank, "sh", "-c", "cd /root/swiftfleet/jobs/tiny-e2e/model && find . -type f -exec sha256sum {} +"
        )
        theirs = {line.split()[1].removeprefix("./"): line.split()[0] for line in listing.splitlines()}
        assert theirs == ours, f"rank {rank}"
    assert (
        installed.node(0, "systemctl", "is-active", "swiftfleet-stage-tiny-e2e.service").strip() != "active"
    )
    assert "job.env" not in installed.node(1, "ls", "/root/swiftfleet/jobs/tiny-e2e/model")


def test_resume_latest_continues_from_the_fetched_checkpoint(installed: Rehearsal) -> None:
    """The run above stopped at checkpoint-6 (as a spot interruption would); `resume: latest` takes it up."""
    job = installed.job(
        name="tiny-e2e", kind="swift sft", model=str(installed.tiny / "model"),
        datasets=[str(installed.tiny / "chat.jsonl")], nproc_per_node=1, resume="latest",
        args={**TRAIN_ARGS, "max_steps": 8, "save_steps": 2}, env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    run = installed.play("train.yml", job)
    print(f"train.yml (resume, 2 nodes, steps 7-8): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    assert "resume/checkpoint-6" in run.output  # the fetched checkpoint went up with the job
    assert "step 8/8  loss" in run.output and "step 2/8 " not in run.output  # steps 1-6 were not run again
    for rank in (0, 1):
        assert installed.node(rank, "ls", "/root/swiftfleet/jobs/tiny-e2e/resume").split() == ["checkpoint-6"]
    ckpt = latest_checkpoint(installed.outputs / "tiny-e2e" / "output")
    assert ckpt is not None and ckpt.name == "checkpoint-8"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    logged = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert logged == [1, 2, 4, 6, 8], logged  # the first run's logged steps, then the resumed 8
    plotted = run_cli("plot", "tiny-e2e", env=installed.env)  # both runs' logging.jsonl, as one curve
    assert plotted.returncode == 0, plotted.stderr
    curves = installed.outputs / "tiny-e2e" / "curves.png"
    assert (
        plotted.stdout
        == f"loss and learning rate of 'tiny-e2e', steps 1-8 (5 logged) from 2 run(s): {curves}\n"
    )
    assert curves.read_bytes()[:4] == b"\x89PNG"


def test_export_merges_the_lora(installed: Rehearsal) -> None:
    job = installed.job(
        name="tiny-merge", kind="swift export", model=str(installed.tiny / "model"), checkpoint="tiny-e2e",
        args={**CPU_ARGS, "merge_lora": True}, env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    run = installed.play("export.yml", job)
    print(f"export.yml (merge): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    merged = installed.outputs / "tiny-merge" / "output"
    assert (merged / "model.safetensors").stat().st_size > 0
    assert "lora" not in (merged / "config.json").read_text().lower()


def test_merge_lora_merges_and_a_re_run_replaces_the_last_merge(installed: Rehearsal) -> None:
    """`swift merge-lora` as its own kind; ms-swift skips a merge whose output exists, so a re-run that kept the
    node's output/ would leave the old one: the kit empties it first."""
    job = installed.job(
        name="tiny-merge-lora", kind="swift merge-lora", model=str(installed.tiny / "model"),
        checkpoint="tiny-e2e", args=CPU_ARGS, env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    output = "/root/swiftfleet/jobs/tiny-merge-lora/output"
    for attempt in ("first", "again"):
        run = installed.play("export.yml", job)
        print(f"export.yml (merge-lora, {attempt}): {run.seconds:.0f} s")
        assert run.rc == 0, run.output[-5000:]
        log = installed.node(0, "cat", "/root/swiftfleet/jobs/tiny-merge-lora/rank0.log")
        assert "Successfully merged LoRA" in log and "skipping the saving process" not in log, log[-3000:]
        assert installed.node(0, "ls", output).split().count("stale-marker") == 0
        installed.node(0, "touch", f"{output}/stale-marker")  # what the re-run must not find
    merged = installed.outputs / "tiny-merge-lora" / "output"
    assert (merged / "model.safetensors").stat().st_size > 0
    assert "lora" not in (merged / "config.json").read_text().lower()


def test_deploy_serves_a_chat_through_the_bridge(installed: Rehearsal) -> None:
    job = installed.job(
        name="tiny-server", kind="swift deploy", model=str(installed.outputs / "tiny-merge" / "output"),
        args={**CPU_ARGS, "infer_backend": "transformers", "served_model_name": "tiny", "port": 8000},
        env={"CUDA_VISIBLE_DEVICES": "", "SWIFT_API_KEY": "{{ lookup('ansible.builtin.env', 'SWIFT_API_KEY') }}"},
    )  # fmt: skip
    run = installed.play("deploy.yml", job)
    print(f"deploy.yml: {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    assert f"tiny-server serves tiny at http://{RANK0_IP}:8000/v1" in run.output
    assert KEY not in run.output
    answer = chat(f"http://{RANK0_IP}:8000/v1", "tiny", "alpha beta gamma", KEY)
    assert answer["choices"][0]["message"]["role"] == "assistant", answer  # type: ignore[index]
    assert KEY not in installed.node(0, "cat", "/root/swiftfleet/jobs/tiny-server/rank0.log")


def test_eval_scores_the_served_model_offline(installed: Rehearsal) -> None:
    job = installed.job(
        name="tiny-eval", kind="swift eval", model="tiny",
        args={
            "eval_url": "http://{{ swiftfleet_rank0_ip }}:8000/v1", "eval_backend": "Native",
            "eval_dataset": ["general_mcq"], "eval_limit": 5, "eval_num_proc": 1,
            "eval_dataset_args": {"general_mcq": {"local_path": str(installed.root / "evalset"), "subset_list": ["tiny"]}},
            "eval_generation_config": {"max_tokens": 16},
        },
        env={"SWIFT_API_KEY": "{{ lookup('ansible.builtin.env', 'SWIFT_API_KEY') }}"},
    )  # fmt: skip
    # An earlier run's report, fetched before: the table shows this run's reports only.
    earlier = installed.outputs / "tiny-eval" / "output" / "native" / "20000101_000000" / "reports" / "tiny"
    earlier.mkdir(parents=True)
    (earlier / "earlier_set.json").write_text(
        json.dumps({"dataset_name": "earlier_set", "score": 0.5, "metrics": [{"name": "mean_acc", "num": 2}]})
    )
    run = installed.play("eval.yml", job)
    print(f"eval.yml (5 questions against the server): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    reports = list(
        (installed.outputs / "tiny-eval" / "output").glob("native/*/reports/tiny/general_mcq.json")
    )
    assert len(reports) == 1
    report = json.loads(reports[0].read_text())
    assert report["metrics"][0]["num"] == 5 and 0.0 <= report["score"] <= 1.0
    assert "general_mcq  mean_acc" in run.output  # the printed table
    assert "earlier_set" not in run.output


def test_a_killed_rank_stops_the_run_and_is_named(installed: Rehearsal) -> None:
    job = installed.job(
        name="tiny-kill", kind="swift sft", model=str(installed.tiny / "model"),
        datasets=[str(installed.tiny / "chat.jsonl")], nproc_per_node=1,
        args={**TRAIN_ARGS, "max_steps": 500, "save_steps": 1000, "logging_steps": 1},
        env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    log = installed.root / "kill.log"
    proc = installed.start("train.yml", job, log)
    try:
        deadline = time.monotonic() + 600
        while "step 1/500" not in log.read_text():  # training is under way on both ranks
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(2)
        installed.node(1, "systemctl", "kill", "--signal=SIGKILL", "swiftfleet-tiny-kill-rank1.service")
        rc = proc.wait(timeout=600)
    finally:
        proc.kill()
    text = log.read_text()
    assert rc != 0
    assert f"job tiny-kill: rank 1 ({installed.name}-node1) failed first" in text, text[-3000:]
    assert "Every other rank was stopped" in text and "[rank 1] " in text
    assert set(installed.unit_states("tiny-kill")) <= {"inactive", "failed"}
    assert (installed.outputs / "tiny-kill" / "rank1.log").is_file()


def test_a_long_run_outlasts_one_watch_then_is_attached_and_stopped_at_its_time_limit(
    installed: Rehearsal,
) -> None:
    """The watch has a budget of rounds (chunks x depth): a job that outlasts it goes on, and the playbook says so;
    train.yml again attaches (nothing restarted) and watches through several chunks until systemd ends every rank
    at the job's time_limit (RuntimeMaxSec), which the report names."""
    job = installed.job(
        name="tiny-limit", kind="swift sft", model=str(installed.tiny / "model"),
        datasets=[str(installed.tiny / "chat.jsonl")], nproc_per_node=1, time_limit="80s",
        args={**TRAIN_ARGS, "max_steps": 5000, "save_steps": 10000}, env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    first = installed.play("train.yml", job, "-e", "watch_chunks=1", "-e", "watch_depth=2")
    assert first.rc != 0
    assert "job tiny-limit is still running after 2 rounds of 3 s; it goes on" in first.output, first.output[
        -3000:
    ]
    assert installed.unit_states("tiny-limit") == ["active", "active"]

    # status.yml while it runs: both nodes' load and memory (no GPU here, and it says so), rank 0's step and loss.
    for _ in range(5):
        status = installed.play("status.yml", job)
        assert status.rc == 0, status.output[-3000:]
        rows = [line for line in status.output.splitlines() if "swiftfleet-tiny-limit-rank" in line]
        if len(rows) == 2 and "loss" in rows[0]:
            break
        time.sleep(3)
    assert len(rows) == 2, status.output[-3000:]
    assert all(re.search(r"load \d+\.\d/\d+ CPUs, memory \d+\.\d/\d+\.\d GiB, no GPU", r) for r in rows), rows
    assert re.search(r"step \d+/5000 .*loss", rows[0]), rows

    # Whoever staged the job is recorded on every node; a running job someone else started is not stopped
    # without force (and no rank is stopped when that is refused).
    started_by = "/root/swiftfleet/jobs/tiny-limit/started-by"
    assert [installed.node(rank, "cat", started_by) for rank in (0, 1)] == [f"{lock.operator()}\n"] * 2
    installed.node(1, "sh", "-c", f"echo bob@laptop > {started_by}")
    refused = installed.play("stop.yml", job)
    assert refused.rc != 0
    assert "job tiny-limit runs (started by bob@laptop; you are " in refused.output, refused.output[-3000:]
    assert installed.unit_states("tiny-limit") == ["active", "active"]

    second = installed.play("train.yml", job, "-e", "watch_depth=2")
    print(f"train.yml (attached, until the time_limit of 80s): {second.seconds:.0f} s")
    assert second.rc != 0
    assert "already running on every rank: watching it (nothing restarted)" in second.output
    assert (
        second.output.count("TASK [Watch the units (progress from rank 0's log)]") > 2
    )  # more than one chunk
    assert f"job tiny-limit: rank 0 ({installed.name}-node0) failed first" in second.output, second.output[
        -3000:
    ]
    assert "ended with timeout" in second.output and "past the job's time_limit 80s" in second.output
    assert set(installed.unit_states("tiny-limit")) <= {"inactive", "failed"}
    stopped = installed.play("stop.yml", job)  # nothing runs now: whoever started it, stop is harmless
    assert stopped.rc == 0, stopped.output[-3000:]
    assert "rank 1: swiftfleet-tiny-limit-rank1.service was" in stopped.output
