"""The compiled tracer, kept per kernel, bcc, program text and filter, so that ``follow`` starts
without running clang again (clang is most of the time from start to the first sighting).

bcc compiles C in-process and has no way to load a compiled object, so this keeps what bcc
hands the kernel: each function's instructions and each map's definition. A later start with
the same key makes the maps again, points the instructions' map references at the new maps
(``ld_imm64`` with src_reg BPF_PSEUDO_MAP_FD), and loads them through libbcc's own
``bcc_prog_load``. :class:`CachedBPF` is a ``bcc.BPF`` that loads its functions that way, so
attaching, detaching and ``cleanup`` are bcc's own.

The key hashes everything the compiled instructions depend on: this format, bcc's version and
library file, the kernel's release and build, the C text (the filter's expression is in it),
the -D macros (struct offsets from BTF, tracepoint offsets, the filter, the ring's size) and the
include tree. An entry whose key is not exactly that is never read; one that fails any check,
or that the kernel refuses, is removed and the program is compiled as before.

The directory is /var/cache/flowviz (FLOWVIZ_CACHE_DIR; ``off`` turns the cache off), made mode
0700. It is used only when it is owned by this user and nobody else may write it: a program
loaded from it runs in the kernel.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import hashlib
import json
import os
import struct
import tempfile
from typing import Optional

CACHE_FORMAT = 1
DEFAULT_DIR = "/var/cache/flowviz"
KEEP = 32                       #: entries kept; the least recently used go first
INSN = struct.Struct("<BBhi")   #: struct bpf_insn: code, dst_reg:4 src_reg:4, off, imm
LD_IMM64 = 0x18
PSEUDO_MAP_FD = 1

try:
    from bcc import BPF as _BPF   # the distribution's python3-bpfcc; LiveSource checks it is there
except ImportError:
    _BPF = object


def cache_dir() -> Optional[str]:
    """Where entries are kept, made if missing; None when the cache is off or the directory
    is not safe to load programs from (not ours, or writable by others)."""
    path = os.environ.get("FLOWVIZ_CACHE_DIR", DEFAULT_DIR)
    if path in ("", "off"):
        return None
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError:
        return None
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        return None
    return path


def describe() -> tuple[bool, str, str]:
    """(in use, what doctor says about the cache, the fix when not in use)."""
    path = os.environ.get("FLOWVIZ_CACHE_DIR", DEFAULT_DIR)
    if path in ("", "off"):
        return False, "off (FLOWVIZ_CACHE_DIR=off): every start compiles with clang", "unset FLOWVIZ_CACHE_DIR"
    where = cache_dir()
    if where is None:
        return (False, f"{path} is not usable (not this user's, or others may write it): every start compiles",
                f"chown {os.geteuid()} {path} && chmod 700 {path}")
    n = sum(1 for e in os.scandir(where) if e.name.endswith(".json"))
    return True, f"{where}: {n} compiled program(s) kept; a start with a kept one's kernel and filter skips clang", ""


def _tree_digest(root) -> str:
    h = hashlib.sha256()
    stack = [root]
    while stack:
        node = stack.pop()
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.is_dir():
                stack.append(child)
            elif child.name.endswith((".h", ".c")):
                h.update(child.name.encode() + b"\0" + child.read_bytes())
    return h.hexdigest()


def cache_key(text: str, cflags: list[str], include_root) -> str:
    """The entry's name: a hash of everything the compiled instructions depend on."""
    import bcc
    from bcc import libbcc
    try:
        st = os.stat(_library_path(libbcc.lib))
        lib = [st.st_size, st.st_mtime_ns]
    except OSError:
        lib = []
    u = os.uname()
    parts = [CACHE_FORMAT, getattr(bcc, "__version__", "?"), lib, u.release, u.version, u.machine, text, cflags,
             _tree_digest(include_root)]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _library_path(lib) -> str:
    """The file a ctypes library was loaded from (its name may be a soname only)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if os.path.basename(path).startswith(os.path.basename(lib._name)):
                    return path
    except OSError:
        pass
    return lib._name


# --- keeping an entry ----------------------------------------------------------------------

def capture(bpf) -> Optional[dict]:
    """What the kernel needs to load every function of a compiled bcc BPF again; None when
    the instructions hold anything but map references this can redo."""
    from bcc import libbcc
    lib, module = libbcc.lib, bpf.module
    _declare(lib)
    maps, index_of = [], {}
    for i in range(lib.bpf_num_tables(module)):
        fd = lib.bpf_table_fd_id(module, i)
        index_of[fd] = len(maps)
        maps.append({"name": lib.bpf_table_name(module, i).decode(), "type": lib.bpf_table_type_id(module, i),
                     "key": lib.bpf_table_key_size_id(module, i), "value": lib.bpf_table_leaf_size_id(module, i),
                     "max": lib.bpf_table_max_entries_id(module, i), "flags": lib.bpf_table_flags_id(module, i)})
    funcs = {}
    for i in range(lib.bpf_num_functions(module)):
        name = lib.bpf_function_name(module, i)
        start = lib.bpf_function_start(module, name)
        if not start:
            return None
        code = bytearray(ctypes.string_at(start, lib.bpf_function_size(module, name)))
        if not _relocate(code, index_of):
            return None
        funcs[name.decode()] = base64.b64encode(bytes(code)).decode()
    return {"format": CACHE_FORMAT, "license": lib.bpf_module_license(module).decode(),
            "kern_version": lib.bpf_module_kern_version(module), "maps": maps, "funcs": funcs}


def _relocate(code: bytearray, mapping: dict[int, int]) -> bool:
    """Rewrite every map reference's immediate through ``mapping`` in place; False when an
    instruction refers to something else (map values, BTF objects) or to an unknown map."""
    if len(code) % INSN.size:
        return False
    i = 0
    while i < len(code):
        op, regs, off, imm = INSN.unpack_from(code, i)
        if op == LD_IMM64:
            src = regs >> 4
            if src == PSEUDO_MAP_FD:
                if imm not in mapping:
                    return False
                INSN.pack_into(code, i, op, regs, off, mapping[imm])
            elif src != 0:
                return False
            i += 2 * INSN.size   # ld_imm64 takes two slots
            continue
        i += INSN.size
    return True


def store(directory: str, key: str, entry: dict) -> None:
    """Write the entry (0600, whole or not at all), and forget the oldest beyond KEEP."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"key": key, **entry}, f)
        os.replace(tmp, os.path.join(directory, key + ".json"))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    entries = sorted((e for e in os.scandir(directory) if e.name.endswith(".json")),
                     key=lambda e: e.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        try:
            os.unlink(old.path)
        except OSError:
            pass


def lookup(directory: str, key: str) -> Optional[dict]:
    """The entry for exactly this key, checked; None when there is none or it is unusable
    (an unusable one is removed)."""
    path = os.path.join(directory, key + ".json")
    try:
        with open(path) as f:
            entry = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        forget(directory, key)
        return None
    if not _valid(entry, key):
        forget(directory, key)
        return None
    os.utime(path)
    return entry


def forget(directory: str, key: str) -> None:
    try:
        os.unlink(os.path.join(directory, key + ".json"))
    except OSError:
        pass


def _valid(entry, key: str) -> bool:
    try:
        if entry["key"] != key or entry["format"] != CACHE_FORMAT:
            return False
        if not isinstance(entry["license"], str) or not isinstance(entry["kern_version"], int):
            return False
        for m in entry["maps"]:
            if not isinstance(m["name"], str) or not all(isinstance(m[k], int) for k in
                                                           ("type", "key", "value", "max", "flags")):
                return False
        for name, insns in entry["funcs"].items():
            if not isinstance(name, str) or len(base64.b64decode(insns, validate=True)) % INSN.size:
                return False
        return isinstance(entry["funcs"], dict) and bool(entry["funcs"])
    except (KeyError, TypeError, AttributeError, ValueError):
        return False


# --- loading one --------------------------------------------------------------------------

def _declare(lib) -> None:
    """The libbcc calls bcc's Python module does not declare."""
    size, vp = ctypes.c_size_t, ctypes.c_void_p
    for fn, res, args in (("bpf_num_tables", size, [vp]), ("bpf_table_name", ctypes.c_char_p, [vp, size]),
                          ("bpf_table_fd_id", ctypes.c_int, [vp, size]),
                          ("bpf_table_key_size_id", size, [vp, size]), ("bpf_table_leaf_size_id", size, [vp, size])):
        getattr(lib, fn).restype = res
        getattr(lib, fn).argtypes = args
    lib.bcc_create_map.restype = ctypes.c_int
    lib.bcc_create_map.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                   ctypes.c_int]
    lib.bcc_prog_load.restype = ctypes.c_int
    lib.bcc_prog_load.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p,
                                  ctypes.c_uint, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]


