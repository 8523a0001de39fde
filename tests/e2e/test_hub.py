"""Hub ids as a job's model and datasets, without the internet: a stand-in Hugging Face hub (fake_hub.py) serves
the tiny model and chat set. First the plan's own download commands against it with the controller's ms-swift
environment (the same huggingface_hub as the nodes'); then train.yml on the 2-node cluster with HF_ENDPOINT
pointing at it on the cluster's bridge: every node downloads before the launch, both ranks train in one process
group, a job with hub models only launches offline (the hub hears nothing from the ranks), and an id the hub does
not have fails at the download, naming it, before any unit exists.
ModelScope's hub speaks another API and is not served here: its command is checked by tests/jobs/test_hub_commands.py.
"""

import ipaddress
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from swiftfleet.jobs.plan import hub_download_argv, latest_checkpoint
from tests.conftest import SWIFT_PYTHON
from tests.e2e.conftest import GATEWAY_IP, RANK0_IP, TRAIN_ARGS, Rehearsal
from tests.e2e.fake_hub import FakeHub

MODEL_ID, DATA_ID = "tiny-org/tiny-model", "tiny-org/tiny-chat"
NODE_CACHE = "/root/.cache/huggingface/hub"


def _repos(tiny: Path) -> dict[tuple[str, str], Path]:
    return {("model", MODEL_ID): tiny / "model", ("dataset", DATA_ID): tiny / "chat.jsonl"}


