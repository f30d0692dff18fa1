"""iptables rules (as iptables-save writes them), parsed and evaluated for one packet.

Only what decides where a container packet goes is understood: protocol,
ports, addresses, interfaces, ``addrtype``, ``mark`` and ``ipvs`` matches,
and the DNAT, SNAT, MASQUERADE, MARK, RETURN, ACCEPT and jump targets. A rule
using a match this module does not know is taken not to match, and says so
in :attr:`Rule.unknown`.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass, field
from typing import Callable, Optional

TERMINAL = {"ACCEPT", "DROP", "REJECT", "DNAT", "SNAT", "MASQUERADE", "RETURN"}


@dataclass
class Rule:
    chain: str
    text: str                                   #: the rule as iptables-save wrote it
    matches: list[tuple[str, str, bool]] = field(default_factory=list)   #: (option, value, negated)
    target: Optional[str] = None
    args: dict[str, str] = field(default_factory=dict)   #: target options (--to-destination, ...)
    unknown: list[str] = field(default_factory=list)


@dataclass
class Packet:
    proto: str                                  #: "tcp", "udp", "icmp"
    src: str
    dst: str
    sport: Optional[int]
    dport: Optional[int]
    mark: int = 0
    in_dev: Optional[str] = None
    out_dev: Optional[str] = None
    ipvs: bool = False                          #: IPVS handled it (the ``-m ipvs --ipvs`` match)


KNOWN_MATCH_OPTS = {"-p", "--dport", "--sport", "-d", "-s", "-i", "-o", "--dst-type", "--src-type", "--mark",
                    "--ipvs", "--dports", "--sports"}
TARGET_OPTS = {"--to-destination", "--to-source", "--set-xmark", "--set-mark", "--to-ports", "--reject-with"}


def parse(lines: list[str]) -> dict[str, list[Rule]]:
    """iptables-save lines of one table → rules by chain, in order."""
    chains: dict[str, list[Rule]] = {}
    for line in lines:
        if line.startswith(":"):
            chains.setdefault(line[1:].split()[0], [])
            continue
        if not line.startswith("-A "):
            continue
        toks = shlex.split(line)
        rule = Rule(toks[1], line)
        i, neg = 2, False
        while i < len(toks):
            t = toks[i]
            if t == "!":
                neg = True
                i += 1
                continue
            if t == "-m":
                i += 2   # which module: its options follow
                continue
            if t in ("-j", "-g"):
                rule.target = toks[i + 1]
                i += 2
                continue
            value = toks[i + 1] if i + 1 < len(toks) and not toks[i + 1].startswith("-") else ""
            if t in TARGET_OPTS:
                rule.args[t] = value
            elif t in KNOWN_MATCH_OPTS:
                rule.matches.append((t, value, neg))
            elif t.startswith("-"):
                rule.unknown.append(t)
            i += 2 if value else 1
            neg = False
        chains.setdefault(rule.chain, []).append(rule)
    return chains


def _in_net(addr: str, spec: str) -> bool:
    try:
        return ipaddress.ip_address(addr) in ipaddress.ip_network(spec, strict=False)
    except ValueError:
        return False


def _mark_matches(mark: int, spec: str) -> bool:
    value, _, mask = spec.partition("/")
    m = int(mask, 0) if mask else 0xFFFFFFFF
    return (mark & m) == (int(value, 0) & m)


def matches(rule: Rule, p: Packet, is_local: Callable[[str], bool]) -> bool:
    if rule.unknown:
        return False
    for opt, value, neg in rule.matches:
        if opt == "-p":
            ok = p.proto == value
        elif opt == "--dport":
            ok = p.dport is not None and p.dport == int(value.split(":")[0])
        elif opt == "--sport":
            ok = p.sport is not None and p.sport == int(value.split(":")[0])
        elif opt == "--dports":
            ok = p.dport is not None and str(p.dport) in value.split(",")
        elif opt == "--sports":
            ok = p.sport is not None and str(p.sport) in value.split(",")
        elif opt == "-d":
            ok = _in_net(p.dst, value)
        elif opt == "-s":
            ok = _in_net(p.src, value)
        elif opt == "-i":
            ok = p.in_dev is not None and (p.in_dev == value or (value.endswith("+") and p.in_dev.startswith(value[:-1])))
        elif opt == "-o":
            ok = p.out_dev is not None and (p.out_dev == value or (value.endswith("+") and p.out_dev.startswith(value[:-1])))
        elif opt == "--dst-type":
            ok = value == "LOCAL" and is_local(p.dst)
        elif opt == "--src-type":
            ok = value == "LOCAL" and is_local(p.src)
        elif opt == "--mark":
            ok = _mark_matches(p.mark, value)
        elif opt == "--ipvs":
            ok = p.ipvs
        else:
            ok = False
        if ok == neg:
            return False
    return True


@dataclass
class Effect:
    """What one chain traversal did to the packet."""

    rule: Rule
    kind: str          #: "dnat", "snat", "masquerade", "mark"
    before: str
    after: str


def run_chain(chains: dict[str, list[Rule]], chain: str, p: Packet, is_local: Callable[[str], bool],
              *, masquerade_src: Optional[str] = None, depth: int = 0) -> tuple[Optional[str], list[Effect]]:
    """Walk ``chain`` for ``p`` (changing it in place); returns the verdict and the effects on the way."""
    effects: list[Effect] = []
    if depth > 16:
        return None, effects
    for rule in chains.get(chain, []):
        if not matches(rule, p, is_local):
            continue
        t = rule.target
        if t == "DNAT":
            addr, _, port = rule.args.get("--to-destination", "").partition(":")   # IPv4 a.b.c.d[:port]
            before = f"{p.dst}:{p.dport}"
            p.dst = addr or p.dst
            if port:
                p.dport = int(port.split("-")[0])
            effects.append(Effect(rule, "dnat", before, f"{p.dst}:{p.dport}"))
            return "DNAT", effects
        if t in ("SNAT", "MASQUERADE"):
            before = f"{p.src}:{p.sport}"
            src = rule.args.get("--to-source", "").split(":")[0] if t == "SNAT" else masquerade_src
            if src:
                p.src = src
            effects.append(Effect(rule, "snat" if t == "SNAT" else "masquerade", before, f"{p.src}:{p.sport}"))
            return t, effects
        if t == "MARK":
            spec = rule.args.get("--set-xmark") or rule.args.get("--set-mark") or "0"
            value, _, mask = spec.partition("/")
            m = int(mask, 0) if mask else 0xFFFFFFFF
            before = p.mark
            p.mark = (p.mark & ~m) | (int(value, 0) & m)
            effects.append(Effect(rule, "mark", hex(before), hex(p.mark)))
            continue
        if t in ("RETURN",):
            return None, effects
        if t in TERMINAL:
            return t, effects
        if t is not None and t in chains:
            verdict, more = run_chain(chains, t, p, is_local, masquerade_src=masquerade_src, depth=depth + 1)
            effects += more
            if verdict is not None:
                return verdict, effects
    return None, effects
