"""Optional kprobe hooks on IPVS, VXLAN, bridge and NAT: detect, build, attach, decode.

The tracepoints see every device crossing on every kernel. What they cannot
see is the decision behind a rewrite: which real server IPVS chose, which
FDB remote VXLAN sent to, which port the bridge picked, which netfilter hook
NATed. Stock distribution kernels let flowviz kprobe the functions that make
those decisions (bpf/fv_hooks.h says which and why); this module decides,
per group, whether the running kernel can:

* kprobes: ``kprobe_events`` in tracefs (CONFIG_KPROBES);
* the functions: in /proc/kallsyms, module symbols included (``name\\t[module]``),
  which needs the module loaded (IPVS, VXLAN, bridge and nf_nat are modules
  on Debian and Ubuntu, loaded when Docker or the lab first uses them);
* the structs the program reads: from the module's split BTF
  (/sys/kernel/btf/<module>) or vmlinux's;
* the argument registers: struct pt_regs from BTF (x86_64, arm64).

A group that cannot attach says why, in the follow notice and in doctor.
The kernel/user note record is mirrored once here (FV_NOTE).
"""

from __future__ import annotations

import ipaddress
import os
import platform
import struct
from dataclasses import dataclass
from typing import Optional

from ..annotations import NF_HOOKS, BridgeNote, IpvsNote, NatNote, Note, Tuple5, VxlanNote
from ..errors import MissingFeature

#: struct fv_note of bpf/fv_events.h, field for field (tests/unit/test_bpf_struct.py checks it)
FV_NOTE = struct.Struct("<BBBBB3sI4H64s32s8s")
FV_NOTE_FIELDS = ("kind", "flags", "hook", "af", "proto", "pad", "num", "port", "addr", "name", "mac")
#: the FV_NOTE_* constants of bpf/fv_events.h (the drift test compares them)
NOTE_IPVS, NOTE_VXLAN_TX, NOTE_VXLAN_RX, NOTE_BRIDGE, NOTE_NAT = 1, 2, 3, 4, 5
F_NEW, F_REPLY, F_FLOOD, F_DNAT = 1, 2, 4, 8
MAX_NOTES = 4


@dataclass(frozen=True)
class Probe:
    kind: str        #: "k" (kprobe) or "r" (kretprobe)
    function: str    #: the kernel function
    program: str     #: the BPF function in bpf/fv_hooks.h


@dataclass(frozen=True)
class Group:
    name: str
    module: Optional[str]                  #: the kernel module the functions live in, when modular
    probes: tuple[Probe, ...]
    fields: dict                           #: macro → (struct, member, expected size or 0), from BTF
    adds: str                              #: what it shows that the tracepoints cannot


