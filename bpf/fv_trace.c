/* flowviz live tracer: one sighting per device crossing, from tracepoints.
 *
 * Hooks (stable tracepoints, present on every 4.x+ kernel, cheaper than
 * kprobes): net:netif_receive_skb (rx), net:net_dev_start_xmit (tx),
 * skb:kfree_skb (drop + reason), skb:consume_skb (end of life), and
 * skb:skb_copy_datagram_iovec (a socket read it: forgotten, nothing sent).
 * Not net:netif_rx: what it queues, netif_receive_skb sees again (or kfree_skb
 * drops), so it only reported each of those packets twice. Each hook has two
 * entry points: fv_X for the perf tracepoint (the
 * kernel first copies the event's fields into a record; the skb address is
 * read at its tracefs offset) and fv_X_raw for the raw tracepoint, which gets
 * the tracepoint's arguments as they are (skb is args[0], kfree_skb's reason
 * args[2]) and skips that copy. live.py attaches the raw ones where the kernel
 * takes them, else the perf ones. Built by bcc with no kernel headers: struct fields are read
 * at byte offsets from the running kernel's BTF and tracepoint fields at the
 * offsets tracefs publishes, all passed in as -D macros by
 * flowviz/sources/live.py (FV_SKB_*, FV_DEV_*, FV_NET_*, FV_TP_*).
 *
 * Filtering happens here: only packets that match (outer or VXLAN-inner
 * headers, -DFV_DPORT=... etc.; -DFV_ALL follows everything) cross the ring
 * buffer. A matching skb is remembered (fv_tracked) so its later hops report
 * after NAT rewrote its ports or VXLAN wrapped it, and its tuple is remembered
 * (fv_flows) at every hop so replies and later packets of the flow follow,
 * through whatever NAT was seen.
 */
#include "fv_events.h"

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define FV_NTOHS(x) __builtin_bswap16(x)
#else
#define FV_NTOHS(x) (x)
#endif

#ifndef __always_inline   /* normally from the kernel's compiler headers, which we do without */
#define __always_inline inline __attribute__((always_inline))
#endif

#define FV_READ(dst, base, off) bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)(base) + (off))

/* Sightings for userspace. Reserved and submitted per event, waking no one (FV_SUBMIT): userspace
 * takes what is there every few milliseconds. A wakeup (each time a record lands in a ring
 * userspace had emptied) cost the sighting 200-400 ns more on average (bpf_stats, following every
 * packet with a consumer that keeps up), and the consumer a poll call per handful of records. */
#define FV_SUBMIT BPF_RB_NO_WAKEUP
BPF_RINGBUF_OUTPUT(fv_events, FV_RINGBUF_PAGES);

/* skbs being followed, by address. Added when a sighting of an untracked skb
 * matches the filter; removed when the skb is dropped (kfree_skb), consumed
 * (consume_skb) or read by a socket (skb_copy_datagram_iovec); an LRU, as
 * sockets free skbs without a tracepoint too. So an entry can outlive its skb,
 * and the kernel may give the address to another packet: the entry keeps the
 * packet's identity (fv_ident), and a sighting whose identity differs is a new
 * packet. flags: 1, with FV_TRK_GAP while a sighting of it could not be
 * handed over (the ring buffer was full; its next event says so, FV_EV_GAP),
 * or with FV_TRK_REFUSED for a packet of a flow not followed (fv_admit),
 * which never reports. */
#define FV_TRK_GAP 2
#define FV_TRK_REFUSED 4
struct fv_trk {
    __u64 hdr;                  /* fv_hash of the bytes its last event carried; 0: none sent */
    __u32 ident;                /* fv_ident of the packet; 0: not known (no filter: nothing parsed) */
    __u8 flags;
    __u8 pad[3];
};
BPF_TABLE("lru_hash", __u64, struct fv_trk, fv_tracked, 65536);

/* [0] is 1 once an skb was entered in fv_tracked (never cleared): until then every hook knows,
 * from an array read instead of a hash lookup, that no skb is followed (the cost of a filter that
 * has matched nothing yet; consume_skb and the socket-read hook fire for every skb there is). */
BPF_ARRAY(fv_any_tracked, __u8, 1);

static __always_inline int fv_none_tracked(void)
{
    __u32 zero = 0;
    __u8 *any = fv_any_tracked.lookup(&zero);
    return !any || !*any;
}

static __always_inline void fv_track(__u64 key, struct fv_trk *v)
{
    __u32 zero = 0;
    fv_tracked.update(&key, v);
    __u8 *any = fv_any_tracked.lookup(&zero);
    if (any && !*any)
        *any = 1;
}