class CachedBPF(_BPF):
    """A bcc BPF whose functions come from a cache entry instead of clang. Only the calls
    flowviz makes are here: load_func (for bcc's attach_*), the two tables live reads (a ring
    buffer, a per-CPU array), and close (for bcc's cleanup)."""

    def __init__(self, entry: dict):   # noqa: super().__init__ would compile
        from bcc import libbcc
        self.kprobe_fds, self.uprobe_fds, self.tracepoint_fds, self.raw_tracepoint_fds = {}, {}, {}, {}
        self.kfunc_entry_fds, self.kfunc_exit_fds, self.lsm_fds = {}, {}, {}
        self.perf_buffers, self.open_perf_events, self.tables, self.funcs = {}, {}, {}, {}
        self._ringbuf_manager = None
        self.tracefile = None
        self.debug = 0
        self.module = None
        self._entry = entry
        self._lib = libbcc.lib
        _declare(self._lib)
        self._maps: dict[str, tuple[int, dict]] = {}
        self._callbacks: list = []
        atexit.register(self.cleanup)
        try:
            fds = []
            for m in entry["maps"]:
                fd = self._lib.bcc_create_map(m["type"], m["name"][:15].encode(), m["key"], m["value"], m["max"],
                                              m["flags"])
                if fd < 0:
                    raise OSError(ctypes.get_errno(), f"the kernel refused map {m['name']}")
                self._maps[m["name"]] = (fd, m)
                fds.append(fd)
            self._fds = fds
        except BaseException:
            self.close()
            raise

    def load_func(self, func_name, prog_type, device=None, attach_type=-1):
        name = func_name.decode() if isinstance(func_name, bytes) else func_name
        if name in self.funcs:
            return self.funcs[name]
        insns = self._entry["funcs"].get(name)
        if insns is None:
            raise Exception(f"Unknown program {name}")
        code = bytearray(base64.b64decode(insns))
        if not _relocate(code, dict(enumerate(self._fds))):
            raise Exception(f"program {name}: a map reference the entry has no map for")
        buf = (ctypes.c_char * len(code)).from_buffer(code)
        log = ctypes.create_string_buffer(4096)
        fd = self._lib.bcc_prog_load(prog_type, name[:15].encode(), ctypes.addressof(buf), len(code),
                                     self._entry["license"].encode(), self._entry["kern_version"], 0, log,
                                     ctypes.sizeof(log))
        if fd < 0:
            raise Exception(f"Failed to load BPF program {name}: {os.strerror(ctypes.get_errno())}")
        fn = self.Function(self, name.encode(), fd)
        self.funcs[name] = fn
        return fn

    def __getitem__(self, name):
        name = name.decode() if isinstance(name, bytes) else name
        if name not in self._maps:
            raise KeyError(name)
        fd, m = self._maps[name]
        if m["type"] == 27:   # BPF_MAP_TYPE_RINGBUF
            return _RingBuf(self, fd, m["max"])
        if m["type"] == 6:    # BPF_MAP_TYPE_PERCPU_ARRAY
            return _PerCpuArray(self._lib, fd, m["value"])
        if m["type"] == 2:    # BPF_MAP_TYPE_ARRAY: written through its fd
            return _Array(fd)
        raise KeyError(f"{name}: a map kind the cache's loader does not read")

    def close(self):
        for fn in list(self.funcs.values()):
            os.close(fn.fd)
        self.funcs = {}
        for fd, _m in list(self._maps.values()):
            os.close(fd)
        self._maps = {}


