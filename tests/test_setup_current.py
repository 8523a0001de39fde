"""setup.yml's question to each node before any role: is the last complete setup current (same fingerprint, no
drift)? playbooks/files/setup_current.py run as the node runs it (python3 -c with the script's text), against
records in a temporary directory."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swiftfleet import setup_fingerprint
from tests.conftest import REPO

SCRIPT = REPO / "playbooks" / "files" / "setup_current.py"
ROLES = ["uv", "ms_swift", "stack_check"]


def _ask(tmp: Path, fingerprint: str = "fp1", path: str | None = None) -> dict[str, object]:
    """The script's answer; PATH holds no nvidia-smi unless a test puts one there (the runner may have one)."""
    empty = tmp / "no-tools"
    empty.mkdir(exist_ok=True)
    env = {**os.environ, "PATH": path if path is not None else str(empty)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.read_text(), "--fingerprint", fingerprint, "--setup-file", str(tmp / "setup.json"),
         "--record-file", str(tmp / "node.json")],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return json.loads(done.stdout)


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """A node whose last setup finished with fingerprint fp1: an environment (this Python) and its record."""
    venv = tmp_path / "swift-env"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"  # this environment's Python (a symlink would resolve past its venv)
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    env_file = tmp_path / "cuda.env"
    env_file.write_text("")
    have = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m; print(m.version('pydantic'), m.version('pytest'))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    record = {
        "venv": str(venv),
        "env_files": [str(env_file)],
        "distributions": {"pydantic": have[0], "pytest": have[1]},
        "driver": "no GPU",
        "data_dir": str(tmp_path),
        "hub_cache": None,
        "scratch": None,
        "shared_dir": None,
    }
    (tmp_path / "node.json").write_text(json.dumps(record))
    (tmp_path / "setup.json").write_text(json.dumps({"fingerprint": "fp1"}))
    return tmp_path


def test_an_unchanged_node_is_current(node: Path) -> None:
    record = json.loads((node / "node.json").read_text())
    assert _ask(node) == {"current": True, "same_inputs": True, "why": "", "record": record}


def test_a_record_that_is_not_a_json_object_is_not_current(node: Path) -> None:
    (node / "node.json").write_text("[]")
    assert _ask(node) == {
        "current": False, "same_inputs": True, "why": f"the setup record {node / 'node.json'} is not a JSON object",
        "record": None,
    }  # fmt: skip


def test_other_inputs_or_no_finished_setup_are_not_current(node: Path) -> None:
    """Other inputs: not the same, so setup.yml forgets the old fingerprint before its roles run."""
    answer = _ask(node, fingerprint="fp2")
    assert answer["current"] is False and answer["same_inputs"] is False
    assert "roles or this host's setup variables changed" in str(answer["why"])
    (node / "setup.json").unlink()
    answer = _ask(node)
    assert (answer["current"], answer["same_inputs"]) == (False, False)
    assert "setup.json (never set up here" in str(answer["why"])


def test_storage_that_setup_recorded_must_still_be_there(node: Path) -> None:
    record = json.loads((node / "node.json").read_text())
    for changes, why in (
        ({"hub_cache": str(node / "hub")}, f"the hub cache {node / 'hub'} is gone"),
        ({"scratch": str(node)}, f"{node} is not mounted"),  # a plain directory, not the NVMe's mount
        ({"shared_dir": str(node / "swiftfleet")}, f"{node} is not mounted"),
        ({"data_dir": str(node / "gone")}, f"the data directory {node / 'gone'} is gone"),
    ):
        (node / "node.json").write_text(json.dumps({**record, **changes}))
        answer = _ask(node)
        assert answer == {"current": False, "same_inputs": True, "why": why, "record": None}


def test_drift_of_what_setup_left_is_named(node: Path) -> None:
    record = json.loads((node / "node.json").read_text())
    record["distributions"]["pytest"] = "0.0.1"
    (node / "node.json").write_text(json.dumps(record))
    why = str(_ask(node)["why"])
    assert why.startswith("pytest is ") and why.endswith("setup left 0.0.1")

    record["distributions"].pop("pytest")
    record["distributions"]["not-a-real-dist"] = "1.0"
    (node / "node.json").write_text(json.dumps(record))
    assert str(_ask(node)["why"]).startswith("not-a-real-dist is not installed in ")

    (node / "cuda.env").unlink()
    assert _ask(node)["why"] == f"{node / 'cuda.env'} is gone"
    (node / "swift-env" / "bin" / "python").unlink()
    assert _ask(node)["why"] == f"{node / 'swift-env' / 'bin' / 'python'} is gone"


def test_a_driver_that_appeared_or_changed_is_drift(node: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fakebin"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 595.58.03\necho 595.58.03\n")
    smi.chmod(0o755)
    assert (
        _ask(node, path=f"{fake}:/usr/bin:/bin")["why"] == "the NVIDIA driver is 595.58.03, setup saw no GPU"
    )


def test_the_fingerprint_follows_the_roles_variables_only(tmp_path: Path) -> None:
    base = {"swiftfleet_cluster": "c", "ms_swift_extras": ["eval"], "ansible_host": "10.0.0.1"}
    fp = setup_fingerprint.fingerprint(base, ROLES)
    assert fp == setup_fingerprint.fingerprint({**base, "ansible_host": "10.0.0.2", "node_rank": 3}, ROLES)
    assert fp != setup_fingerprint.fingerprint({**base, "ms_swift_extras": ["eval", "bnb"]}, ROLES)
    assert fp != setup_fingerprint.fingerprint({**base, "uv_version": "0.13.9"}, ROLES)
    assert fp != setup_fingerprint.fingerprint(
        {**base, "ansible_user": "ubuntu"}, ROLES
    )  # the job user's default
    assert fp != setup_fingerprint.fingerprint(base, [*ROLES, "apex"])  # another role's files
    ca = tmp_path / "proxy.crt"
    ca.write_text("one")
    with_ca = setup_fingerprint.fingerprint(base, ROLES, [str(ca)])
    ca.write_text("two")  # a renewed certificate the uv role would copy again
    assert with_ca not in (fp, setup_fingerprint.fingerprint(base, ROLES, [str(ca)]))
    with pytest.raises(ValueError, match=r"cannot read .*nope\.crt"):
        setup_fingerprint.fingerprint(base, ROLES, [str(tmp_path / "nope.crt")])


def test_the_fingerprint_covers_each_roles_files_but_not_its_tests() -> None:
    files = {str(p.relative_to(REPO)) for p in setup_fingerprint.role_files("ms_swift")}
    assert {
        "roles/ms_swift/tasks/main.yml",
        "roles/ms_swift/defaults/main.yml",
        "roles/ms_swift/vars/main.yml",
    } <= files
    assert not any("/molecule/" in f for f in files)
    with pytest.raises(ValueError, match="no role 'nope'"):
        setup_fingerprint.fingerprint({}, ["nope"])
