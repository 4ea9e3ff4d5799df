"""Free loopback ports for the fleets and servers the tests start."""

from __future__ import annotations

import random
import socket


def free_port_base(count: int = 5, attempts: int = 50) -> int:
    """A port base whose ``base+1 .. base+count`` are all free on 127.0.0.1 right now.

    Why a random base in 20000-60000: two suites (two xdist workers, or a test run beside someone's
    ``make services`` on the default 8100) never pick the same fleet ports, and the services bind
    ``base + n`` themselves, so a base is all a fleet needs."""
    for _ in range(attempts):
        base = random.randrange(20000, 60000, 10)
        socks: list[socket.socket] = []
        try:
            for offset in range(1, count + 1):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no range of {count} free ports found on 127.0.0.1 after {attempts} tries")


def free_port() -> int:
    """One free loopback port, for a server a test starts (the same random range as the fleets)."""
    return free_port_base(count=1) + 1


def closed_port() -> int:
    """A loopback port nothing listens on (bound once by the kernel's choice, then released): the
    address of a service that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
