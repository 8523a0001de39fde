"""The rehearsal's fixtures: the node image (tests/roles), the tiny model (tests/jobs), and a skip without the
controller-side ms-swift that makes the tiny model."""

import pytest

from tests.jobs.conftest import SWIFT_PYTHON, swift_python, tiny  # noqa: F401  (fixtures)
from tests.roles.conftest import node_image  # noqa: F401  (fixture)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if SWIFT_PYTHON.exists():
        return
    skip = pytest.mark.skip(reason=f"no ms-swift Python at {SWIFT_PYTHON} (set SWIFTFLEET_SWIFT_PYTHON)")
    for item in items:
        if "swift" in item.keywords:
            item.add_marker(skip)
