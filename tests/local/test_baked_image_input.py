"""Bad input around baked images gets one clear line and exit 2 before anything is made."""

from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.roles.conftest import node_image  # noqa: F401  (fixture)


def _config(path: Path, **settings: object) -> Path:
    path.write_text(
        yaml.safe_dump({"provider": "local", "name": "sf-nobake", "subnet": "172.31.246.0/24", **settings})
    )
    return path


def test_bake_of_a_cluster_that_is_not_up(isolated_state: Path) -> None:
    done = run_cli("image", "bake", "--config", str(_config(isolated_state / "c.yml")), "--node", "0")
    assert done.returncode == 2
    assert done.stderr.startswith("swiftfleet: no inventory for cluster 'sf-nobake' at ")
    assert done.stderr.endswith(": run `make cluster-up` first\n") and len(done.stderr.splitlines()) == 1


@pytest.mark.docker
def test_a_missing_baked_image_and_a_base_image_rm_are_refused(isolated_state: Path, node_image: str) -> None:  # noqa: F811
    config = _config(isolated_state / "c.yml", image="swiftfleet-baked:no-such-image")
    up = run_cli("cluster", "up", "--config", str(config))
    assert (up.returncode, up.stderr) == (
        2, "swiftfleet: image swiftfleet-baked:no-such-image (the cluster file's image:) not found in Docker: "
        "`swiftfleet image list` shows the baked images; the base image is swiftfleet-node:bookworm\n",
    )  # fmt: skip
    assert not (isolated_state / "inventory" / "sf-nobake.yml").exists()
    base = run_cli("image", "rm", node_image)
    assert (base.returncode, base.stderr) == (
        2, f"swiftfleet: image {node_image} is not one swiftfleet baked: left alone\n"
    )  # fmt: skip
