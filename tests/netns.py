"""Several hosts on one machine: network namespaces on one bridge (iproute2, root only).

Each host is a namespace with its loopback and one veth into a bridge in the test's own
namespace, which also has an address there, so the test talks to every host over a real
network path, and a host can be cut off (its link down) or killed without touching the
others. Names carry a random tag, so runs side by side do not collide; `close()` removes it
all, and the namespaces' processes with it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass, field

import pytest

__all__ = ["Host", "Network", "network_or_skip"]


def _ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True, timeout=10)


@dataclass(frozen=True)
class Host:
    name: str  # the namespace
    address: str
    link: str  # the veth end on the bridge (in the test's namespace)

    @property
    def prefix(self) -> list[str]:
        """Put before a command to run it on this host."""
        return ["ip", "netns", "exec", self.name]

    def cut(self) -> None:
        """The host's link goes down: its packets are lost, as with a pulled cable."""
        _ip("link", "set", self.link, "down")

    def reconnect(self) -> None:
        _ip("link", "set", self.link, "up")


@dataclass
class Network:
    subnet: str = "10.77.0"  # a /24; .1 is the test's own address on the bridge
    tag: str = field(default_factory=lambda: secrets.token_hex(2))
    hosts: dict[str, Host] = field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return f"mgw{self.tag}"

    def create(self) -> Network:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        return self

    def add(self, name: str, number: int) -> Host:
        namespace, outer, inner = (
            f"mgw{self.tag}-{name}",
            f"v{self.tag}{number}",
            f"p{self.tag}{number}",
        )
        address = f"{self.subnet}.{number}"
        _ip("netns", "add", namespace)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", namespace)
        _ip("link", "set", outer, "master", self.bridge, "up")
        inside = ["netns", "exec", namespace, "ip"]
        _ip(*inside, "addr", "add", f"{address}/24", "dev", inner)
        _ip(*inside, "link", "set", inner, "up")
        _ip(*inside, "link", "set", "lo", "up")
        host = Host(namespace, address, outer)
        self.hosts[name] = host
        return host

    def close(self) -> None:
        for host in self.hosts.values():
            pids = subprocess.run(
                ["ip", "netns", "pids", host.name], capture_output=True, text=True, check=False
            ).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):  # already gone
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", host.name], capture_output=True, check=False)
            subprocess.run(["ip", "link", "del", host.link], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)


def network_or_skip() -> Network:
    """A new bridge, or a skip (a failure in CI, which runs as root) that says why not."""
    reason = ""
    if os.geteuid() != 0:
        reason = "network namespaces need root"
    elif shutil.which("ip") is None:
        reason = "no ip command (Debian's iproute2)"
    else:
        network = Network()
        try:
            return network.create()
        except (subprocess.CalledProcessError, OSError) as error:
            network.close()
            reason = f"cannot create a bridge: {getattr(error, 'stderr', error)!r}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
