"""The compiled program's cache: its key, its entries, its directory (the kernel side is in
tests/privileged/test_live.py: kept, loaded, refused and compiled again)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from flowviz.sources import bpfcache
from flowviz.sources.bpfcache import INSN


def insn(op, regs=0, off=0, imm=0) -> bytes:
    return INSN.pack(op, regs, off, imm)


def program(*fds: int) -> bytearray:
    """mov r0, 0; a map reference per fd (ld_imm64 r1, map; two slots); exit."""
    code = insn(0xb7, 0, 0, 0)
    for fd in fds:
        code += insn(0x18, 0x11, 0, fd) + insn(0, 0, 0, 0)
    return bytearray(code + insn(0x95))


def test_map_references_are_rewritten_and_nothing_else():
    code = program(7, 9, 7)
    plain = bytes(code)
    assert bpfcache._relocate(code, {7: 0, 9: 1})
    refs = [INSN.unpack_from(code, i)[3] for i in range(8, len(code) - 8, 16)]
    assert refs == [0, 1, 0]
    assert code[:8] == plain[:8] and code[-8:] == plain[-8:]
    back = bytearray(code)
    assert bpfcache._relocate(back, {0: 7, 1: 9}) and bytes(back) == plain


def test_a_second_slot_that_looks_like_a_reference_is_left_alone():
    code = bytearray(insn(0x18, 0x11, 0, 3) + insn(0x18, 0x10, 0, 99) + insn(0x95))
    assert bpfcache._relocate(code, {3: 0})
    assert INSN.unpack_from(code, 8)[3] == 99


@pytest.mark.parametrize("code", [
    program(5),                                             # a map the module did not have
    bytearray(insn(0x18, 0x21, 0, 3) + insn(0) + insn(0x95)),  # a map value (global data)
    bytearray(insn(0x95) + b"\0\0\0"),                       # not whole instructions
])
def test_what_cannot_be_redone_is_not_kept(code):
    assert not bpfcache._relocate(code, {3: 0})


def entry(**over):
    import base64
    e = {"format": bpfcache.CACHE_FORMAT, "license": "GPL", "kern_version": 0,
         "maps": [{"name": "fv_events", "type": 27, "key": 0, "value": 0, "max": 4096, "flags": 0}],
         "funcs": {"fv_rx_raw": base64.b64encode(bytes(program(0))).decode()}}
    e.update(over)
    return e


def test_an_entry_is_kept_whole_private_and_found_by_its_key_only(tmp_path):
    d = str(tmp_path)
    bpfcache.store(d, "k1", entry())
    f = tmp_path / "k1.json"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert bpfcache.lookup(d, "k1")["funcs"] == entry()["funcs"]
    assert bpfcache.lookup(d, "k2") is None
    assert [p.name for p in tmp_path.iterdir()] == ["k1.json"]   # no temporary file left


@pytest.mark.parametrize("bad", [
    "not json",
    json.dumps({**entry(), "key": "another"}),                  # renamed from another key's file
    json.dumps({**entry(), "key": "k", "format": 0}),
    json.dumps({**entry(), "key": "k", "funcs": {}}),
    json.dumps({**entry(), "key": "k", "funcs": {"f": "AAAA"}}),   # 3 bytes: not whole instructions
    json.dumps({**entry(), "key": "k", "funcs": {"f": "!!"}}),
    json.dumps({**entry(), "key": "k", "maps": [{"name": "m"}]}),
])
def test_an_unusable_entry_is_never_used_and_is_removed(tmp_path, bad):
    (tmp_path / "k.json").write_text(bad)
    assert bpfcache.lookup(str(tmp_path), "k") is None
    assert not (tmp_path / "k.json").exists()


def test_only_the_most_recent_entries_are_kept(tmp_path):
    for i in range(bpfcache.KEEP + 3):
        bpfcache.store(str(tmp_path), f"k{i:03}", entry())
        os.utime(tmp_path / f"k{i:03}.json", (i, i))
    bpfcache.store(str(tmp_path), "last", entry())
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == bpfcache.KEEP and "last.json" in names and "k000.json" not in names


def test_the_directory_is_made_private_and_refused_when_others_may_write_it(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("FLOWVIZ_CACHE_DIR", str(d))
    assert bpfcache.cache_dir() == str(d) and stat.S_IMODE(d.stat().st_mode) == 0o700
    d.chmod(0o777)
    assert bpfcache.cache_dir() is None
    d.chmod(0o700)
    if os.geteuid() == 0:
        os.chown(d, 65534, 65534)
        assert bpfcache.cache_dir() is None
    monkeypatch.setenv("FLOWVIZ_CACHE_DIR", "off")
    assert bpfcache.cache_dir() is None


def test_the_key_changes_with_everything_the_program_depends_on(tmp_path):
    pytest.importorskip("bcc")   # the key has bcc's version in it; scripts/setup makes a .venv that sees bcc
    inc = tmp_path / "inc"
    (inc / "sub").mkdir(parents=True)
    (inc / "sub" / "a.h").write_text("#define A 1\n")
    key = bpfcache.cache_key("int f(void *c) { return 0; }", ["-DX=1"], inc)
    assert key == bpfcache.cache_key("int f(void *c) { return 0; }", ["-DX=1"], inc)
    assert key != bpfcache.cache_key("int f(void *c) { return 1; }", ["-DX=1"], inc)
    assert key != bpfcache.cache_key("int f(void *c) { return 0; }", ["-DX=2"], inc)
    assert key != bpfcache.cache_key("int f(void *c) { return 0; }", ["-DX=1", "-DFV_ALL"], inc)
    (inc / "sub" / "a.h").write_text("#define A 2\n")
    assert key != bpfcache.cache_key("int f(void *c) { return 0; }", ["-DX=1"], inc)


def test_the_kept_programs_ring_buffer_passes_the_callbacks_answer_to_libbpf():
    """A negative answer is how the live source ends a poll at POLL_MAX: the wrapper the kept program
    hands to libbpf must return it, not 0 (and 0 for a callback that returns nothing)."""
    pytest.importorskip("bcc")
    handed = []

    class Manager:   # the CachedBPF part the ring buffer uses
        _callbacks: list = []

        def _open_ring_buffer(self, fd, fn, ctx):
            handed.append(fn)

    ring = bpfcache._RingBuf(Manager(), 3, 4096)
    answers = iter([-1, None])
    ring.open_ring_buffer(lambda ctx, data, size: next(answers))
    (fn,) = handed
    assert fn(None, None, 0) == -1
    assert fn(None, None, 0) == 0
