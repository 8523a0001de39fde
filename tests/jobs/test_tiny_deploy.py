"""Real `swift deploy` of the tiny model from the rendered run.sh + swift_launch.py: the API key, given only in the
environment (as the 0600 EnvironmentFile gives it), guards the chat endpoint, and appears on no command line and
nowhere in the log (ms-swift logs all its arguments)."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from swiftfleet.jobs import plan, render, spec
from tests.conftest import free_port
from tests.jobs.conftest import recorded

KEY = "k3y-test-secret-0123"


def _chat(port: int, key: str | None) -> int:
    body = json.dumps(
        {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    ).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", body, headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _rendered(tiny: Path, swift_python: Path, tmp_path: Path, port: int) -> Path:
    """The deploy job's node files rendered under tmp_path, the model in place; the job directory."""
    job_file = tmp_path / "deploy.yml"
    job = {
        "name": "tiny-server",
        "kind": "swift deploy",
        "model": str(tiny / "model"),
        "args": {
            "model_type": "qwen2",
            "template": "qwen",
            "infer_backend": "transformers",
            "port": port,
            "torch_dtype": "float32",
            "served_model_name": "tiny",
        },
        "env": {"SWIFT_API_KEY": KEY, "CUDA_VISIBLE_DEVICES": ""},
    }
    job_file.write_text(yaml.safe_dump({"job": job}))
    nodes = plan.hypothetical_nodes(1)
    facts = {nodes[0].name: recorded(tmp_path, swift_python.parent.parent)}  # the node is this machine
    job_plan = plan.build(spec.load_job(job_file), nodes, "deploy", facts)
    render.render_all(job_plan, tmp_path / "out")
    job_dir = tmp_path / "out" / "rank0-node0" / job_plan.nodes[0].job_dir.lstrip("/")
    subprocess.run(["cp", "-r", str(tiny / "model"), str(job_dir / "model")], check=True)
    return job_dir


@pytest.mark.swift
def test_a_taken_port_stops_the_server_saying_so(tiny: Path, swift_python: Path, tmp_path: Path) -> None:
    """ms-swift would move to the next free port, where nobody looks: the launcher refuses instead."""
    with socket.create_server(("0.0.0.0", 0)) as taken:
        port = taken.getsockname()[1]
        job_dir = _rendered(tiny, swift_python, tmp_path, port)
        env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SWIFT_API_KEY": KEY}
        run = subprocess.run(
            ["bash", str(job_dir / "run.sh")],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
    assert run.returncode == 1
    assert f"swiftfleet: port {port} is taken on this node (ms-swift would move to {port + 1}," in run.stderr


@pytest.mark.swift
def test_deploy_serves_with_the_key_from_the_environment_only(
    tiny: Path, swift_python: Path, tmp_path: Path
) -> None:
    port = free_port()
    job_dir = _rendered(tiny, swift_python, tmp_path, port)
    log = job_dir / "rank0.log"
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "SWIFT_API_KEY": KEY,
    }  # what systemd's EnvironmentFile=api-key.env provides
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["bash", str(job_dir / "run.sh")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while "Uvicorn running" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        assert _chat(port, None) == 400
        assert _chat(port, "wrong") == 400
        assert _chat(port, KEY) == 200
        cmdlines = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
        assert KEY not in cmdlines
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    text = log.read_text()
    assert "api_key='***'" in text and KEY not in text