class _RingBuf:
    def __init__(self, bpf: CachedBPF, fd: int, size: int):
        self.bpf, self.fd = bpf, fd
        self.map_fd, self.max_entries = fd, size   # as bcc's RingBuf names them (flowviz.sources.ringbuf)

    def open_ring_buffer(self, callback) -> None:
        from bcc.libbcc import _RINGBUF_CB_TYPE

        def cb(ctx, data, size):
            return callback(ctx, data, size) or 0   # negative: libbpf ends the take here
        fn = _RINGBUF_CB_TYPE(cb)
        self.bpf._callbacks.append(fn)   # kept alive as long as the manager may call it
        self.bpf._open_ring_buffer(self.fd, fn, None)


class _Array:
    def __init__(self, fd: int):
        self.map_fd = fd


class _PerCpuArray:
    def __init__(self, lib, fd: int, value_size: int):
        self.lib, self.fd, self.value_size = lib, fd, value_size

    def __getitem__(self, key) -> list[int]:
        from bcc.utils import get_possible_cpus
        ncpu = len(get_possible_cpus())
        stride = (self.value_size + 7) // 8 * 8
        buf = ctypes.create_string_buffer(stride * ncpu)
        k = ctypes.c_int(int(getattr(key, "value", key)))
        if self.lib.bpf_lookup_elem(self.fd, ctypes.byref(k), buf) < 0:
            raise KeyError(key)
        return [int.from_bytes(buf.raw[i * stride:i * stride + self.value_size], "little") for i in range(ncpu)]
