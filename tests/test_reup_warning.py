"""What `cluster up` on a running cluster names before it asks: nodes it replaces, a shared file system it deletes."""

from swiftfleet.aws_cluster import loss_warning, replaced_ranks
from swiftfleet.tf import Change


def _change(address: str, *actions: str) -> Change:
    kind, _, rest = address.partition(".")
    index = int(rest.split("[")[1].rstrip("]")) if "[" in rest else None
    return Change(address, kind, index, actions)


def test_an_in_place_update_loses_nothing() -> None:
    changes = [_change("aws_instance.node[0]", "update"), _change("aws_efs_file_system.shared[0]", "update")]
    assert replaced_ranks(changes) == [] and loss_warning("c", changes) == ""


def test_replaced_nodes_and_a_deleted_file_system_are_both_named() -> None:
    changes = [
        _change("aws_instance.node[1]", "delete", "create"),
        _change("aws_instance.node[0]", "delete", "create"),
        _change("aws_efs_mount_target.shared[0]", "delete"),
        _change("aws_efs_file_system.shared[0]", "delete"),
    ]
    assert replaced_ranks(changes) == [0, 1]
    assert loss_warning("c", changes) == (
        "; this REPLACES c-node0, c-node1 (their disks are lost)"
        "; this DELETES the shared file system and everything on it (then `make setup` unmounts it)"
    )


def test_a_new_file_system_is_no_loss() -> None:
    assert loss_warning("c", [_change("aws_efs_file_system.shared[0]", "create")]) == ""