def _hf(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A plan's download command as the node runs it: the program from the ms-swift environment's bin/."""
    program = SWIFT_PYTHON.parent / argv[0]
    return subprocess.run(
        [str(program), *argv[1:]], env={**os.environ, **env}, capture_output=True, text=True
    )


@pytest.mark.swift
def test_the_plans_hf_downloads_fill_the_cache_from_the_stand_in(tiny: Path, tmp_path: Path) -> None:
    with FakeHub.serving("127.0.0.1", _repos(tiny)) as hub:
        env = {"HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_UPDATE_CHECK": "1"}
        for kind, repo_id, source in (("model", MODEL_ID, tiny / "model"), ("dataset", DATA_ID, tiny)):
            done = _hf(hub_download_argv("huggingface", repo_id, kind), env)
            assert done.returncode == 0, done.stderr
            commit = hub.repos[(kind, repo_id)].commit
            snapshot = (
                tmp_path / "hf" / "hub" / f"{kind}s--{repo_id.replace('/', '--')}" / "snapshots" / commit
            )
            assert str(snapshot) in done.stdout
            for name, data in hub.repos[(kind, repo_id)].files.items():
                assert (snapshot / name).read_bytes() == data == (source / name).read_bytes()

        asked = len(hub.seen())
        offline = _hf(hub_download_argv("huggingface", MODEL_ID, "model"), {**env, "HF_HUB_OFFLINE": "1"})
        assert offline.returncode == 0, offline.stderr  # the cache answers
        assert len(hub.seen()) == asked  # and the hub heard nothing

        missing = _hf(hub_download_argv("huggingface", "tiny-org/missing", "model"), env)
        assert missing.returncode != 0 and "tiny-org/missing" in missing.stderr
        assert ("127.0.0.1", "GET", "/api/models/tiny-org/missing/revision/main") in hub.seen()


@pytest.fixture
def hub(installed: Rehearsal) -> Iterator[FakeHub]:
    """The stand-in hub on the controller's address on the cluster's bridge (never 0.0.0.0)."""
    with FakeHub.serving(GATEWAY_IP, _repos(installed.tiny)) as served:
        yield served


def _hub_job(rehearsal: Rehearsal, hub: FakeHub, name: str, model: str, datasets: list[str]) -> Path:
    return rehearsal.job(
        name=name, kind="swift sft", hub="huggingface", model=model, datasets=datasets, nproc_per_node=1,
        args={**TRAIN_ARGS, "max_steps": 2, "save_steps": 2},
        env={"CUDA_VISIBLE_DEVICES": "", "HF_ENDPOINT": hub.url},
    )  # fmt: skip


# The nodes' addresses on the bridge, the hub's clients (local clusters: rank 0's, then one up per rank).
NODE_IPS = [RANK0_IP, str(ipaddress.ip_address(RANK0_IP) + 1)]


def _trained_together(rehearsal: Rehearsal, name: str) -> None:
    out = rehearsal.outputs / name
    for rank in (0, 1):  # one process group of two
        text = (out / f"rank{rank}.log").read_text()
        assert f"rank: {rank}, local_rank: 0, world_size: 2, local_world_size: 1" in text, text[-3000:]
    ckpt = latest_checkpoint(out / "output")
    assert ckpt is not None and ckpt.name == "checkpoint-2"
    assert (ckpt / "adapter_model.safetensors").stat().st_size > 0


@pytest.mark.docker
@pytest.mark.swift
def test_a_hub_model_and_dataset_are_downloaded_on_every_node_then_trained(
    installed: Rehearsal, hub: FakeHub
) -> None:
    job = _hub_job(installed, hub, "tiny-hub", MODEL_ID, [f"{DATA_ID}#64"])
    run = installed.play("train.yml", job)
    print(f"train.yml (hub model + dataset, 2 nodes, 2 steps): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    _trained_together(installed, "tiny-hub")

    for rank, ip in enumerate(NODE_IPS):
        for kind, repo_id in (("model", MODEL_ID), ("dataset", DATA_ID)):
            repo = hub.repos[(kind, repo_id)]
            snapshot = f"{NODE_CACHE}/{kind}s--{repo_id.replace('/', '--')}/snapshots/{repo.commit}"
            assert sorted(installed.node(rank, "ls", snapshot).split()) == sorted(repo.files), (rank, kind)
        # Each rank's ms-swift loaded the dataset through `datasets`, online (it asks for a README; hf download not).
        log = (installed.outputs / "tiny-hub" / f"rank{rank}.log").read_text()
        assert f"Downloading the dataset from HuggingFace, dataset_id: {DATA_ID}" in log
        assert (ip, "HEAD", f"/datasets/{DATA_ID}/resolve/main/README.md") in hub.seen()
    assert "HF_HUB_OFFLINE" not in installed.node(0, "cat", "/root/swiftfleet/jobs/tiny-hub/job.env")


@pytest.mark.docker
@pytest.mark.swift
def test_a_job_with_hub_models_only_launches_offline(installed: Rehearsal, hub: FakeHub) -> None:
    job = _hub_job(installed, hub, "tiny-hub-offline", MODEL_ID, [str(installed.tiny / "chat.jsonl")])
    run = installed.play("train.yml", job)
    print(f"train.yml (hub model, offline launch, 2 nodes, 2 steps): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    _trained_together(installed, "tiny-hub-offline")
    assert 'HF_HUB_OFFLINE="1"' in installed.node(1, "cat", "/root/swiftfleet/jobs/tiny-hub-offline/job.env")
    for ip in NODE_IPS:
        # Each node asked for the revision once: its download before the launch. An online rank would ask again.
        asked = [p for c, m, p in hub.seen() if c == ip and p == f"/api/models/{MODEL_ID}/revision/main"]
        assert len(asked) == 1, (ip, hub.seen())


@pytest.mark.docker
@pytest.mark.swift
def test_an_id_the_hub_does_not_have_fails_at_the_download_and_starts_nothing(
    installed: Rehearsal, hub: FakeHub
) -> None:
    job = _hub_job(
        installed, hub, "tiny-hub-missing", "tiny-org/missing", [str(installed.tiny / "chat.jsonl")]
    )
    run = installed.play("train.yml", job)
    print(f"train.yml (missing hub id): {run.seconds:.0f} s")
    assert run.rc != 0
    assert "the huggingface download of model tiny-org/missing failed" in run.output, run.output[-3000:]
    assert "Model 'tiny-org/missing' not found" in run.output
    for rank in (0, 1):
        unit = f"/etc/systemd/system/swiftfleet-tiny-hub-missing-rank{rank}.service"
        assert installed.node(rank, "ls", unit) == ""  # no unit was written, so none started
        assert "tiny-hub-missing" not in installed.node(
            rank, "systemctl", "list-units", "--all", "--no-legend"
        )
