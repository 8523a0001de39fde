"""The TTL and idle stop rules of swiftfleet.ttl (what playbooks/tasks/ttl_check.yml and playbooks/ttl.yml ask),
the idle_stop_minutes setting per provider and its way into the inventory."""

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

from swiftfleet import ttl
from swiftfleet.errors import SwiftfleetError
from swiftfleet.inventory import Cluster, Node, inventory_path, read_inventory, write_inventory
from swiftfleet.settings import load_cluster
from tests.conftest import REPO
from tests.test_cluster_file_errors import aws, keys  # noqa: F401 (the fixture)

NOW = 1_800_000_000


def node(host: str, left: int | None, idle: int | None = None, active: bool = False) -> ttl.NodeTime:
    return ttl.NodeTime(host, NOW, None if left is None else NOW + left, idle, active)


def plan(
    time_limit: str | None = None, playbook: str = "train", output: str | None = "fetch"
) -> dict[str, Any]:
    return {
        "name": "big",
        "time_limit": time_limit,
        "playbook": playbook,
        "output": {"mode": output},
        "nodes": [{"host": "n0"}, {"host": "n1"}],
    }


@pytest.mark.parametrize(
    ("text", "seconds"), [("90m", 5400), ("1h30m", 5400), ("2d", 172800), ("45min", 2700)]
)
def test_duration_seconds(text: str, seconds: int) -> None:
    assert ttl.duration_seconds(text) == seconds


@pytest.mark.parametrize(("seconds", "text"), [(59, "0m"), (3599, "59m"), (7500, "2h05m"), (90000, "1d01h")])
def test_span(seconds: int, text: str) -> None:
    assert ttl.span(seconds) == text


def test_parse_read() -> None:
    read = ttl.parse_read("n0", f"now={NOW}\ndeadline={NOW + 60}\nidle=60\njob=active\n")
    assert read == ttl.NodeTime("n0", NOW, NOW + 60, 60, True)
    assert ttl.parse_read("n0", f"now={NOW}\n") == ttl.NodeTime("n0", NOW, None, None, False)


def test_parse_read_of_raw_output() -> None:
    """ttl_read.yml runs raw, which allocates a tty: every line ends in \\r\\n."""
    read = ttl.parse_read("n0", f"now={NOW}\r\ndeadline={NOW + 60}\r\nidle=60\r\njob=activating\r\n")
    assert read == ttl.NodeTime("n0", NOW, NOW + 60, 60, True)


@pytest.mark.parametrize(
    ("state", "running"),
    [("activating", True), ("deactivating", True), ("inactive", False), ("failed", False)],
)
def test_parse_read_job_state(state: str, running: bool) -> None:
    assert ttl.parse_read("n0", f"now={NOW}\njob={state}\n").job_active is running


def test_running_states_are_the_unit_watch_modules() -> None:
    """The node-side module cannot import swiftfleet: its copy of the rule must stay the same."""
    module = ast.parse((REPO / "playbooks" / "library" / "swiftfleet_unit_watch.py").read_text())
    running = [
        n.value for n in module.body if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "RUNNING"
    ]
    assert [ast.literal_eval(v) for v in running] == [ttl.RUNNING_STATES]


def test_parse_read_refuses_junk() -> None:
    with pytest.raises(SwiftfleetError, match=r"^n1: /etc/swiftfleet/ttl-deadline holds 'soon', not a whole"):
        ttl.parse_read("n1", f"now={NOW}\ndeadline=soon\n")
    with pytest.raises(SwiftfleetError, match="could not read the node's clock"):
        ttl.parse_read("n1", "")


def test_time_limit_longer_than_ttl_is_refused_naming_the_shortest_node() -> None:
    result = ttl.job_check(plan("12h"), [node("n0", 20 * 3600), node("n1", 7500)])
    assert result["error"] == (
        "job big: time_limit 12h is longer than the TTL left on n1 (2h05m, until "
        f"{ttl.utc(NOW + 7500)}): the node would power off mid-run; shorten time_limit or extend the TTL: "
        "`make cluster-ttl HOURS=13` (swiftfleet cluster ttl --hours 13)"
    )
    assert "\n" not in result["error"]


def test_time_limit_within_ttl_passes_quietly() -> None:
    assert ttl.job_check(plan("2h"), [node("n0", 7500), node("n1", 9000)]) == {
        "error": None,
        "warnings": [],
        "running": [],
    }


def test_no_ttl_no_check() -> None:
    assert ttl.job_check(plan("300d"), [node("n0", None), node("n1", None)]) == {
        "error": None,
        "warnings": [],
        "running": [],
    }


def test_passed_deadline_is_refused_even_without_time_limit() -> None:
    result = ttl.job_check(plan(None), [node("n0", -30), node("n1", 9000)])
    assert result["error"].startswith("job big: the TTL of n0 ran out at ")
    assert result["error"].endswith("`make cluster-ttl HOURS=2` (swiftfleet cluster ttl --hours 2)")


def test_no_time_limit_warns_under_an_hour() -> None:
    assert ttl.job_check(plan(None), [node("n0", 3600), node("n1", 7200)])["warnings"] == []
    result = ttl.job_check(plan(None), [node("n0", 2700), node("n1", 7200)])
    assert result["error"] is None
    assert result["warnings"] == [
        f"job big: only 45m of TTL left on n0 (until {ttl.utc(NOW + 2700)}) and no time_limit: the node powers "
        "off then, whatever runs; extend it with `make cluster-ttl HOURS=N`"
    ]


