"""``flowviz doctor``: what this machine offers for live tracing, and the fix for each gap.

Never assumes: every line is a check made now. Required pieces decide the
exit status (0: ``follow`` can run, 1: it cannot); optional ones only say
what they would add.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Optional

from .kernel import has_privileges, release, tracefs, tracefs_problem, tracefs_root, use_shim_headers


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: Optional[str] = None
    required: bool = True


def ipvs_available() -> bool:
    return os.path.exists("/proc/net/ip_vs")


def _hook_check(st) -> Check:
    """A hook group's status as a doctor line (where IPVS itself is missing, that is said first)."""
    why = st.why
    if st.group.name == "ipvs" and not st.available and not ipvs_available():
        why = f"no IPVS in this kernel (CONFIG_IP_VS; or modprobe ip_vs); {why}"
    return Check(f"optional hook: {st.group.name}", st.available, why, st.fix, required=False)


def checks() -> list[Check]:
    from .live import TRACEPOINTS
    out = []
    priv = has_privileges()
    out.append(Check("privileges", priv, "root or CAP_BPF+CAP_PERFMON" if priv else "not root",
                     "run as root: sudo flowviz follow ..."))
    try:
        import bcc
        out.append(Check("bcc", True, f"python bcc at {os.path.dirname(bcc.__file__)}"))
        bcc_ok = True
    except ImportError:
        bcc_ok = False
        out.append(Check("bcc", False, "python module bcc not importable",
                         "apt-get install python3-bpfcc (then scripts/setup, whose .venv sees it)"))
    btf = os.path.exists("/sys/kernel/btf/vmlinux")
    detail = "/sys/kernel/btf/vmlinux"
    if btf:
        try:
            from .btf import kernel_offsets
            offs = kernel_offsets()
            detail += f": sk_buff/net_device/net offsets resolved ({len(offs)} fields)"
        except Exception as e:   # report any BTF reading problem as the check's detail
            btf = False
            detail += f": {e}"
    out.append(Check("kernel BTF", btf, detail, "a kernel built with CONFIG_DEBUG_INFO_BTF=y "
                     "(or kernel headers: apt-get install linux-headers-$(uname -r))"))
    root = tracefs_root()
    if root is None and priv:
        try:
            root = tracefs(mount=True)
        except Exception:   # the check below says it is missing
            root = None
    why, fix = tracefs_problem() if root is None else (root, None)
    out.append(Check("tracefs", root is not None, why, fix))
    for cat, event, _, _ in TRACEPOINTS:
        present = root is not None and os.path.isdir(os.path.join(root, "events", cat, event))
        out.append(Check(f"tracepoint {cat}:{event}", present, "present" if present else "missing",
                         "a kernel with CONFIG_TRACEPOINTS (any 4.x+ distribution kernel)"))
    out.append(Check("BPF ring buffer", release()[:2] >= (5, 8), f"kernel {os.uname().release}",
                     "a 5.8 or newer kernel"))
    from .hooks import detect
    statuses = detect(root)   # once: it reads all of kallsyms
    if priv and bcc_ok and btf and root:
        out += _compile_check(root, [st for st in statuses if st.available])
    out += [_hook_check(st) for st in statuses]
    if priv:
        from .bpfcache import describe
        kept, detail, fix = describe()
        out.append(Check("compiled-program cache", kept, detail, fix, required=False))
    ipvs = ipvs_available()
    out.append(Check("IPVS", ipvs, "present" if ipvs else
                     "absent: Docker swarm's routing mesh (published ports through ingress_sbox) cannot run "
                     "here; `flowviz lab` emulates it with fwmark + DNAT + SNAT",
                     "a kernel with CONFIG_IP_VS", required=False))
    out.append(Check("iptables", shutil.which("iptables") is not None, shutil.which("iptables") or "missing",
                     "apt-get install iptables (the lab and topology use it)", required=False))
    return out + [_untrack_check(), _native_check()]


