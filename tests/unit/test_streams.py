"""`flowviz replay -`, pipes and FIFOs: read as the bytes arrive, journeys out as they finish."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from support import flowviz


def _flowviz_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowviz", *args]


def _read_until(fd: int, needle: bytes, limit_s: float = 60) -> bytes:
    """Bytes from ``fd`` until ``needle`` shows up (a generous limit only guards against a hang)."""
    got = b""
    end = time.monotonic() + limit_s
    while needle not in got and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:   # a terminal whose other side closed
                break
            if not chunk:
                break
            got += chunk
    return got


def test_standard_input_a_pipe_and_dev_stdin_give_what_the_file_gives(swarm_pcap):
    data = open(swarm_pcap, "rb").read()
    want = flowviz("replay", swarm_pcap, "--json", check=True).stdout
    for args in (("replay", "-", "--json"), ("replay", "/dev/stdin", "--json")):
        r = subprocess.run(_flowviz_argv(*args), input=data, capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode() == want, args


def test_a_fifo_with_a_writer_is_read_not_mistaken_for_an_empty_file(swarm_pcap, tmp_path):
    fifo = tmp_path / "cap.fifo"
    os.mkfifo(fifo)
    want = flowviz("replay", swarm_pcap, "--json", check=True).stdout
    p = subprocess.Popen(_flowviz_argv("replay", str(fifo), "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(fifo, "wb") as w:
        w.write(open(swarm_pcap, "rb").read())
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert out.decode() == want


def test_journeys_come_out_while_the_writer_is_still_writing(swarm_pcap):
    """The writer sends the capture and then stays open (tcpdump -U waiting for more packets):
    both journeys must come out before it closes, once they are a window of quiet old."""
    p = subprocess.Popen(_flowviz_argv("replay", "-", "--json"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        p.stdin.write(open(swarm_pcap, "rb").read())
        p.stdin.flush()
        got = b""
        while got.count(b'"type": "journey"') < 2:
            more = _read_until(p.stdout.fileno(), b'"type": "journey"')
            assert more, "flowviz said nothing while its input stayed open"
            got += more
        assert p.poll() is None   # still reading: the input is open
    finally:
        p.stdin.close()
        p.wait(timeout=60)
    assert p.returncode == 0


@pytest.mark.parametrize("inherited", [signal.SIG_DFL, signal.SIG_IGN])
def test_a_fifo_nobody_writes_to_can_be_interrupted(tmp_path, inherited):
    """^C ends every command, also one started with SIGINT ignored, as a shell's background job (a CI
    runner's, a script's `flowviz follow ... &`) starts: Python would keep that ignore, and follow,
    which handles SIGINT itself once it follows, ignored one sent while it attached, and never ended."""
    fifo = tmp_path / "idle.fifo"
    os.mkfifo(fifo)
    p = subprocess.Popen(_flowviz_argv("replay", str(fifo)), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, inherited))
    try:
        # interrupt it where it waits for a writer (the kernel says so), not while Python is still starting
        end = time.monotonic() + 60
        while _wchan(p.pid) != "wait_for_partner" and p.poll() is None and time.monotonic() < end:
            time.sleep(0.05)
        assert _wchan(p.pid) == "wait_for_partner", "flowviz never reached the FIFO's open()"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:   # not left waiting on the FIFO when the test fails
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 130
    assert b"Traceback" not in err and out == b""


def _wchan(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/wchan") as f:
            return f.read().strip()
    except OSError:
        return ""


def test_empty_or_twice_named_standard_input_is_one_line_and_status_2():
    r = subprocess.run(_flowviz_argv("replay", "-"), input=b"", capture_output=True, timeout=60)
    assert r.returncode == 2 and r.stderr.decode().strip() == "flowviz: -: the input ended before any capture came in"
    r = subprocess.run(_flowviz_argv("replay", "-", "-"), input=b"", capture_output=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.decode().strip().splitlines()) == 1
    assert b"only once" in r.stderr


def test_the_tui_reads_the_capture_from_a_pipe_and_keys_from_the_terminal(swarm_pcap):
    """`... | flowviz replay -` on a terminal: the capture comes through standard input, the keys
    through /dev/tty (here a pseudo-terminal made the controlling one)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 170, 0, 0))   # rows, columns

    def take_terminal():
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "170", "LINES": "50"}
    p = subprocess.Popen(_flowviz_argv("replay", "-"), stdin=subprocess.PIPE, stdout=slave, stderr=slave,
                         preexec_fn=take_terminal, env=env)
    os.close(slave)
    try:
        p.stdin.write(open(swarm_pcap, "rb").read())
        p.stdin.close()
        screen = _read_until(master, b"192.168.21.11")
        assert b"192.168.21.11" in screen, screen[-2000:]
        os.write(master, b"q")
        end = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < end:
            _read_until(master, b"\0", limit_s=0.5)   # keep the terminal drained while it exits
        assert p.returncode == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
