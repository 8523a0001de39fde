"""Staging: each upload leaves the controller once, for rank 0; rank 0 serves the uploads (and nothing else of the
job directory) to the job's other nodes with rsync's daemon. The plan's rules, and the rendered daemon
configuration run for real on loopback."""

import getpass
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swiftfleet import ports
from swiftfleet.jobs import plan, render, spec
from swiftfleet.jobs.plan_model import JobPlan
from tests.jobs.conftest import recorded

RSYNC = shutil.which("rsync")
needs_rsync = pytest.mark.skipif(RSYNC is None, reason="rsync is not installed (make deps installs it)")


def _nodes(count: int, ip: str = "10.0.1.{}") -> list[plan.NodeInfo]:
    return [
        plan.NodeInfo(f"gpu{i}", i, ip.format(10 + i), "ubuntu", 8, 80, "p4d.24xlarge") for i in range(count)
    ]


def _job(tmp_path: Path) -> dict[str, object]:
    model = tmp_path / "upload" / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / "sub" / "weights.bin").write_bytes(b"w" * 1000)
    data = tmp_path / "upload" / "train.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
    )
    return {"name": "lora", "kind": "swift sft", "model": str(model), "datasets": [str(data)]}


def _plan(tmp_path: Path, nodes: list[plan.NodeInfo], data_dir: Path | None = None) -> JobPlan:
    facts = recorded("/home/ubuntu", "/home/ubuntu/swift-env", "ubuntu")
    if data_dir:
        facts = facts.model_copy(update={"data_dir": str(data_dir), "job_user": getpass.getuser()})
    return plan.build(
        spec.parse_job({"job": _job(tmp_path)}, "test"), nodes, "test", {n.name: facts for n in nodes}
    )


def test_more_nodes_copy_from_rank0_and_only_rank0_serves(tmp_path: Path) -> None:
    job_plan = _plan(tmp_path, _nodes(3))
    staging = job_plan.staging
    assert staging.fan_out
    assert staging.address == "10.0.1.10"
    assert staging.allow == ["10.0.1.11", "10.0.1.12"]
    assert staging.port in ports.STAGING and staging.port == ports.staging_port("lora")
    assert ports.server_port_problem(staging.port) is not None  # a server may not take a staging port
    assert staging.bytes == sum(u.bytes for u in job_plan.uploads)
    model = next(u for u in job_plan.uploads if u.dest == "model")
    assert model.is_dir and model.bytes == 1002
    confs = [
        [d for d in render.render_node(job_plan, n.rank) if d.endswith("stage-rsyncd.conf")]
        for n in job_plan.nodes
    ]
    assert confs == [[f"{job_plan.nodes[0].job_dir}/stage-rsyncd.conf"], [], []]
    assert staging.serves[-1] == "- *"
    assert "+ /model/***" in staging.serves


def test_one_node_gets_the_uploads_from_the_controller_and_serves_nothing(tmp_path: Path) -> None:
    job_plan = _plan(tmp_path, _nodes(1))
    assert not job_plan.staging.fan_out
    assert job_plan.uploads
    assert not any(d.endswith("stage-rsyncd.conf") for d in render.render_node(job_plan, 0))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[JobPlan, Path]]:
    """Rank 0's job directory as staging leaves it (uploads, job.env, a log) and its rsync daemon on 127.0.0.1,
    run from the rendered configuration."""
    job_plan = _plan(tmp_path, _nodes(2, ip="127.0.0.{}"), data_dir=tmp_path / "rank0")
    # _nodes numbers from .10: serve on 127.0.0.10, answer 127.0.0.11 only.
    rank0 = job_plan.nodes[0]
    job_dir = Path(rank0.job_dir)
    for u in job_plan.uploads:
        dest = job_dir / u.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if u.is_dir else shutil.copy)(u.src, dest)
    (job_dir / "job.env").write_text("HF_TOKEN=secret\n")
    job_dir.chmod(0o700)  # the daemon must read as the job user, not as nobody
    (job_dir / "rank0.log").write_text("old run\n")
    conf = job_dir / "stage-rsyncd.conf"
    conf.write_text(render.render_node(job_plan, 0)[str(conf)])
    daemon = subprocess.Popen([str(RSYNC), "--daemon", "--no-detach", f"--config={conf}"])
    try:
        for _ in range(50):
            if _pull(job_plan, "127.0.0.11", tmp_path / "probe").returncode != 10:  # 10: not listening yet
                break
            time.sleep(0.1)
        yield job_plan, tmp_path
    finally:
        daemon.terminate()
        daemon.wait()


def _pull(job_plan: JobPlan, source_ip: str, dest: Path, path: str = "") -> subprocess.CompletedProcess[str]:
    s = job_plan.staging
    url = f"rsync://{s.address}:{s.port}/{s.module}/{path}"
    return subprocess.run(
        [str(RSYNC), "-a", f"--address={source_ip}", "--timeout=20", url, f"{dest}/"],
        capture_output=True,
        text=True,
        check=False,
    )


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@needs_rsync
def test_the_other_node_copies_every_upload_and_nothing_else(served: tuple[JobPlan, Path]) -> None:
    job_plan, tmp_path = served
    pulled = _pull(job_plan, "127.0.0.11", tmp_path / "rank1")
    assert pulled.returncode == 0, pulled.stderr
    got = _files(tmp_path / "rank1")
    expected = {}
    for u in job_plan.uploads:
        src = Path(u.src)
        if u.is_dir:
            expected.update({f"{u.dest}/{k}": v for k, v in _files(src).items()})
        else:
            expected[u.dest] = src.read_bytes()
    assert got == expected
    assert "job.env" not in got and "rank0.log" not in got and "stage-rsyncd.conf" not in got


@needs_rsync
def test_the_job_env_cannot_be_read_and_other_addresses_are_refused(served: tuple[JobPlan, Path]) -> None:
    job_plan, tmp_path = served
    secret = _pull(job_plan, "127.0.0.11", tmp_path / "secret", "job.env")
    assert secret.returncode != 0 and not (tmp_path / "secret" / "job.env").exists()
    stranger = _pull(job_plan, "127.0.0.12", tmp_path / "stranger")
    # rsync 3.2 says access denied; later versions do not even admit that the module exists.
    assert stranger.returncode != 0 and (
        "access denied" in stranger.stderr or "Unknown module" in stranger.stderr
    )
    assert not (tmp_path / "stranger").exists() or not any((tmp_path / "stranger").iterdir())