def _untrack_check() -> Check:
    from ..gcuntrack import BUILT
    return Check("C helper flowviz._untrack", BUILT,
                 "built: records made in C, and journeys kept (the TUI) leave the garbage collector's lists"
                 if BUILT else
                 "not in use: pure Python, the same output, slower and with longer garbage-collection pauses",
                 "sudo ./scripts/setup (installs gcc and python3-dev, builds it)", required=False)


def _native_check() -> Check:
    from .. import native
    used = native.in_use()
    if all(used.values()):
        return Check("compiled hot path", True, f"in use: {len(used)} modules compiled by mypyc (flowviz/native.py)",
                     required=False)
    stale = list(native.status().values()).count("stale")
    if os.environ.get("FLOWVIZ_PURE_PYTHON") == "1":
        why = "not in use (FLOWVIZ_PURE_PYTHON=1)"
    elif stale:
        why = f"{stale} of {len(used)} modules changed since they were compiled: they run from their source"
    else:
        why = "partly in use" if any(used.values()) else "not built"
    return Check("compiled hot path", False, f"{why}: pure Python, the same output, slower (scripts/bench-replay compares)",
                 "sudo ./scripts/setup (installs gcc and python3-dev, compiles it with mypyc)", required=False)


def _compile_check(root: str, usable: list) -> list[Check]:
    """Compile and load the real tracer: the shim + BTF path works on this kernel; and whether the
    kernel takes its raw tracepoints (one attached for a moment), or follow will use perf ones."""
    from ..filter import FlowFilter
    from . import hooks
    from .live import TRACEPOINTS, CapturedStderr, build_cflags, program_text
    err = CapturedStderr()
    try:
        from bcc import BPF
        use_shim_headers()
        cflags = build_cflags(FlowFilter(dport=20229), None, root) + hooks.hook_cflags(usable)
        with err:
            b = BPF(text=program_text(), cflags=cflags)
            for _cat, _event, fn, _macro in TRACEPOINTS:
                b.load_func(fn, BPF.TRACEPOINT)
            for st in usable:
                for p in st.group.probes:
                    b.load_func(p.program, BPF.KPROBE)
        raw = _raw_check(b)
        b.cleanup()
        extra = f", with the {', '.join(st.group.name for st in usable)} hooks" if usable else ""
        return [Check("tracer compiles and loads", True,
                      f"bcc + shim headers + BTF offsets, no kernel headers{extra}"), raw]
    except Exception as e:   # the compiler or the verifier said no: show what it said
        return [Check("tracer compiles and loads", False, err.first_error() or str(e) or repr(e),
                      "report this with `flowviz follow --ebpf` output")]


def _raw_check(b) -> Check:
    """Which tracepoints follow attaches: raw ones where the kernel takes them (one is tried here)."""
    from .live import TRACEPOINTS
    try:
        for _cat, event, prog, _ in TRACEPOINTS:
            b.load_func(f"{prog}_raw", b.RAW_TRACEPOINT)
        b.attach_raw_tracepoint(tp="netif_receive_skb", fn_name="fv_rx_raw")
        b.detach_raw_tracepoint(tp="netif_receive_skb")
        return Check("tracepoints", True, "raw (follow reads the tracepoints' arguments; the kernel copies no "
                     "event record)", required=False)
    except Exception as e:   # the kernel or the verifier refused the raw programs
        return Check("tracepoints", False, f"raw ones refused ({e}): follow uses perf tracepoints",
                     "a kernel with BPF_RAW_TRACEPOINT (4.17+)", required=False)


def run_doctor() -> int:
    results = checks()
    width = max(len(c.name) for c in results)
    for c in results:
        mark = "ok " if c.ok else ("-- " if not c.required else "NO ")
        line = f"{mark} {c.name:<{width}}  {c.detail}"
        if not c.ok and c.fix:
            line += f"\n    {'':<{width}}  fix: {c.fix}"
        print(line)
    bad = [c for c in results if c.required and not c.ok]
    print()
    print("live tracing: ready" if not bad else f"live tracing: not ready ({len(bad)} required check(s) failed)")
    return 0 if not bad else 1