struct fv_flow {
    __u64 x[2], y[2];           /* the two endpoints' addresses, lower one first */
    __u16 px, py;               /* their ports */
    __u8 proto;
    __u8 pad[3];
};

/* Tuples of followed packets, direction-free: FV_FLOW_FOLLOWED, added for every
 * sighting of a followed packet (so NAT-rewritten tuples are in too); or
 * FV_FLOW_REFUSED, the same for the packets of a flow not followed, so that
 * neither its later packets nor its replies begin a journey. An LRU, nothing
 * removes entries. */
#define FV_FLOW_FOLLOWED 1
#define FV_FLOW_REFUSED 2
BPF_TABLE("lru_hash", struct fv_flow, __u8, fv_flows, 16384);

/* Every port of a tuple in fv_flows, set (never cleared): a packet neither of whose ports is
 * here cannot be a followed flow's, which an array lookup says without hashing the tuple. */
BPF_ARRAY(fv_ports, __u8, 65536);

/* Sightings the ring buffer had no room for, per CPU (userspace adds them). */
BPF_PERCPU_ARRAY(fv_lost, __u64, 1);

/* How full the ring buffer is, in bytes: [0] reserved by the programs (added
 * here), [1] read by userspace (which writes it after each poll). Past
 * FV_SHED_BYTES new flows are not followed (shed), so a flood costs whole
 * flows, while the flows already followed keep every sighting. */
BPF_ARRAY(fv_ring_use, __u64, 2);

/* Flows not followed, per CPU: [0] shed (the ring was past FV_SHED_BYTES when
 * they began), [1] left out by sampling (FV_SAMPLE: one in N followed). */
BPF_PERCPU_ARRAY(fv_refused, __u64, 2);

#ifndef FV_SHED_BYTES
#define FV_SHED_BYTES (FV_RINGBUF_PAGES * PAGE_SIZE / 2)
#endif
#define FV_REFUSE 2   /* fv_wanted: a packet of a flow not followed */

/* A record of n bytes took this much of the ring (its 8-byte header, rounded up to 8). */
static __always_inline void fv_reserved(__u64 n)
{
    __u32 zero = 0;
    __u64 *made = fv_ring_use.lookup(&zero);
    if (made)
        __sync_fetch_and_add(made, (n + 15) & ~7ULL);
}

/* May a new flow be followed? Not when sampling leaves it out, nor while the
 * ring is past FV_SHED_BYTES full; each refusal is counted. */
static __always_inline int fv_admit(void)
{
    __u32 zero = 0, one = 1, why = 0;
#ifdef FV_SAMPLE
    if (bpf_get_prandom_u32() % FV_SAMPLE) {
        why = 1;
        goto refuse;
    }
#endif
    __u64 *made = fv_ring_use.lookup(&zero), *read = fv_ring_use.lookup(&one);
    if (!made || !read || (__s64)(*made - *read) <= (__s64)FV_SHED_BYTES)
        return 1;
#ifdef FV_SAMPLE
refuse:
#endif
    {
        __u64 *n = fv_refused.lookup(&why);
        if (n)
            (*n)++;
    }
    return 0;
}

struct fv_ip4 {
    __u8 vihl, tos;
    __u16 tot_len, id, frag;
    __u8 ttl, protocol;
    __u16 check;
    __u32 saddr, daddr;
};

struct fv_ip6 {
    __u32 vtc_flow;
    __u16 plen;
    __u8 nexthdr, hop;
    __u64 saddr[2], daddr[2];
};

struct fv_level {
    __u64 a[2], b[2];           /* source, destination (IPv4 in a[0]/b[0]) */
    unsigned char *l4;          /* the transport header; 0: none (a later fragment) */
    __u16 sport, dport;         /* host order */
    __u16 ipid, iplen;          /* IPv4 ID and total length (IPv6: flow label's low bits, payload length) */
    __u8 proto;                 /* IP protocol; 0: no IP header found */
    __u8 v6;
    __u8 ports;                 /* sport/dport valid */
};

