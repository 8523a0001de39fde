"""Bad hosts files (and a local subnet too small) get one clear line and exit 2 before any connection."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from swiftfleet import hosts_file
from swiftfleet.settings import HostsCluster, LocalCluster, load_cluster
from tests.conftest import REPO, run_cli
from tests.test_cluster_file_errors import Tripwire


@pytest.fixture
def tripwire(isolated_state: Path) -> Iterator[Tripwire]:
    t = Tripwire(isolated_state)
    yield t
    t.close()


def machine(ip: str, **more: object) -> dict[str, object]:
    # Loopback addresses only: were validation to let one through, nothing outside this machine is probed.
    return {"address": ip, "user": "root", "key": "id_ed25519", **more}


Content = Callable[[Path], object]
CASES: list[tuple[str, Content, str]] = [
    ("empty-list", lambda d: {"hosts": []}, "hosts: List should have at least 1 item"),
    ("empty-file", lambda d: None, "expected a mapping with a `hosts:` list"),
    (
        "no-hosts-key",
        lambda d: {"machines": [machine("127.0.0.1")]},
        "machines: unknown key (known here: hosts)",
    ),
    (
        "duplicate-ip",
        lambda d: {"hosts": [machine("127.0.0.1"), machine("127.0.0.2", private_ip="127.0.0.1")]},
        "hosts: duplicate private_ip 127.0.0.1",
    ),
    (
        "duplicate-rank",
        lambda d: {"hosts": [machine("127.0.0.1", rank=1), machine("127.0.0.2", rank=1)]},
        "hosts: duplicate rank 1",
    ),
    (
        "rank-gap",
        lambda d: {"hosts": [machine("127.0.0.1", rank=0), machine("127.0.0.2", rank=2)]},
        "hosts: ranks must be 0..1, each once",
    ),
    (
        "rank-partial",
        lambda d: {"hosts": [machine("127.0.0.1", rank=0), machine("127.0.0.2")]},
        "hosts: give a rank to every machine or to none",
    ),
    (
        "missing-key",
        lambda d: {"hosts": [machine("127.0.0.1", key="absent_key")]},
        "hosts.0.key: key file {d}/absent_key does not exist",
    ),
    (
        "bad-ip",
        lambda d: {"hosts": [machine("127.0.0.300")]},
        "hosts.0.address: '127.0.0.300' is not a valid IPv4",
    ),
    (
        "bad-private-ip",
        lambda d: {"hosts": [machine("127.0.0.1", private_ip="10.0.0")]},
        "hosts.0.private_ip: Input is not a valid IPv4 address",
    ),
    (
        "name-without-private-ip",
        lambda d: {"hosts": [machine("gpu1.internal")]},
        "hosts.0: private_ip is required: address 'gpu1.internal' is a host name",
    ),
    (
        "bad-port",
        lambda d: {"hosts": [machine("127.0.0.1", port=0)]},
        "hosts.0.port: Input should be greater",
    ),
    (
        "misspelt",
        lambda d: {"hosts": [machine("127.0.0.1", adress="x")]},
        "hosts.0.adress: unknown key (did you mean 'address'?)",
    ),
]


@pytest.mark.parametrize(("case", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_hosts_file_is_one_clear_line(
    case: str, content: Content, expected: str, tmp_path: Path, tripwire: Tripwire
) -> None:
    (tmp_path / "id_ed25519").write_text("not used: validation stops first\n")
    hosts = tmp_path / f"{case}.yml"
    hosts.write_text(yaml.safe_dump(content(tmp_path)))
    config = tmp_path / "cluster.yml"
    config.write_text(yaml.safe_dump({"provider": "hosts", "name": "sftbad", "hosts_file": hosts.name}))
    res = run_cli("cluster", "up", "--config", str(config), env=tripwire.env())
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"swiftfleet: hosts file {hosts}: "), lines[0]
    assert expected.format(d=tmp_path) in lines[0]
    assert not tripwire.calls.exists(), tripwire.calls.read_text()  # no ssh-keyscan, no ssh
    assert tripwire.connections == 0
    assert not (tmp_path / "inventory").exists()


def test_unreadable_and_broken_hosts_files(tmp_path: Path, tripwire: Tripwire) -> None:
    config = tmp_path / "cluster.yml"
    config.write_text(yaml.safe_dump({"provider": "hosts", "name": "sftbad", "hosts_file": "hosts.yml"}))
    res = run_cli("cluster", "up", "--config", str(config), env=tripwire.env())
    assert res.returncode == 2
    assert res.stderr.strip() == (
        f"swiftfleet: hosts file {tmp_path / 'hosts.yml'}: cannot read it (No such file or directory)"
    )
    (tmp_path / "hosts.yml").write_text("hosts: [\n")
    res = run_cli("cluster", "up", "--config", str(config), env=tripwire.env())
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "not valid YAML" in res.stderr
    assert not tripwire.calls.exists()
    assert tripwire.connections == 0


def test_shipped_examples_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_cluster(REPO / "clusters" / "local.yml") == LocalCluster()
    own = load_cluster(REPO / "clusters" / "own-hosts.example.yml")
    assert isinstance(own, HostsCluster)
    assert own.hosts_file == REPO / "clusters" / "hosts.example.yml"
    # The example names ~/.ssh/id_ed25519: give it a home that has one.
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519").write_text("key\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    ranked = hosts_file.load(own.hosts_file).ranked()
    assert [(rank, m.address, str(m.ip), m.gpus) for rank, m in ranked] == [
        (0, "203.0.113.10", "10.0.0.10", 8),
        (1, "203.0.113.11", "10.0.0.11", 8),
    ]


def test_local_subnet_too_small_is_refused_before_docker(tmp_path: Path, tripwire: Tripwire) -> None:
    config = tmp_path / "cluster.yml"
    config.write_text(yaml.safe_dump({"name": "sftsmall", "node_count": 8, "subnet": "172.30.9.0/28"}))
    res = run_cli("cluster", "up", "--config", str(config), env=tripwire.env())
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "swiftfleet: subnet 172.30.9.0/28 has no room for 8 nodes at .10 upwards: use a larger one"
    )
    assert tripwire.connections == 0  # DOCKER_HOST points at the tripwire
    assert not tripwire.calls.exists()