GROUPS = (
    Group("ipvs", "ip_vs", (
        Probe("k", "ip_vs_nat_xmit", "fv_k_ipvs_xmit"),
        Probe("r", "ip_vs_schedule", "fv_r_ipvs_sched"),
        Probe("k", "ip_vs_out_hook", "fv_k_ipvs_out"),
        Probe("r", "ip_vs_conn_out_get", "fv_r_ipvs_out_conn"),
        Probe("r", "ip_vs_out_hook", "fv_r_ipvs_out"),
    ), {
        "IPVS_CONN_AF": ("ip_vs_conn", "af", 2),
        "IPVS_CONN_PROTOCOL": ("ip_vs_conn", "protocol", 2),
        "IPVS_CONN_CPORT": ("ip_vs_conn", "cport", 2),
        "IPVS_CONN_VPORT": ("ip_vs_conn", "vport", 2),
        "IPVS_CONN_DPORT": ("ip_vs_conn", "dport", 2),
        "IPVS_CONN_CADDR": ("ip_vs_conn", "caddr", 16),
        "IPVS_CONN_VADDR": ("ip_vs_conn", "vaddr", 16),
        "IPVS_CONN_DADDR": ("ip_vs_conn", "daddr", 16),
        "IPVS_CONN_FWMARK": ("ip_vs_conn", "fwmark", 4),
        "IPVS_CONN_DEST": ("ip_vs_conn", "dest", 8),
        "IPVS_DEST_SVC": ("ip_vs_dest", "svc", 8),
        "IPVS_SVC_SCHEDULER": ("ip_vs_service", "scheduler", 8),
        "IPVS_SCHED_NAME": ("ip_vs_scheduler", "name", 8),
    }, "the real server IPVS chose, its service and scheduler, new or existing connection"),
    Group("vxlan", "vxlan", (
        Probe("k", "vxlan_xmit_one", "fv_k_vxlan_xmit"),
        Probe("k", "vxlan_rcv", "fv_k_vxlan_rcv"),
    ), {
        "VXLAN_RDST_IP": ("vxlan_rdst", "remote_ip", 0),
        "VXLAN_RDST_PORT": ("vxlan_rdst", "remote_port", 2),
        "VXLAN_RDST_VNI": ("vxlan_rdst", "remote_vni", 4),
        "SOCK_NUM": ("sock", "__sk_common.skc_num", 2),
    }, "the VNI, the FDB remote and MAC on transmit; the VNI and socket on receive"),
    Group("bridge", "bridge", (
        Probe("k", "br_forward", "fv_k_br_forward"),
        Probe("k", "br_flood", "fv_k_br_flood"),
    ), {
        "BRPORT_BR": ("net_bridge_port", "br", 8),
        "BRPORT_DEV": ("net_bridge_port", "dev", 8),
        "BR_DEV": ("net_bridge", "dev", 8),
    }, "the bridge's forwarding decision: egress port on an FDB hit, or a flood"),
    Group("nat", "nf_nat", (
        Probe("k", "nf_nat_inet_fn", "fv_k_nat_hook"),
        Probe("r", "nf_nat_inet_fn", "fv_r_nat_hook"),
        Probe("k", "nf_nat_manip_pkt", "fv_k_nat_manip"),
    ), {
        "HOOK_STATE_HOOK": ("nf_hook_state", "hook", 1),
        "CT_ORIG_TUPLE": ("nf_conn", "tuplehash[0].tuple", 40),    # IP_CT_DIR_ORIGINAL
        "CT_REPLY_TUPLE": ("nf_conn", "tuplehash[1].tuple", 40),   # IP_CT_DIR_REPLY
        "CT_TUPLE_SRC_U3": ("nf_conntrack_tuple", "src.u3", 16),
        "CT_TUPLE_SRC_U": ("nf_conntrack_tuple", "src.u", 2),
        "CT_TUPLE_SRC_L3NUM": ("nf_conntrack_tuple", "src.l3num", 2),
        "CT_TUPLE_DST_U3": ("nf_conntrack_tuple", "dst.u3", 16),
        "CT_TUPLE_DST_U": ("nf_conntrack_tuple", "dst.u", 2),
        "CT_TUPLE_DST_PROTONUM": ("nf_conntrack_tuple", "dst.protonum", 1),
    }, "the netfilter hook where NAT rewrote the packet, DNAT or SNAT, and the conntrack tuples"),
)

#: argument and return registers in struct pt_regs, by machine
REGISTERS = {
    "x86_64": {"REG_ARG1": "di", "REG_ARG2": "si", "REG_ARG3": "dx", "REG_ARG4": "cx", "REG_RET": "ax"},
}


@dataclass(frozen=True)
class HookStatus:
    group: Group
    available: bool
    why: str                       #: what it adds (available), or what is missing
    cflags: tuple[str, ...] = ()   #: -D macros for this group (available only)
    fix: Optional[str] = None      #: the exact step that makes it available


def kallsyms_functions(path: str = "/proc/kallsyms") -> set[str]:
    """Names of the kernel's functions, modules' included (their lines end in ``\\t[module]``)."""
    out = set()
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in "tT":
                    out.add(parts[2])
    except OSError:
        pass
    return out


def kprobes_available(tracefs_root: Optional[str]) -> bool:
    return bool(tracefs_root) and os.path.exists(os.path.join(tracefs_root, "kprobe_events"))


def register_cflags() -> list[str]:
    """-D offsets of the argument registers in struct pt_regs, from BTF."""
    from .btf import struct_offsets
    machine = platform.machine()
    if machine == "aarch64":
        base = struct_offsets({"REGS": ("pt_regs", "regs", 0)}, None)["REGS"]
        regs = {"REG_ARG1": base, "REG_ARG2": base + 8, "REG_ARG3": base + 16, "REG_ARG4": base + 24,
                "REG_RET": base}
    elif machine in REGISTERS:
        regs = struct_offsets({k: ("pt_regs", v, 8) for k, v in REGISTERS[machine].items()}, None)
    else:
        raise MissingFeature(f"kprobe arguments are not mapped for {machine}")
    return [f"-DFV_{k}={v}" for k, v in regs.items()]