/* Parse an IP header at p (ethertype etype, host order); *l4 gets the transport header. */
static __always_inline int fv_l3(unsigned char *p, __u16 etype, struct fv_level *l, unsigned char **l4)
{
    __u16 ports[2] = {};
    int have_ports = 0;
    if (etype == 0x0800) {
        struct {
            struct fv_ip4 ip;
            __u16 ports[2];     /* where the ports are when the header has no options: one read */
        } h = {};
        int whole = bpf_probe_read_kernel(&h, sizeof(h), p) == 0;
        if (!whole && bpf_probe_read_kernel(&h.ip, sizeof(h.ip), p) != 0)
            return 0;
        struct fv_ip4 ip = h.ip;
        if ((ip.vihl >> 4) != 4)
            return 0;
        if (whole && (ip.vihl & 0x0f) == 5) {
            ports[0] = h.ports[0];
            ports[1] = h.ports[1];
            have_ports = 1;
        }
        l->proto = ip.protocol;
        l->a[0] = ip.saddr;
        l->b[0] = ip.daddr;
        l->ipid = ip.id;
        l->iplen = ip.tot_len;
        if (FV_NTOHS(ip.frag) & 0x1fff)
            return 1;           /* a later fragment: no ports in it */
        *l4 = p + ((ip.vihl & 0x0f) << 2);
    } else if (etype == 0x86DD) {
        struct fv_ip6 ip6 = {};
        if (bpf_probe_read_kernel(&ip6, sizeof(ip6), p) != 0)
            return 0;
        l->v6 = 1;
        l->proto = ip6.nexthdr;
        l->ipid = (__u16)(ip6.vtc_flow >> 16);   /* network order: the flow label's low 16 bits */
        l->iplen = ip6.plen;
        l->a[0] = ip6.saddr[0];
        l->a[1] = ip6.saddr[1];
        l->b[0] = ip6.daddr[0];
        l->b[1] = ip6.daddr[1];
        *l4 = p + 40;
    } else {
        return 0;
    }
    l->l4 = *l4;
    if (l->proto == 6 || l->proto == 17 || l->proto == 132) {
        if (have_ports || bpf_probe_read_kernel(ports, sizeof(ports), *l4) == 0) {
            l->sport = FV_NTOHS(ports[0]);
            l->dport = FV_NTOHS(ports[1]);
            l->ports = 1;
        }
    }
    return 1;
}

/* The outer headers at the network header, and under VXLAN the inner ones. */
static __always_inline int fv_parse(unsigned char *nhp, __u16 etype, struct fv_level *outer, struct fv_level *inner,
                                    unsigned char **inner_l2)
{
    unsigned char *l4 = 0;
    if (!fv_l3(nhp, etype, outer, &l4))
        return 0;
    if (outer->proto == 17 && outer->ports && (outer->dport == 4789 || outer->dport == 8472) && l4) {
        struct {
            __u8 vxlan[8];
            __u8 eth[14];
        } h = {};               /* the VXLAN header and the inner Ethernet header: one read */
        __u16 inner_type = 0;
        unsigned char *l4i = 0;
        if (bpf_probe_read_kernel(&h, sizeof(h), l4 + 8) != 0 || !(h.vxlan[0] & 0x08))
            return 1;
        __builtin_memcpy(&inner_type, &h.eth[12], 2);
        if (fv_l3(l4 + 16 + 14, FV_NTOHS(inner_type), inner, &l4i)) {
            *inner_l2 = l4 + 16;
            return 2;
        }
    }
    return 1;
}

/* Does one header level meet every criterion given? */
static __always_inline int fv_match(struct fv_level *l)
{
    if (!l->proto)
        return 0;
#ifdef FV_PROTO
    if (l->proto != FV_PROTO && !(FV_PROTO == 1 && l->proto == 58))
        return 0;
#endif
#ifdef FV_DPORT
    if (!l->ports || l->dport != FV_DPORT)
        return 0;
#endif
#ifdef FV_SPORT
    if (!l->ports || l->sport != FV_SPORT)
        return 0;
#endif
#ifdef FV_PORT
    if (!l->ports || (l->sport != FV_PORT && l->dport != FV_PORT))
        return 0;
#endif
#ifdef FV_HOST4
    if (l->v6 || (l->a[0] != FV_HOST4 && l->b[0] != FV_HOST4))
        return 0;
#endif
#ifdef FV_HOST6_0
    if (!l->v6 || !((l->a[0] == FV_HOST6_0 && l->a[1] == FV_HOST6_1) ||
                    (l->b[0] == FV_HOST6_0 && l->b[1] == FV_HOST6_1)))
        return 0;
#endif
    return 1;
}

