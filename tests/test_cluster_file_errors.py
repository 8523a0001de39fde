"""Bad cluster files get one clear line and exit 2, before any cloud, Docker or host call.

A tripwire proves "before any call": AWS_ENDPOINT_URL and DOCKER_HOST point at listeners of the test's own, and
`terraform`, `ssh`, `ssh-keyscan` and `ansible-playbook` on PATH are stand-ins that record being run.
"""

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli

PUB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBeM7Q5m0qKx7J8wF2nZ3kq1U7b4JX0p8m5cT2y6s9dR test@swiftfleet\n"


class Tripwire:
    """Listeners and stand-in programs that count every attempt to reach a cloud, an engine or a host."""

    def __init__(self, root: Path) -> None:
        self.calls = root / "calls.log"
        self.bin = root / "bin"
        self.bin.mkdir()
        for tool in ("terraform", "ssh", "ssh-keyscan", "ansible-playbook", "docker"):
            stub = self.bin / tool
            stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> {self.calls}\nexit 99\n')
            stub.chmod(0o755)
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.unix_path = root / "docker.sock"
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(str(self.unix_path))
        self.unix.listen()
        self.connections = 0
        for srv in (self.tcp, self.unix):
            threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def env(self) -> dict[str, str]:
        import os

        return {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.tcp.getsockname()[1]}",
            "AWS_ACCESS_KEY_ID": "tripwire",
            "AWS_SECRET_ACCESS_KEY": "tripwire",
            "DOCKER_HOST": f"unix://{self.unix_path}",
            "PATH": f"{self.bin}:{os.environ['PATH']}",
        }

    def close(self) -> None:
        self.tcp.close()
        self.unix.close()


@pytest.fixture
def tripwire(isolated_state: Path) -> Iterator[Tripwire]:
    t = Tripwire(isolated_state)
    yield t
    t.close()


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    (tmp_path / "id_ed25519.pub").write_text(PUB)
    (tmp_path / "id_ed25519").write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    (tmp_path / "id_ed25519").chmod(0o600)
    (tmp_path / "not-a-key.pub").write_text("hello\n")
    (tmp_path / "lonely").mkdir()
    (tmp_path / "lonely" / "key.pub").write_text(PUB)
    return tmp_path


