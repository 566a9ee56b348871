"""`make down` then `make up`: down returns only once every process of the stack has exited and its ports are free."""

from __future__ import annotations

import socket

import pytest
from stack_testing import Stack

pytestmark = pytest.mark.stack  # starts stacks of its own


def _listening(port: str) -> bool:
    """True while something listens on the port: a bind with SO_REUSEADDR, as the servers do, fails only then."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", int(port)))
        except OSError:
            return True
    return False


def test_down_frees_every_port_and_up_follows_at_once(tmp_path) -> None:
    stack = Stack(tmp_path).up()
    assert all(_listening(port) for port in stack.ports.values()), stack.ports
    stack.down()
    still = {name: port for name, port in stack.ports.items() if _listening(port)}
    assert not still, f"still listening right after down returned: {still}"
    stack.up()  # the same ports, straight away: make down && make up
    try:
        models = stack.openai().models.list()
        assert models.data
    finally:
        stack.down()
    assert not any(_listening(port) for port in stack.ports.values())
