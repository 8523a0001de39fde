"""The rehearsal's fixtures: the node image (tests/roles) and the tiny model (tests/jobs)."""

from tests.jobs.conftest import swift_python, tiny  # noqa: F401  (fixtures)
from tests.roles.conftest import node_image  # noqa: F401  (fixture)