def aws(keys: Path, **changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "provider": "aws",
        "name": "trainers",
        "region": "us-east-1",
        "instance_type": "g5.12xlarge",
        "node_count": 2,
        "admin_cidrs": ["203.0.113.0/24"],
        "public_key_file": str(keys / "id_ed25519.pub"),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def _drop(key: str):  # type: ignore[no-untyped-def]
    return lambda keys: {k: v for k, v in aws(keys).items() if k != key}


# (case id, cluster file content as a function of the key dir, words the one line must contain)
CASES = [
    ("admin-cidrs-missing", _drop("admin_cidrs"), ["admin_cidrs", "Field required"]),
    (
        "admin-cidrs-open",
        lambda k: aws(k, admin_cidrs=["0.0.0.0/0"]),
        ["0.0.0.0/0", "allow_ssh_from_anywhere"],
    ),
    ("admin-cidrs-empty", lambda k: aws(k, admin_cidrs=[]), ["admin_cidrs", "at least 1"]),
    ("admin-cidr-invalid", lambda k: aws(k, admin_cidrs=["10.0.0.300/8"]), ["admin_cidrs", "IPv4"]),
    ("node-count-zero", lambda k: aws(k, node_count=0), ["node_count", "greater than or equal to 1"]),
    ("node-count-huge", lambda k: aws(k, node_count=65), ["node_count", "less than or equal to 64"]),
    (
        "instance-type-unknown",
        lambda k: aws(k, instance_type="g5.huge"),
        ["unknown GPU instance type 'g5.huge'"],
    ),
    ("key-file-missing", lambda k: aws(k, public_key_file=str(k / "nope.pub")), ["does not exist"]),
    (
        "key-file-not-a-key",
        lambda k: aws(k, public_key_file=str(k / "not-a-key.pub")),
        ["not an OpenSSH public key"],
    ),
    (
        "private-key-missing",
        lambda k: aws(k, public_key_file=str(k / "lonely" / "key.pub")),
        ["private_key_file"],
    ),
    ("region-bad", lambda k: aws(k, region="moon-1"), ["region", "pattern"]),
    ("ttl-zero", lambda k: aws(k, ttl_hours=0), ["ttl_hours"]),
    ("root-volume-small", lambda k: aws(k, root_volume_gib=10), ["root_volume_gib", "50"]),
    (
        "setting-misspelt",
        lambda k: aws(k, nodes_count=2),
        ["nodes_count: unknown key (did you mean 'node_count'?)"],
    ),
    ("name-bad", lambda k: aws(k, name="My_Cluster"), ["name", "pattern"]),
    (
        "provider-unknown",
        lambda k: aws(k, provider="gcp"),
        ["provider: 'gcp' is not one of 'local', 'aws', 'hosts'"],
    ),
    ("deploy-port-privileged", lambda k: aws(k, deploy_port=80), ["deploy_port"]),
    ("az-bad", lambda k: aws(k, availability_zones=["us-east-1"]), ["availability_zones"]),
    (
        "subnet-with-two-azs",
        lambda k: aws(k, subnet_id="subnet-0abc", availability_zones=["us-east-1a", "us-east-1b"]),
        ["subnet_id pins one AZ"],
    ),
    ("ami-id-bad", lambda k: aws(k, ami_id="ubuntu"), ["ami_id"]),
    ("s3-not-a-uri", lambda k: aws(k, s3_read=["https://b.s3.amazonaws.com/x"]), ["s3_read.0", "s3://"]),
    ("s3-read-not-a-list", lambda k: aws(k, s3_read="s3://models-bucket/x"), ["s3_read", "valid list"]),
    (
        "s3-bucket-bad",
        lambda k: aws(k, s3_write=["s3://My_Bucket/out"]),
        ["s3_write.0", "'My_Bucket' is not a valid S3 bucket name"],
    ),
    ("s3-bucket-ip", lambda k: aws(k, s3_read=["s3://192.168.5.4/x"]), ["not a valid S3 bucket name"]),
    (
        "s3-wildcard",
        lambda k: aws(k, s3_read=["s3://models-bucket/models/*"]),
        ["s3_read.0", "wildcards"],
    ),
    (
        "s3-policy-variable",
        lambda k: aws(k, s3_write=["s3://out-bucket/${aws:username}/"]),
        ["s3_write.0", "policy variables"],
    ),
    ("s3-empty-part", lambda k: aws(k, s3_write=["s3://out-bucket//runs"]), ["s3_write.0", "empty parts"]),
    (
        "s3-and-instance-profile",
        lambda k: aws(k, instance_profile="team-s3", s3_read=["s3://models-bucket/m"]),
        ["instance_profile", "not both"],
    ),
    ("instance-profile-bad", lambda k: aws(k, instance_profile="team/s3"), ["instance_profile", "pattern"]),
    ("shared-fs-unknown", lambda k: aws(k, shared_fs="nfs"), ["shared_fs: Input should be 'none' or 'efs'"]),
    (
        "local-subnet-public",
        lambda k: {"provider": "local", "subnet": "8.8.8.0/24"},
        ["subnet", "private range"],
    ),
    ("local-too-many-nodes", lambda k: {"node_count": 9}, ["node_count", "less than or equal to 8"]),
    ("hosts-without-file", lambda k: {"provider": "hosts", "name": "mine"}, ["hosts_file", "Field required"]),
    ("not-a-mapping", lambda k: ["provider", "aws"], ["expected a mapping"]),
]


@pytest.mark.parametrize(("case", "content", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_cluster_file_is_one_clear_line(case, content, words, keys: Path, tripwire: Tripwire) -> None:  # type: ignore[no-untyped-def]
    cfg = keys / f"{case}.yml"
    cfg.write_text(yaml.safe_dump(content(keys)))
    for command in (["cluster", "up", "--yes"], ["cluster", "down"], ["check"]):
        res = run_cli(*command, "--config", str(cfg), env=tripwire.env())
        assert res.returncode == 2, (command, res.stdout, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, res.stderr
        assert lines[0].startswith(f"swiftfleet: cluster file {cfg}: "), lines[0]
        for word in words:
            assert word in lines[0], (word, lines[0])
    assert tripwire.connections == 0
    assert not tripwire.calls.exists(), tripwire.calls.read_text()


def test_unreadable_and_invalid_cluster_files(tmp_path: Path, tripwire: Tripwire) -> None:
    missing = run_cli("cluster", "up", "--config", str(tmp_path / "absent.yml"), env=tripwire.env())
    assert missing.returncode == 2
    assert (
        missing.stderr.strip()
        == f"swiftfleet: cluster file {tmp_path / 'absent.yml'}: cannot read it (No such file or directory)"
    )
    broken = tmp_path / "broken.yml"
    broken.write_text("provider: [aws\n")
    res = run_cli("cluster", "up", "--config", str(broken), env=tripwire.env())
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "not valid YAML" in res.stderr
    assert tripwire.connections == 0
    assert not tripwire.calls.exists()


# (case id, which file, its bytes, the line after "swiftfleet: <what> PATH: "): what the shared YAML reader
# (validation.read_yaml) refuses before any setting is looked at, for cluster files and job files alike.
RAW_CASES = [
    (
        "cluster-key-twice",
        "cluster file",
        b"provider: local\nnode_count: 2\nname: mine\nnode_count: 3\n",
        "node_count: given twice (lines 2 and 4); YAML would silently keep the last, so keep one",
    ),
    (
        "job-kind-twice",
        "job file",
        b"job:\n  name: x\n  kind: swift sft\n  model: Qwen/Qwen2.5-7B-Instruct\n  kind: swift pt\n",
        "kind: given twice (lines 3 and 5); YAML would silently keep the last, so keep one",
    ),
    (
        "job-arg-twice-in-a-flow-mapping",
        "job file",
        b"job:\n  name: x\n  kind: swift sft\n  args: {lora_rank: 8, lora_rank: 16}\n",
        "lora_rank: given twice (line 4); YAML would silently keep the last, so keep one",
    ),
    (
        "cluster-random-bytes",
        "cluster file",
        bytes(range(256)),
        "not UTF-8 text (line 2); save it as UTF-8",
    ),
    (
        "job-latin-1",
        "job file",
        "job:\n  name: caf\xe9\n".encode("latin-1"),
        "not UTF-8 text (line 2); save it as UTF-8",
    ),
]


@pytest.mark.parametrize(("case", "what", "raw", "expected"), RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_file_yaml_would_misread_is_one_line(
    case: str, what: str, raw: bytes, expected: str, tmp_path: Path, tripwire: Tripwire
) -> None:
    path = tmp_path / f"{case}.yml"
    path.write_bytes(raw)
    command = ["cluster", "up", "--yes", "--config"] if what == "cluster file" else ["render", "--nodes", "1"]
    res = run_cli(*command, str(path), env=tripwire.env())
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert res.stderr.strip().splitlines() == [f"swiftfleet: {what} {path}: {expected}"]
    assert tripwire.connections == 0
    assert not tripwire.calls.exists(), tripwire.calls.read_text()


def test_merge_keys_override_without_a_duplicate(tmp_path: Path) -> None:
    """`<<: *anchor` then a key of the anchor's is YAML's override by design, not a key given twice."""
    from swiftfleet.validation import read_yaml

    path = tmp_path / "merge.yml"
    path.write_text("base: &b {a: 1, b: 2}\nother:\n  <<: *b\n  a: 3\n")
    assert read_yaml(path, "cluster file") == {"base": {"a": 1, "b": 2}, "other": {"a": 3, "b": 2}}


def test_shipped_aws_example_is_accepted(keys: Path) -> None:
    """The positive twin of the cases above: the shipped example, with the reader's own key, loads."""
    from swiftfleet.settings import AwsCluster, load_cluster
    from tests.conftest import REPO

    data = yaml.safe_load((REPO / "clusters" / "aws.example.yml").read_text())
    data["public_key_file"] = str(keys / "id_ed25519.pub")
    cfg = keys / "good.yml"
    cfg.write_text(yaml.safe_dump(data))
    spec = load_cluster(cfg)
    assert isinstance(spec, AwsCluster)
    assert spec.private_key_file == (keys / "id_ed25519").resolve()
    assert [str(c) for c in spec.admin_cidrs] == ["203.0.113.7/32"]
    assert spec.placement_group is None and spec.ttl_hours == 12


def test_aws_example_commented_lines_are_accepted(keys: Path) -> None:
    """The example's commented settings, uncommented: the S3 prefixes, or the instance profile alone; the
    Capacity Block."""
    from swiftfleet.settings import AwsCluster, load_cluster
    from tests.conftest import REPO

    text = (REPO / "clusters" / "aws.example.yml").read_text()
    for settings in (
        ("s3_read", "s3_write"),
        ("instance_profile",),
        ("capacity_reservation_id", "capacity_block"),
    ):
        lines = [line.removeprefix("# ") if line.startswith(tuple(f"# {s}:" for s in settings)) else line
                 for line in text.splitlines()]  # fmt: skip
        data = yaml.safe_load("\n".join(lines))
        assert set(settings) <= set(data)
        data["public_key_file"] = str(keys / "id_ed25519.pub")
        cfg = keys / "s3.yml"
        cfg.write_text(yaml.safe_dump(data))
        spec = load_cluster(cfg)
        assert isinstance(spec, AwsCluster)
        assert {s: getattr(spec, s) for s in settings} == {s: data[s] for s in settings}
