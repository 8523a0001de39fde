"""A spot interruption notice on the session's 2-node cluster: an IMDSv2 stand-in on the bridge's gateway address,
the spot_watch role run with spot_watch_endpoint pointing every node's watcher at it, and a LoRA run whose
save_steps never comes. Mid-run the stand-in posts a notice to rank 1's node only: rank 1's watcher flags
it, the callback every HF-Trainer job carries (node_plugins/save_on_notice.py) has both ranks agree, and rank 0
saves checkpoint-N at that step; training goes on to its last step (the notice warns two minutes ahead: the save
is what matters, and a run that ended itself would look finished). The role without the endpoint then removes
the watcher, so later tests see the normal cluster. The role alone, not all of setup.yml (minutes on this
machine): the session's setup.yml runs apply it already (a local node, not spot: nothing installed)."""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from swiftfleet.inventory import inventory_path, read_inventory
from tests.conftest import free_port
from tests.e2e.conftest import GATEWAY_IP, TRAIN_ARGS, Rehearsal
from tests.roles.conftest import Run, ansible_playbook

pytestmark = [pytest.mark.docker, pytest.mark.swift]

TOKEN = "e2e-imds-token"
NOTICE = {"action": "terminate", "time": "2026-12-03T13:02:00Z"}
MAX_STEPS, SAVE_STEPS = 20, 1000


class FakeImds(ThreadingHTTPServer):
    """IMDSv2's token and spot/instance-action: 404, or the notice posted for the asking node's address."""

    def __init__(self, port: int) -> None:
        super().__init__((GATEWAY_IP, port), _Handler)
        self.notices: dict[str, str] = {}
        self.asked: set[str] = set()  # the nodes that asked for the notice with a valid token


class _Handler(BaseHTTPRequestHandler):
    server: FakeImds

    def log_message(self, *args: object) -> None:  # the test's output stays the playbooks'
        pass

    def answer(self, code: int, body: str = "") -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def do_PUT(self) -> None:
        ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        self.answer(200, TOKEN) if ok else self.answer(400)

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            return self.answer(401)
        if self.path != "/latest/meta-data/spot/instance-action":
            return self.answer(404)
        self.server.asked.add(self.client_address[0])
        notice = self.server.notices.get(self.client_address[0])
        self.answer(404) if notice is None else self.answer(200, notice)


def spot_watch(rehearsal: Rehearsal, **extra_vars: str) -> Run:
    """The spot_watch role on every node of the cluster, as setup.yml applies it."""
    play = rehearsal.root / "spot_watch.yml"
    play.write_text(yaml.safe_dump([{"name": "Spot watch", "hosts": "all", "roles": ["spot_watch"]}]))
    return ansible_playbook(
        "-i", str(inventory_path(rehearsal.name)), str(play), "-e", json.dumps(extra_vars), env=rehearsal.env
    )  # fmt: skip


@pytest.fixture
def imds(installed: Rehearsal) -> Iterator[FakeImds]:
    """The stand-in, and every node's watcher pointed at it; afterwards the role as setup.yml runs it on a local
    cluster (not spot, no endpoint), which removes the watcher."""
    server = FakeImds(free_port(GATEWAY_IP))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://{GATEWAY_IP}:{server.server_address[1]}"
        # A poll a second, not 5 s: the notice lands a few steps into a run of seconds, not minutes.
        on = spot_watch(installed, spot_watch_endpoint=endpoint, spot_watch_interval_seconds="1")
        print(f"spot_watch role on: {on.seconds:.0f} s")
        assert on.rc == 0, on.output[-3000:]
        yield server
    finally:
        off = spot_watch(installed)
        print(f"spot_watch role off again: {off.seconds:.0f} s")
        server.shutdown()
        server.server_close()
    assert off.rc == 0, off.output[-3000:]
    for rank in (0, 1):
        assert installed.node(rank, "systemctl", "is-active", "swiftfleet-spot-watch").strip() != "active"
        assert installed.node(rank, "ls", "/etc/systemd/system/swiftfleet-spot-watch.service") == ""


def test_a_notice_on_one_node_makes_every_rank_save_and_training_goes_on(
    installed: Rehearsal, imds: FakeImds
) -> None:
    node1 = str(read_inventory(installed.name).nodes[1].private_ip)
    job = installed.job(
        name="tiny-spot", kind="swift sft", model=str(installed.tiny / "model"),
        datasets=[str(installed.tiny / "chat.jsonl")], nproc_per_node=1,
        args={**TRAIN_ARGS, "max_steps": MAX_STEPS, "save_steps": SAVE_STEPS, "logging_steps": 1},
        env={"CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    log = installed.root / "spot.log"
    started = time.monotonic()
    proc = installed.start("train.yml", job, log)
    try:
        # Step 1 done on both ranks, read from rank 0's log on its node (train.yml prints it a poll later).
        rank0_log = "/root/swiftfleet/jobs/tiny-spot/rank0.log"
        deadline = time.monotonic() + 600
        while f"'global_step/max_steps': '1/{MAX_STEPS}'" not in installed.node(0, "cat", rank0_log):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert node1 in imds.asked  # rank 1's watcher has been polling, and found no notice so far
        imds.notices[node1] = json.dumps(NOTICE)
        rc = proc.wait(timeout=600)
    finally:
        proc.kill()
    print(f"train.yml ({MAX_STEPS} steps, a notice after step 1): {time.monotonic() - started:.0f} s")
    text = log.read_text()
    assert rc == 0, text[-3000:]
    assert f"step {MAX_STEPS}/{MAX_STEPS}  loss" in text  # training went on to its end

    out = installed.outputs / "tiny-spot"
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("output/*/checkpoint-*"))
    assert len(saved) == 2 and saved[1] == MAX_STEPS, saved  # the notice's save, then the end's
    step = saved[0]
    assert 1 < step < MAX_STEPS and step % SAVE_STEPS != 0, saved
    rank0, rank1 = ((out / f"rank{r}.log").read_text() for r in (0, 1))
    assert f"spot interruption notice on this node: {json.dumps(NOTICE)}; saving checkpoint-{step}" in rank1
    assert f"spot interruption notice on another node; saving checkpoint-{step}" in rank0
    journal = installed.node(1, "journalctl", "-t", "swiftfleet-spot-watch", "-o", "cat", "--no-pager")
    assert f"spot interruption notice {json.dumps(NOTICE)}: wrote /run/swiftfleet/save-now" in journal, (
        journal
    )
    assert installed.node(0, "ls", "/run/swiftfleet") == ""  # rank 0's node never had a notice
