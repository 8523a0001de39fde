"""The aws cluster file's `spot` reaches the nodes as the inventory's swiftfleet_spot (roles/spot_watch)."""

from pathlib import Path

import yaml

from swiftfleet.inventory import Cluster, Node, inventory_path, read_inventory, write_inventory


def test_inventory_carries_spot(isolated_state: Path) -> None:
    n0 = Node(
        name="c-node0", rank=0, ansible_host="10.0.0.10", private_ip="10.0.0.10", ssh_user="root",
        ssh_key=isolated_state / "key",
    )  # fmt: skip
    for spot in (True, False):
        write_inventory(Cluster(name="c", provider="aws", nodes=[n0], spot=spot), [])
        group = yaml.safe_load(inventory_path("c").read_text())["all"]["children"]["c"]
        assert group["vars"]["swiftfleet_spot"] is spot
        assert read_inventory("c").spot is spot
