"""The fork server's side of the timing handshake (READY, GO, DONE) against a child's socket
that student code can write to: the real server object, a real socket pair and a real
process standing in for the child."""

import os
import selectors
import socket
import subprocess

import pytest

from autograder.engine import protocol
from autograder.engine.forkserver import Server, _Running


@pytest.fixture
def server(tmp_path):
    return Server(tmp_path, isolated=False)


@pytest.fixture
def child(server):
    """(the server's record of a running child, the child's end of its timer socket, the
    process): a sleeping process in a session of its own, as a forked child is."""
    process = subprocess.Popen(["sleep", "60"], start_new_session=True)
    report_read, report_write = os.pipe()
    os.close(report_write)
    timer, child_end = socket.socketpair()
    running = _Running(1, process.pid, "s1", report_read, timer, None)
    server.selector.register(timer, selectors.EVENT_READ, running)
    yield running, child_end, process
    process.kill()
    process.wait()
    child_end.close()
    running.close(server.selector)
    os.close(report_read)


def test_ready_then_done_times_the_child_and_ends_it(server, child):
    running, child_end, process = child
    child_end.sendall(protocol.READY)
    running.timer_event(server)
    assert child_end.recv(1) == protocol.GO and running.cpu_at_go is not None
    child_end.sendall(protocol.DONE)
    running.timer_event(server)
    assert running.timed_cpu is not None
    assert process.wait(timeout=10) == -9


@pytest.mark.parametrize("sent", [b"x" * 65536, protocol.READY * 2,
                                  protocol.DONE + b"x"])
def test_bytes_outside_the_handshake_close_the_socket(server, child, sent):
    """A child flooding its timer socket would keep the single-threaded server reading it
    16 bytes at a time, a core's worth, while the child itself sleeps in send."""
    running, child_end, process = child
    child_end.sendall(sent)
    running.timer_event(server)
    assert running.timer is None and running.timed_cpu is None
    with pytest.raises(OSError):
        child_end.sendall(b"x" * 65536 * 8)
    assert process.poll() is None  # closed, not killed: a kill would read as one from outside


def test_a_second_ready_after_go_closes_the_socket(server, child):
    running, child_end, _ = child
    child_end.sendall(protocol.READY)
    running.timer_event(server)
    assert child_end.recv(1) == protocol.GO
    child_end.sendall(protocol.READY)
    running.timer_event(server)
    assert running.timer is None
