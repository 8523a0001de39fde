"""A job whose model, dataset and output are s3:// URIs, on the session's 2-node cluster (conftest.py): moto's S3
listens on the controller's address on the cluster's own bridge, the nodes' AWS CLI (installed by setup.yml's
ms_swift role) reaches it through the job's env (AWS_ENDPOINT_URL and fake keys), every node downloads the model
and the dataset, both ranks train one LoRA, and each checkpoint is streamed into the bucket while the job runs, with
its completeness marker (playbooks/tasks/stream.yml). A dataset in a missing bucket fails at the download, in one
line, before any unit exists."""

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from swiftfleet.jobs.checkpoints import MARKER
from tests.conftest import free_port
from tests.e2e.conftest import GATEWAY_IP, TRAIN_ARGS, Rehearsal

pytestmark = [pytest.mark.docker, pytest.mark.swift]

BUCKET = "swiftfleet-e2e"
# Fake keys (moto takes any); the secret is distinctive so that the test can tell it never reaches the output.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "e2e-fake-key",
    "AWS_SECRET_ACCESS_KEY": "e2e-fake-secret-7d2c",
    "AWS_DEFAULT_REGION": "us-east-1",
}
MODEL_PREFIX = "models/tiny"
DATASET_KEY = "data/chat.jsonl"


@dataclass
class Store:
    endpoint: str
    client: Any  # boto3's S3 client (its type lives in stubs the project does not install)

    def job_env(self) -> dict[str, str]:
        """What a job for an S3-compatible store carries in its env."""
        return {"CUDA_VISIBLE_DEVICES": "", "AWS_ENDPOINT_URL": self.endpoint, **CREDENTIALS}

    def keys(self, prefix: str) -> dict[str, int]:
        listing = self.client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return {o["Key"]: o["Size"] for o in listing.get("Contents", [])}


@pytest.fixture(scope="module")
def s3(rehearsal: Rehearsal) -> Iterator[Store]:
    """moto's S3 on the bridge's gateway address only (the nodes reach it; nothing else is opened), holding the
    tiny model under a prefix and the tiny dataset."""
    port = free_port(GATEWAY_IP)
    server = ThreadedMotoServer(ip_address=GATEWAY_IP, port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://{GATEWAY_IP}:{port}"
        client = boto3.client(
            "s3", endpoint_url=endpoint, region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )  # fmt: skip
        client.create_bucket(Bucket=BUCKET)
        for path in sorted((rehearsal.tiny / "model").rglob("*")):
            if path.is_file():
                key = f"{MODEL_PREFIX}/{path.relative_to(rehearsal.tiny / 'model')}"
                client.upload_file(str(path), BUCKET, key)
        client.upload_file(str(rehearsal.tiny / "chat.jsonl"), BUCKET, DATASET_KEY)
        yield Store(endpoint, client)
    finally:
        server.stop()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _node_sha256(rehearsal: Rehearsal, rank: int, path: str) -> str:
    return rehearsal.node(rank, "sha256sum", path).split(" ", 1)[0]


def test_lora_trains_from_s3_and_puts_its_checkpoint_in_s3(installed: Rehearsal, s3: Store) -> None:
    name = "tiny-s3"
    job = installed.job(
        name=name, kind="swift sft", model=f"s3://{BUCKET}/{MODEL_PREFIX}",
        datasets=[f"s3://{BUCKET}/{DATASET_KEY}"], nproc_per_node=1, output=f"s3://{BUCKET}/runs/{name}",
        args={**TRAIN_ARGS, "max_steps": 4, "save_steps": 2}, env=s3.job_env(),
    )  # fmt: skip
    run = installed.play("train.yml", job)
    print(f"train.yml (s3:// model, dataset and output; 2 nodes, 4 steps): {run.seconds:.0f} s")
    assert run.rc == 0, run.output[-5000:]
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in run.output

    job_dir = f"/root/swiftfleet/jobs/{name}"
    model, dataset = installed.tiny / "model", installed.tiny / "chat.jsonl"
    for rank in (0, 1):  # every node downloaded exactly what was uploaded
        assert _node_sha256(installed, rank, f"{job_dir}/data/0-chat.jsonl") == _sha256(dataset)
        for path in (p for p in model.rglob("*") if p.is_file()):
            there = f"{job_dir}/model/{path.relative_to(model)}"
            assert _node_sha256(installed, rank, there) == _sha256(path), there

    out = installed.outputs / name
    for rank in (0, 1):  # one process group of two: each rank's own log, fetched and tagged
        text = (out / f"rank{rank}.log").read_text()
        assert f"rank: {rank}, local_rank: 0, world_size: 2, local_world_size: 1" in text
    assert not (out / "output").exists()  # the output went to S3, not to the controller

    objects = s3.keys(f"runs/{name}/")
    for step in (2, 4):  # each checkpoint under the prefix, complete, with its marker, named as it went
        (marker,) = [k for k in objects if k.endswith(f"/checkpoint-{step}/{MARKER}")]
        body = json.loads(s3.client.get_object(Bucket=BUCKET, Key=marker)["Body"].read())
        assert body["step"] == step and body["files"] > 0, body
        assert objects[marker.removesuffix(MARKER) + "adapter_model.safetensors"] > 0
        assert f"checkpoint-{step} safe at s3://{BUCKET}/runs/{name}/" in run.output
    assert f"Output: s3://{BUCKET}/runs/{name}" in run.output


def test_a_missing_bucket_fails_the_download_in_one_line(installed: Rehearsal, s3: Store) -> None:
    name = "s3-missing"
    uri = "s3://missing-bucket/x.jsonl"
    job = installed.job(
        name=name, kind="swift sft", model=str(installed.tiny / "model"), datasets=[uri], nproc_per_node=1,
        args={**TRAIN_ARGS, "max_steps": 2}, env=s3.job_env(),
    )  # fmt: skip
    run = installed.play("train.yml", job)
    assert run.rc != 0
    errors = [
        line
        for line in run.output.splitlines()
        if line.startswith("[ERROR]: ") and f"cannot download {uri}: " in line
    ]
    assert errors, run.output[-5000:]
    print(f"train.yml (missing bucket): {run.seconds:.0f} s; {errors[0]}")
    # Rank, host, URI and the CLI's own one-line reason (S3 answers a HEAD in a missing bucket with a bare 404).
    reason = re.compile(
        rf"rank [01] \({installed.name}-node[01]\): cannot download {re.escape(uri)}: "
        r"fatal error: An error occurred \(404\) when calling the HeadObject operation: .*does not exist$"
    )
    assert all(reason.search(line) for line in errors), errors
    assert "Traceback" not in run.output
    for rank in (0, 1):  # the units were never even written, let alone started
        unit = f"swiftfleet-{name}-rank{rank}.service"
        state = installed.node(rank, "systemctl", "show", "-p", "LoadState", "-p", "ActiveState", unit)
        assert set(state.split()) == {"LoadState=not-found", "ActiveState=inactive"}, state
