"""Ansible's door to the checkpoint filters of the watch (playbooks/tasks/stream.yml): swiftfleet.jobs.checkpoints."""

from swiftfleet.jobs.checkpoints import FILTERS


class FilterModule:
    def filters(self):  # type: ignore[no-untyped-def]
        return FILTERS
