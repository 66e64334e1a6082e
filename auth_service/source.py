"""Where a client authentication comes from, as the failure limits count it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# One IPv6 subscriber usually gets a whole /64, so counting single IPv6 addresses would give an
# attacker 2**64 fresh counters; IPv4 addresses are counted one by one.
IPV6_PREFIX_LENGTH = 64


@dataclass(frozen=True)
class SourceAddress:
    """A client's address, normalised into the key the limiter counts by.

    ``key`` is an IPv4 address (``203.0.113.7``), an IPv6 /64 (``2001:db8:1:2::/64``), or
    ``local`` for a caller on the unix socket with no address of its own.
    """

    key: str

    def __str__(self) -> str:
        return self.key


LOCAL = SourceAddress("local")


def parse_source_address(text: str) -> SourceAddress:
    """An IP address as text; ValueError if it is not one."""
    address = ipaddress.ip_address(text.strip())
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:203.0.113.7 is the IPv4 client it names
            return SourceAddress(str(address.ipv4_mapped))
        network = ipaddress.IPv6Network(f"{address}/{IPV6_PREFIX_LENGTH}", strict=False)
        return SourceAddress(str(network))
    return SourceAddress(str(address))