/* The level's tuple, direction-free, into f (all of it: padding too, as a hash key must be). */
static __always_inline void fv_flow_of(struct fv_level *l, struct fv_flow *f)
{
    __builtin_memset(f, 0, sizeof(*f));
    int swap = l->a[0] > l->b[0] ||
               (l->a[0] == l->b[0] && (l->a[1] > l->b[1] || (l->a[1] == l->b[1] && l->sport > l->dport)));
    if (swap) {
        f->x[0] = l->b[0]; f->x[1] = l->b[1]; f->px = l->dport;
        f->y[0] = l->a[0]; f->y[1] = l->a[1]; f->py = l->sport;
    } else {
        f->x[0] = l->a[0]; f->x[1] = l->a[1]; f->px = l->sport;
        f->y[0] = l->b[0]; f->y[1] = l->b[1]; f->py = l->dport;
    }
    f->proto = l->proto;
}

static __always_inline void fv_port_add(__u16 port)
{
    __u32 k = port;
    __u8 *p = fv_ports.lookup(&k);
    if (p)
        *p = 1;
}

/* Could this level's tuple be in fv_flows? (Without ports, as for ICMP: it could.) */
static __always_inline int fv_port_seen(struct fv_level *l)
{
    if (!l->ports)
        return 1;
    __u32 a = l->sport, b = l->dport;
    __u8 *pa = fv_ports.lookup(&a);
    if (pa && *pa)
        return 1;
    __u8 *pb = fv_ports.lookup(&b);
    return pb && *pb;
}

/* The event is filled in here first (fv_fill), then sent whole or only its head: too large
 * for the BPF stack. */
BPF_PERCPU_ARRAY(fv_scratch_event, struct fv_event, 1);

/* Send the sighting filled in at src: all of it, or its first FV_EVENT_HEAD bytes (head_only: no
 * bytes, or the same bytes as the skb's previous event). 0: the ring buffer had no room. */
static __always_inline int fv_send_plain(struct fv_event *src, int head_only)
{
    if (head_only) {
        void *h = fv_events.ringbuf_reserve(FV_EVENT_HEAD);
        if (!h)
            return 0;
        fv_reserved(FV_EVENT_HEAD);
        __builtin_memcpy(h, src, FV_EVENT_HEAD);
        fv_events.ringbuf_submit(h, FV_SUBMIT);
        return 1;
    }
    struct fv_event *e = fv_events.ringbuf_reserve(sizeof(struct fv_event));
    if (!e)
        return 0;
    fv_reserved(sizeof(struct fv_event));
    __builtin_memcpy(e, src, sizeof(struct fv_event));
    fv_events.ringbuf_submit(e, FV_SUBMIT);
    return 1;
}

#ifdef FV_HOOKS
#include "fv_hooks.h"
#else
/* No optional hooks compiled in: every event is a plain one. */
static __always_inline int fv_send(__u64 key, __u8 hook, struct fv_event *src, int head_only)
{
    return fv_send_plain(src, head_only);
}
#endif

/* A 64-bit hash of the bytes an event carries (never 0): equal hashes at two sightings of one
 * skb say its headers did not change between them. */