def test_a_run_being_attached_to_is_warned_not_refused() -> None:
    result = ttl.job_check(plan("12h"), [node("n0", 3600, active=True), node("n1", 3600, active=True)])
    assert result["error"] is None
    assert result["warnings"][0].startswith("job big: time_limit 12h is longer than the TTL left on n0")
    assert result["warnings"][0].endswith("(the run goes on)")
    assert result["running"] == ["n0", "n1"]
    # Running on one rank only is no attach (units.yml refuses that run anyway): still refused.
    partial = ttl.job_check(plan("12h"), [node("n0", 3600, active=True), node("n1", 3600)])
    assert partial["error"] and partial["running"] == ["n0"]


def test_idle_stop_warns_about_a_result_left_on_the_node() -> None:
    keep = ttl.job_check(plan(output="keep"), [node("n0", None, idle=60), node("n1", None, idle=60)])
    assert keep["warnings"] == [
        "job big: output: keep leaves the result on n0, which idle stop powers off 60 min after the job ends "
        "(aws: terminated with its disk); copy it off in time, or use output: fetch or s3"
    ]
    nowait = ttl.job_check(plan(), [node("n0", None, idle=30), node("n1", None)], wait=False)
    assert nowait["warnings"][0].startswith("job big: with wait=false the result comes back only when")
    assert ttl.job_check(plan(), [node("n0", None, idle=30)], wait=True)["warnings"] == []
    assert ttl.job_check(plan(output="keep"), [node("n0", None)])["warnings"] == []
    assert ttl.job_check(plan(playbook="deploy", output=None), [node("n0", None, idle=5)])["warnings"] == []


def test_extend_plan() -> None:
    reads = [node("n0", 60), ttl.NodeTime("n1", NOW + 5, NOW - 100, None)]
    assert ttl.extend_plan(reads, 3) == {
        "error": None,
        "deadlines": {"n0": NOW + 10800, "n1": NOW + 5 + 10800},
    }
    refused = ttl.extend_plan([node("n0", 60), node("n1", None), node("n2", None)], 3)
    assert refused["error"] == (
        "n1, n2: no TTL (/etc/swiftfleet/ttl-deadline): aws nodes get one at first boot (ttl_hours); "
        "local and hosts nodes have none to extend"
    )
    assert refused["deadlines"] == {}


def test_filters_as_ansible_calls_them() -> None:
    from filter_plugins.swiftfleet import FilterModule

    filters = FilterModule().filters()
    reads = {"n0": f"now={NOW}\ndeadline={NOW + 600}\nidle=60\n", "n1": f"now={NOW}\n"}
    assert filters["swiftfleet_ttl_check"](plan("1h"), reads, True)["error"].startswith(
        "job big: time_limit 1h"
    )
    # Ansible may hand the play's wait over as text.
    assert filters["swiftfleet_ttl_check"](plan(), {"n0": f"now={NOW}\nidle=5\n"}, "False")["warnings"]
    junk = filters["swiftfleet_ttl_check"](plan(), {"n0": f"now={NOW}\ndeadline=x\n"})
    assert junk["error"].startswith("n0: /etc/swiftfleet/ttl-deadline holds 'x'")
    assert filters["swiftfleet_ttl_extend"](reads, "2")["error"].startswith("n1: no TTL")
    assert "swiftfleet_job_plan" in filters  # the kit's other filters stay


def test_extend_cluster_refuses_hours_out_of_range() -> None:
    cluster = Cluster(name="c", provider="aws", nodes=[])
    with pytest.raises(SwiftfleetError, match=r"^cluster ttl: --hours 169: give 1 to 168"):
        ttl.extend_cluster(cluster, 169)


def test_idle_stop_minutes_per_provider(tmp_path: Path, keys: Path) -> None:  # noqa: F811
    def load(content: dict[str, object]) -> int:
        path = tmp_path / "cluster.yml"
        path.write_text(yaml.safe_dump(content))
        return load_cluster(path).idle_stop_minutes

    (tmp_path / "hosts.yml").write_text("")
    assert load({"provider": "local"}) == 0
    assert load({"provider": "hosts", "name": "mine", "hosts_file": "hosts.yml"}) == 0
    assert load(aws(keys)) == 60
    assert load(aws(keys, idle_stop_minutes=0)) == 0
    assert load({"provider": "local", "idle_stop_minutes": 1}) == 1
    for bad in (-1, True, "60"):
        with pytest.raises(SwiftfleetError, match="idle_stop_minutes"):
            load({"provider": "local", "idle_stop_minutes": bad})


def test_inventory_carries_idle_stop_minutes(isolated_state: Path) -> None:
    key = isolated_state / "key"
    n0 = Node(
        name="c-node0", rank=0, ansible_host="10.0.0.10", private_ip="10.0.0.10", ssh_user="root", ssh_key=key
    )
    write_inventory(Cluster(name="c", provider="aws", nodes=[n0], idle_stop_minutes=60), [])
    group = yaml.safe_load(inventory_path("c").read_text())["all"]["children"]["c"]
    assert group["vars"]["swiftfleet_idle_stop_minutes"] == 60
    assert read_inventory("c").idle_stop_minutes == 60
