"""The setup fingerprint leaves out the cluster's identity (so a node from a baked image of another cluster's node is
current in its new cluster) and only that: every variable a role reads stays an input."""

import yaml

from swiftfleet import setup_fingerprint
from tests.conftest import REPO

SETUP = yaml.safe_load((REPO / "playbooks" / "setup.yml").read_text())
ROLES = next(play for play in SETUP if "roles" in play)["vars"]["setup_roles"]
HOST = {
    "swiftfleet_cluster": "old",
    "swiftfleet_provider": "local",
    "swiftfleet_deploy_port": None,
    "swiftfleet_idle_stop_minutes": 0,
    "swiftfleet_spot": False,
    "ansible_user": "root",
    "node_rank": 0,
    "private_ip": "172.31.242.10",
}


def test_another_clusters_name_and_address_keep_the_fingerprint() -> None:
    same = setup_fingerprint.fingerprint(HOST, ROLES)
    renamed = {**HOST, "swiftfleet_cluster": "new", "swiftfleet_deploy_port": 8001, "private_ip": "10.0.0.10"}
    assert setup_fingerprint.fingerprint(renamed, ROLES) == same


def test_what_a_role_reads_changes_the_fingerprint() -> None:
    same = setup_fingerprint.fingerprint(HOST, ROLES)
    for changed in (
        {"swiftfleet_idle_stop_minutes": 60},
        {"swiftfleet_provider": "aws"},
        {"swiftfleet_spot": True},
        {"ansible_user": "ubuntu"},
        {"ms_swift_extras": ["eval"]},
    ):
        assert setup_fingerprint.fingerprint({**HOST, **changed}, ROLES) != same, changed


def test_no_role_reads_an_identity_variable() -> None:
    """The exclusion is honest only while no role's files name these variables (a role's defaults reading
    swiftfleet_cluster would make its result depend on the cluster's name)."""
    readers = [
        f"{path.relative_to(REPO)}: {name}"
        for role in ROLES
        for path in setup_fingerprint.role_files(role)
        for name in sorted(setup_fingerprint.IDENTITY_VARS)
        if name in path.read_text(errors="replace")
    ]
    assert readers == []
    assert len(ROLES) >= 10  # the whole list was read from setup.yml, not an empty one