static __always_inline __u64 fv_hash(struct fv_event *e)
{
    __u64 h = 0xcbf29ce484222325ULL ^ e->caplen ^ ((__u64)e->l2 << 16);
    __u64 *w = (__u64 *)e->data;
#pragma unroll
    for (int i = 0; i < FV_SNAP / 8; i++) {
        h ^= w[i];
        h *= 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return h | 1;
}

/* What a sighting reads of the skb and its device, in three steps, so that a packet the
 * filter does not want costs only the first: the headers' place (fv_read_hdr), the linear data
 * (fv_read_lin: for the expression and the identity), and the rest for the event (fv_read_rest). */
struct fv_skb {
    void *skb, *dev;
    unsigned char *head, *data;
    __u32 netns, ifindex, len, data_len, mark;
    __u16 mac, nh, proto;
    __u8 lin, dev_read;
    __u8 none_tracked;          /* fv_none_tracked() when the sighting began */
};

static __always_inline void fv_read_dev(struct fv_skb *s)
{
    void *net = 0;
    if (s->dev_read)
        return;
    s->dev_read = 1;
    FV_READ(s->dev, s->skb, FV_SKB_DEV);
    if (s->dev) {
        FV_READ(net, s->dev, FV_DEV_ND_NET);
        if (net)
            FV_READ(s->netns, net, FV_NET_INUM);
    }
}

#ifdef FV_SKB_SPAN_START
/* protocol, network_header, mac_header, head and data lie within FV_SKB_SPAN_LEN bytes (live.py
 * checked, and that each is aligned): one read takes them all. */
#define FV_SPAN_GET(dst, span, off) __builtin_memcpy(&(dst), (char *)(span) + ((off) - FV_SKB_SPAN_START), sizeof(dst))
#endif

static __always_inline void fv_read_hdr(void *skb, struct fv_skb *s)
{
    s->skb = skb;
#ifdef FV_SKB_SPAN_START
    __u64 span[(FV_SKB_SPAN_LEN + 7) / 8] = {};
    if (bpf_probe_read_kernel(span, FV_SKB_SPAN_LEN, skb + FV_SKB_SPAN_START) == 0) {
        FV_SPAN_GET(s->head, span, FV_SKB_HEAD);
        FV_SPAN_GET(s->nh, span, FV_SKB_NETWORK_HEADER);
        FV_SPAN_GET(s->proto, span, FV_SKB_PROTOCOL);
        FV_SPAN_GET(s->data, span, FV_SKB_DATA);
        FV_SPAN_GET(s->mac, span, FV_SKB_MAC_HEADER);
        s->lin = 1;   /* data and mac read; len and data_len are fv_read_lin's */
    }
#else
    FV_READ(s->head, skb, FV_SKB_HEAD);
    FV_READ(s->nh, skb, FV_SKB_NETWORK_HEADER);
    FV_READ(s->proto, skb, FV_SKB_PROTOCOL);
#endif
#ifdef FV_NETNS
    fv_read_dev(s);
#endif
}

/* The linear data's place and length (s->lin: 1 data and mac read, 2 all of it). */
static __always_inline void fv_read_lin(struct fv_skb *s)
{
    if (s->lin == 2)
        return;
    if (!s->lin) {
        FV_READ(s->data, s->skb, FV_SKB_DATA);
        FV_READ(s->mac, s->skb, FV_SKB_MAC_HEADER);
    }
    s->lin = 2;
    FV_READ(s->len, s->skb, FV_SKB_LEN);
    FV_READ(s->data_len, s->skb, FV_SKB_DATA_LEN);
}

static __always_inline void fv_read_rest(struct fv_skb *s)
{
    fv_read_lin(s);
    fv_read_dev(s);
    if (s->dev)
        FV_READ(s->ifindex, s->dev, FV_DEV_IFINDEX);
    FV_READ(s->mark, s->skb, FV_SKB_MARK);
}

#ifdef FV_EXPR
/* The tcpdump expression, translated from libpcap's classic BPF by flowviz.pcapexpr, goes here. */
/* FV_EXPR_FUNCTION */

/* The expression on the Ethernet frame at l2, with its bytes up to the linear data's end. */
static __always_inline int fv_expr_at(unsigned char *l2, unsigned char *end, __u32 wirelen)
{
    if (!l2 || l2 >= end)
        return 0;
    return fv_expr(l2, (__u32)(end - l2), wirelen);
}
#endif

#ifndef FV_ALL
/* Do the headers match the filter (and the tcpdump expression, when there is one)? */
static __always_inline int fv_hit(struct fv_skb *s, struct fv_level *outer, struct fv_level *inner, int levels,
                                  unsigned char *inner_l2)
{
    int hit = fv_match(outer) || (levels == 2 && fv_match(inner));
#ifdef FV_EXPR
    if (hit) {
        fv_read_lin(s);
        /* an Ethernet header in front of the network header, or no frame the expression can read */
        unsigned char *end = s->data + (s->len - s->data_len);
        unsigned char *l2 = s->mac != 0xffff && s->nh >= s->mac + 14 ? s->head + s->mac : 0;
        __u32 wire = l2 ? s->len + (__u32)(s->data - l2) : 0;
        hit = fv_expr_at(l2, end, wire) ||
              (levels == 2 && fv_expr_at(inner_l2, end, wire - (__u32)(inner_l2 - l2)));
    }
#endif
    return hit;
}
#endif

/* Is this level an ICMP error? The kernel may turn a followed packet into one in place (a VXLAN
 * device too small for it answers with the same skb: iptunnel_pmtud_build_icmp), so its identity
 * changes and it is still the followed skb. */
static __always_inline int fv_icmp_error(struct fv_level *l)
{
    __u8 type = 0;
    if (!l->l4 || (l->proto != 1 && l->proto != 58) || bpf_probe_read_kernel(&type, 1, l->l4) != 0)
        return 0;
    return l->proto == 1 ? (type == 3 || type == 11 || type == 12) : (type >= 1 && type <= 4);
}

/* What stays the same about one packet along its way, where NAT rewrites addresses, ports,
 * checksums and TTL and VXLAN wraps it: the innermost IP header's ID (IPv6: flow label) and
 * length, its protocol, and a word that differs between packets of one flow (TCP: the sequence
 * number; UDP: the payload's last 4 bytes; ICMP: the sequence, as NAT rewrites its ID). Never 0. */
static __always_inline __u32 fv_ident(struct fv_skb *s, struct fv_level *l)
{
    fv_read_lin(s);
    unsigned char *end = s->data + (s->len - s->data_len);   /* the linear data's end */
    unsigned char *at = 0;
    __u32 word = 0;
    if (l->l4 && l->proto == 6) {
        at = l->l4 + 4;
    } else if (l->l4 && (l->proto == 1 || l->proto == 58)) {
        at = l->l4 + 4;
    } else if (l->l4 && l->proto == 17) {
        __u16 ulen = 0;
        bpf_probe_read_kernel(&ulen, 2, l->l4 + 4);
        ulen = FV_NTOHS(ulen);
        if (ulen >= 12)
            at = l->l4 + ulen - 4;
    }
    if (at && at + 4 <= end)
        bpf_probe_read_kernel(&word, 4, at);
    if (l->proto == 1 || l->proto == 58)
        word &= 0xffff0000;   /* keep the sequence (bytes 6-7), not the ID */
    return (((__u32)l->ipid << 16) ^ l->iplen ^ ((__u32)l->proto << 24) ^ word) | 1;
}

/* A packet is admitted or refused once, though the kernel may hand it on in another sk_buff
 * with a tuple no earlier sighting showed (real IPVS in ingress_sbox, Debian's 6.1: the request
 * is untracked between the sandbox's two ends, its tuple rewritten). Its identity keeps the
 * decision for FV_DECIDED_NS; a second decision would count it twice, and could follow half of
 * it. (Two packets of one identity within that time share a decision: a flow not counted.) */
#define FV_DECIDED_NS 1000000000ULL
struct fv_decision {
    __u64 ts;
    __u8 refused;
    __u8 pad[7];
};
BPF_TABLE("lru_hash", __u32, struct fv_decision, fv_decided, 4096);

static __always_inline int fv_decide(__u32 ident)
{
    __u64 now = bpf_ktime_get_ns();
    struct fv_decision *was = fv_decided.lookup(&ident);
    if (was && now - was->ts < FV_DECIDED_NS)
        return was->refused;
    struct fv_decision d = {.ts = now, .refused = !fv_admit()};
    fv_decided.update(&ident, &d);
    return d.refused;
}

/* Is this sighting followed? 1: yes; 0: no; FV_REFUSE: it belongs to a flow
 * not followed (shed or sampled out). A tracked skb is (refused: still not),
 * unless its identity shows another packet at the same address (sockets free
 * skbs without a tracepoint, and the address comes back with the next packet);
 * an untracked one when its tuple is a followed flow's (a reply, a later
 * packet), or when its outer or VXLAN-inner headers match the filter and
 * fv_admit takes the new flow. The sighting's tuple joins fv_flows as followed
 * or refused, so NAT-rewritten tuples are in too. With FV_ALL every packet is a
 * flow of its own: no tuples, fv_admit for each new packet. *ident gets the
 * packet's identity (0: not an IP packet); *t is cleared when its entry was
 * another packet's. */
static __always_inline int fv_wanted(struct fv_skb *s, struct fv_trk **t, __u32 *ident)
{
    int refused = *t ? ((*t)->flags & FV_TRK_REFUSED) : 0;
    struct fv_level outer = {}, inner = {};
    unsigned char *inner_l2 = 0;
    int levels = 0;
    *ident = 0;
    if (s->head && s->nh != 0xffff)
        levels = fv_parse(s->head + s->nh, FV_NTOHS(s->proto), &outer, &inner, &inner_l2);
    struct fv_level *last = levels == 2 ? &inner : &outer;
    if (*t && levels) {
        *ident = fv_ident(s, last);
        if ((*t)->ident && (*t)->ident != *ident && !fv_icmp_error(last)) {
            *t = 0;          /* the address is another packet's now */
            refused = 0;
        }
    }
#ifdef FV_ALL
    if (!*t) {
        if (levels && !*ident)
            *ident = fv_ident(s, last);
        if (!fv_admit())
            return FV_REFUSE;
    }
    return refused ? FV_REFUSE : 1;
#else
    __u8 followed = FV_FLOW_FOLLOWED, shed = FV_FLOW_REFUSED;
    struct fv_flow flow;
    int have_flow = 0;   /* the tuple is worked out when it is looked up or entered, not for every packet */
    if (!*t) {
#ifdef FV_NETNS
        if (s->netns != FV_NETNS)
            return 0;
#endif
        if (!levels)
            return 0;
        /* no followed or refused flow before anything was tracked: no lookups */
        __u8 *known = 0;
        if (!s->none_tracked && fv_port_seen(last)) {
            fv_flow_of(last, &flow);
            have_flow = 1;
            known = fv_flows.lookup(&flow);
        }
        if (known)
            refused = *known == FV_FLOW_REFUSED;
        else if (!fv_hit(s, &outer, &inner, levels, inner_l2))
            return 0;
        *ident = fv_ident(s, last);
        if (!known)
            refused = fv_decide(*ident);
    }
    if (levels) {
        if (!have_flow)
            fv_flow_of(last, &flow);
        if (refused)
            fv_flows.insert(&flow, &shed);   /* never over a followed flow's entry */
        else
            fv_flows.update(&flow, &followed);
        fv_port_add(last->sport);
        fv_port_add(last->dport);
    }
    return refused ? FV_REFUSE : 1;
#endif
}

/* The event: where, what, and the packet's first bytes (the linear part only). */
static __always_inline void fv_fill(struct fv_event *e, __u64 key, __u8 hook, __u32 reason, struct fv_skb *s)
{
    e->ts_ns = bpf_ktime_get_ns();
    e->skb = key;
    e->netns = s->netns;
    e->ifindex = s->ifindex;
    e->len = s->len;
    e->mark = s->mark;
    e->reason = reason;
    e->cpu = bpf_get_smp_processor_id();
    e->hook = hook;
    e->ifname[0] = 0;
    __builtin_memset(e->data, 0, FV_SNAP);   /* fv_hash reads all of it */
    if (s->dev)
        bpf_probe_read_kernel(e->ifname, sizeof(e->ifname), s->dev + FV_DEV_NAME);

    /* copy from the Ethernet header when there is one, else from the IP header */
    unsigned char *start = 0;
    e->l2 = 0;
    if (s->head && s->mac != 0xffff && s->nh != 0xffff && s->nh >= s->mac + 14) {
        start = s->head + s->mac;
        e->l2 = 1;
    } else if (s->head && s->nh != 0xffff) {
        start = s->head + s->nh;
    }
    __u32 n = 0;
    if (start && hook != FV_HOOK_FREE) {
        /* only the linear part: a TCP segment's payload sits in page fragments, and the head
         * buffer beyond the linear end holds whatever was there before */
        __u64 avail = (__u64)(s->data - start) + (s->len - s->data_len);
        n = avail < FV_SNAP ? (__u32)avail : FV_SNAP;
        n &= 0xff;
        if (n > FV_SNAP)
            n = FV_SNAP;
        if (bpf_probe_read_kernel(e->data, n, start) != 0)
            n = 0;
    }
    if (start)   /* the length from where the copy starts: after eth_type_trans skb->len leaves out L2 */
        e->len = (__u32)((__s64)s->len + (__s64)(s->data - start));
    e->caplen = n;
}

/* Fill in the sighting and send it: compact (FV_EV_COMPACT, no bytes) when its bytes hash as the
 * skb's last event's did (prev). The skb's entry t (0 at its end) keeps this event's hash, or the
 * gap when the ring buffer had no room (fv_lost counts it). */
static __always_inline int fv_report(__u64 key, __u8 hook, __u32 reason, struct fv_skb *s, __u8 gap, __u64 prev,
                                     struct fv_trk *t)
{
    __u32 zero = 0;
    struct fv_event *e = fv_scratch_event.lookup(&zero);
    if (!e)
        return 0;
    fv_fill(e, key, hook, reason, s);
    e->nnotes = 0;
    e->flags = gap ? FV_EV_GAP : 0;
    __u64 hash = e->caplen ? fv_hash(e) : 0;
#ifndef FV_NO_COMPACT
    if (hash && hash == prev && !gap)
        e->flags |= FV_EV_COMPACT;
#endif
    int sent = fv_send(key, hook, e, (e->flags & FV_EV_COMPACT) || !e->caplen);
    if (!sent) {
        __u64 *lost = fv_lost.lookup(&zero);
        if (lost)
            (*lost)++;
    }
    if (t) {
        if (sent) {
            t->hdr = hash;
        } else {
            t->flags |= FV_TRK_GAP;
            t->hdr = 0;
        }
    }
    return 0;
}

static __always_inline int fv_sighting(void *skb, __u8 hook, __u32 reason)
{
    __u64 key = (__u64)skb;
    int none = fv_none_tracked();
    struct fv_trk *t = none ? 0 : fv_tracked.lookup(&key);
    __u8 gap = 0;
    __u64 prev = 0;             /* fv_hash of the bytes the skb's last event carried */
    int ending = hook == FV_HOOK_DROP || hook == FV_HOOK_FREE;
    struct fv_skb s = {};
    s.none_tracked = none;
    if (ending) {
        if (!t)
            return 0;           /* only followed packets report their end */
        __u8 flags = t->flags;
        prev = t->hdr;
        fv_tracked.delete(&key);
        if (flags & FV_TRK_REFUSED)
            return 0;
        gap = flags & FV_TRK_GAP;
        fv_read_hdr(skb, &s);
    } else {
        fv_read_hdr(skb, &s);
        __u32 ident = 0;
        int stale = t != 0;
        int want = fv_wanted(&s, &t, &ident);
        stale = stale && !t;
        if (want != 1) {
            if (want == FV_REFUSE && !t) {   /* its later sightings are not followed either */
                struct fv_trk no = {.ident = ident, .flags = 1 | FV_TRK_REFUSED};
                fv_track(key, &no);
            } else if (stale) {
                fv_tracked.delete(&key);
            }
            return 0;
        }
        gap = t ? (t->flags & FV_TRK_GAP) : 0;
        prev = t ? t->hdr : 0;
        if (!t || gap || (ident && t->ident != ident)) {   /* tracked from now on; this event reports the gap */
            struct fv_trk on = {.ident = ident, .flags = 1};
            fv_track(key, &on);
            t = fv_tracked.lookup(&key);
            prev = 0;
        }
    }
    fv_read_rest(&s);
    return fv_report(key, hook, reason, &s, gap, prev, ending ? 0 : t);
}

/* Entry points: live.py compiles one set, -DFV_TP_PERF or -DFV_TP_RAW (each copy of fv_sighting
 * costs the compiler ~0.07 s); with neither, both (doctor loads both). */
#ifndef FV_TP_RAW
int fv_rx(void *ctx)
{
    return fv_sighting(*(void **)(ctx + FV_TP_RX_SKB), FV_HOOK_RX, 0);
}

int fv_tx(void *ctx)
{
    return fv_sighting(*(void **)(ctx + FV_TP_TX_SKB), FV_HOOK_TX, 0);
}

int fv_drop(void *ctx)
{
    return fv_sighting(*(void **)(ctx + FV_TP_DROP_SKB), FV_HOOK_DROP, *(__u32 *)(ctx + FV_TP_DROP_REASON));
}

int fv_free(void *ctx)
{
    return fv_sighting(*(void **)(ctx + FV_TP_FREE_SKB), FV_HOOK_FREE, 0);
}
#endif /* !FV_TP_RAW */

/* Raw tracepoints: ctx is the tracepoint's arguments, a u64 each (struct bpf_raw_tracepoint_args). */
#define FV_RAW_ARG(ctx, n) (((__u64 *)(ctx))[n])

#ifndef FV_TP_PERF
int fv_rx_raw(void *ctx)
{
    return fv_sighting((void *)FV_RAW_ARG(ctx, 0), FV_HOOK_RX, 0);
}

int fv_tx_raw(void *ctx)
{
    return fv_sighting((void *)FV_RAW_ARG(ctx, 0), FV_HOOK_TX, 0);
}

int fv_drop_raw(void *ctx)
{
    return fv_sighting((void *)FV_RAW_ARG(ctx, 0), FV_HOOK_DROP, (__u32)FV_RAW_ARG(ctx, 2));   /* (skb, location, reason) */
}

int fv_free_raw(void *ctx)
{
    return fv_sighting((void *)FV_RAW_ARG(ctx, 0), FV_HOOK_FREE, 0);
}
#endif /* !FV_TP_PERF */

/* A socket reader copies a packet's data out (skb:skb_copy_datagram_iovec): no device sees that
 * skb again, and sockets free what they read without consume_skb (UDP's skb_consume_udp, TCP's
 * __kfree_skb), so a followed or refused skb is forgotten here. Left in fv_tracked, the next skb
 * allocated at its address would inherit its tracking: followed with no filter asking, or refused
 * without being counted. Sends nothing. */
static __always_inline int fv_delivered(void *skb)
{
    __u64 key = (__u64)skb;
    if (!fv_none_tracked())
        fv_tracked.delete(&key);
    return 0;
}

#ifndef FV_TP_RAW
int fv_copy(void *ctx)
{
    return fv_delivered(*(void **)(ctx + FV_TP_COPY_SKB));
}
#endif

#ifndef FV_TP_PERF
int fv_copy_raw(void *ctx)
{
    return fv_delivered((void *)FV_RAW_ARG(ctx, 0));
}
#endif
