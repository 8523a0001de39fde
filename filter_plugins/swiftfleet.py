"""Ansible's door to the kit's filters: everything lives in swiftfleet.filters, shared with `swiftfleet render`,
and the playbooks' TTL checks in swiftfleet.ttl."""

from swiftfleet.filters import FILTERS
from swiftfleet.ttl import FILTERS as TTL_FILTERS


class FilterModule:
    def filters(self):  # type: ignore[no-untyped-def]
        return {**FILTERS, **TTL_FILTERS}