def detect(tracefs_root: Optional[str]) -> list[HookStatus]:
    """Each group's status on the running kernel, checked now."""
    if not kprobes_available(tracefs_root):
        if tracefs_root:
            why = "the kernel has no kprobes (CONFIG_KPROBES): a stock distribution kernel has them"
            fix = "boot a stock distribution kernel (CONFIG_KPROBES=y, e.g. Debian's linux-image-amd64)"
        else:
            from .kernel import tracefs_problem
            why, fix = tracefs_problem()
        return [HookStatus(g, False, why, fix=fix) for g in GROUPS]
    try:
        regs = register_cflags()
    except MissingFeature as e:
        return [HookStatus(g, False, str(e)) for g in GROUPS]
    from .btf import struct_offsets
    syms = kallsyms_functions()
    out = []
    for g in GROUPS:
        missing = sorted({p.function for p in g.probes} - syms)
        if missing:
            out.append(HookStatus(g, False, f"no {', '.join(missing)} in this kernel "
                                            f"({g.module or 'built-in'} not loaded or not built)",
                                  fix=f"modprobe {g.module}" if g.module else None))
            continue
        module = g.module if g.module and os.path.exists(f"/sys/kernel/btf/{g.module}") else None
        try:
            offs = struct_offsets(g.fields, module)
        except MissingFeature as e:
            out.append(HookStatus(g, False, str(e), fix="a kernel built with CONFIG_DEBUG_INFO_BTF_MODULES=y"))
            continue
        functions = ", ".join(dict.fromkeys(p.function for p in g.probes))
        cf = tuple([f"-DFV_HOOK_{g.name.upper()}"] + [f"-DFV_{k}={v}" for k, v in offs.items()] + regs)
        out.append(HookStatus(g, True, f"kprobes on {functions}: {g.adds}", cf))
    return out


def hook_cflags(statuses: list[HookStatus]) -> list[str]:
    usable = [s for s in statuses if s.available]
    if not usable:
        return []
    cf = ["-DFV_HOOKS"]
    for s in usable:
        cf += [c for c in s.cflags if c not in cf]
    return cf


def attach(bpf, statuses: list[HookStatus]) -> tuple[list[str], list[str]]:
    """Attach every available group's probes: (attached groups, problems met). A group
    that fails to attach part-way is detached again, so what is attached is whole."""
    attached, problems = [], []
    for s in statuses:
        if not s.available:
            continue
        done = []
        try:
            for probe in s.group.probes:
                if probe.kind == "k":
                    bpf.attach_kprobe(event=probe.function, fn_name=probe.program)
                else:
                    bpf.attach_kretprobe(event=probe.function, fn_name=probe.program, maxactive=64)
                done.append(probe)
        except Exception as e:   # bcc raises plain Exception when the kernel refuses an attach
            problems.append(f"{s.group.name}: could not attach {probe.function}: {e}")
            for attached_probe in done:
                _detach(bpf, attached_probe)
            continue
        attached.append(s.group.name)
    return attached, problems


def _detach(bpf, p: Probe) -> None:
    try:
        if p.kind == "k":
            bpf.detach_kprobe(event=p.function)
        else:
            bpf.detach_kretprobe(event=p.function)
    except Exception:   # already gone: bpf.cleanup() detaches the rest
        pass


# --- the one place a kernel note becomes an annotation ------------------------------------

def _addr(raw: bytes, af: int) -> Optional[str]:
    if af == 10:
        return str(ipaddress.IPv6Address(raw[:16]))
    if af == 2:
        return str(ipaddress.IPv4Address(raw[:4]))
    return None


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def convert_note(raw: bytes) -> Optional[Note]:
    kind, flags, hook, af, proto, _pad, num, p0, p1, p2, p3, addrs, names, mac = FV_NOTE.unpack_from(raw)
    addr = [_addr(addrs[i * 16:(i + 1) * 16], af) for i in range(4)]
    name = [_cstr(names[:16]), _cstr(names[16:])]
    if kind == NOTE_IPVS:
        vaddr = None if num and addr[1] in ("0.0.0.0", "::") else addr[1]
        return IpvsNote(real=addr[2], real_port=p2, vaddr=vaddr, vport=p1, fwmark=num, scheduler=name[0],
                        new=bool(flags & F_NEW), client=addr[0], cport=p0, proto=proto,
                        reply=bool(flags & F_REPLY))
    if kind == NOTE_VXLAN_TX:
        return VxlanNote("tx", num, addr[0], p0, ":".join(f"{b:02x}" for b in mac[:6]))
    if kind == NOTE_VXLAN_RX:
        return VxlanNote("rx", num, addr[0], p0)
    if kind == NOTE_BRIDGE:
        flood = bool(flags & F_FLOOD)
        return BridgeNote(name[0], None if flood else name[1], flood)
    if kind == NOTE_NAT:
        return NatNote(NF_HOOKS.get(hook, "?"), "dnat" if flags & F_DNAT else "snat", bool(flags & F_REPLY),
                       Tuple5(proto, addr[0], p0, addr[1], p1), Tuple5(proto, addr[2], p2, addr[3], p3))
    return None


def convert_notes(raw: bytes, offset: int, count: int) -> tuple:
    out = []
    for i in range(min(count, MAX_NOTES)):
        n = convert_note(raw[offset + i * FV_NOTE.size: offset + (i + 1) * FV_NOTE.size])
        if n is not None:
            out.append(n)
    return tuple(out)
