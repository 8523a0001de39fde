"""Ansible's door to the kit's filters: everything lives in swiftfleet.filters, shared with `swiftfleet render`."""

from swiftfleet.filters import FILTERS


class FilterModule:
    def filters(self):  # type: ignore[no-untyped-def]
        return FILTERS
