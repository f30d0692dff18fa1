/* flowviz live tracer: one sighting per device crossing, from tracepoints.
 *
 * Hooks (stable tracepoints, present on every 4.x+ kernel, cheaper than
 * kprobes): net:netif_receive_skb (rx), net:net_dev_start_xmit (tx),
 * net:netif_rx (rx, queued), skb:kfree_skb (drop + reason), skb:consume_skb
 * (end of life). Each has two entry points: fv_X for the perf tracepoint (the
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

/* Sightings for userspace. Reserved and submitted per event. */
BPF_RINGBUF_OUTPUT(fv_events, FV_RINGBUF_PAGES);

/* skbs being followed. Added when a sighting of an untracked skb matches the
 * filter; removed when the skb is dropped (kfree_skb) or consumed
 * (consume_skb); an LRU in case such an end is never seen. The value is 1,
 * or FV_TRK_GAP too while a sighting of it could not be handed over (the ring
 * buffer was full): its next event says so (FV_EV_GAP). */
#define FV_TRK_GAP 2
BPF_TABLE("lru_hash", __u64, __u8, fv_tracked, 65536);

struct fv_flow {
    __u64 x[2], y[2];           /* the two endpoints' addresses, lower one first */
    __u16 px, py;               /* their ports */
    __u8 proto;
    __u8 pad[3];
};

/* Tuples of followed packets, direction-free. Added for every sighting of a
 * followed packet (so NAT-rewritten tuples are in too); an LRU, nothing
 * removes entries. */
BPF_TABLE("lru_hash", struct fv_flow, __u8, fv_flows, 16384);

/* Sightings the ring buffer had no room for, per CPU (userspace adds them). */
BPF_PERCPU_ARRAY(fv_lost, __u64, 1);

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
    __u16 sport, dport;         /* host order */
    __u8 proto;                 /* IP protocol; 0: no IP header found */
    __u8 v6;
    __u8 ports;                 /* sport/dport valid */
};

/* Parse an IP header at p (ethertype etype, host order); *l4 gets the transport header. */
static __always_inline int fv_l3(unsigned char *p, __u16 etype, struct fv_level *l, unsigned char **l4)
{
    if (etype == 0x0800) {
        struct fv_ip4 ip = {};
        if (bpf_probe_read_kernel(&ip, sizeof(ip), p) != 0 || (ip.vihl >> 4) != 4)
            return 0;
        l->proto = ip.protocol;
        l->a[0] = ip.saddr;
        l->b[0] = ip.daddr;
        if (FV_NTOHS(ip.frag) & 0x1fff)
            return 1;           /* a later fragment: no ports in it */
        *l4 = p + ((ip.vihl & 0x0f) << 2);
    } else if (etype == 0x86DD) {
        struct fv_ip6 ip6 = {};
        if (bpf_probe_read_kernel(&ip6, sizeof(ip6), p) != 0)
            return 0;
        l->v6 = 1;
        l->proto = ip6.nexthdr;
        l->a[0] = ip6.saddr[0];
        l->a[1] = ip6.saddr[1];
        l->b[0] = ip6.daddr[0];
        l->b[1] = ip6.daddr[1];
        *l4 = p + 40;
    } else {
        return 0;
    }
    if (l->proto == 6 || l->proto == 17 || l->proto == 132) {
        __u16 ports[2] = {};
        if (bpf_probe_read_kernel(ports, sizeof(ports), *l4) == 0) {
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
        __u8 flags = 0;
        __u16 inner_type = 0;
        unsigned char *l4i = 0;
        if (bpf_probe_read_kernel(&flags, 1, l4 + 8) != 0 || !(flags & 0x08))
            return 1;
        if (bpf_probe_read_kernel(&inner_type, 2, l4 + 16 + 12) != 0)
            return 1;
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

static __always_inline void fv_flow_of(struct fv_level *l, struct fv_flow *f)
{
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

#ifdef FV_HOOKS
#include "fv_hooks.h"
#else
/* No optional hooks compiled in: every event is a plain one. */
static __always_inline struct fv_event *fv_reserve(__u64 key, __u8 hook)
{
    struct fv_event *e = fv_events.ringbuf_reserve(sizeof(struct fv_event));
    if (e)
        e->nnotes = 0;
    return e;
}
#endif

/* What a sighting reads of the skb and its device. */
struct fv_skb {
    void *dev;
    unsigned char *head, *data;
    __u32 netns, ifindex, len, data_len, mark;
    __u16 mac, nh, proto;
};

static __always_inline void fv_read_skb(void *skb, struct fv_skb *s)
{
    void *net = 0;
    FV_READ(s->dev, skb, FV_SKB_DEV);
    if (s->dev) {
        FV_READ(s->ifindex, s->dev, FV_DEV_IFINDEX);
        FV_READ(net, s->dev, FV_DEV_ND_NET);
        if (net)
            FV_READ(s->netns, net, FV_NET_INUM);
    }
    FV_READ(s->head, skb, FV_SKB_HEAD);
    FV_READ(s->data, skb, FV_SKB_DATA);
    FV_READ(s->mac, skb, FV_SKB_MAC_HEADER);
    FV_READ(s->nh, skb, FV_SKB_NETWORK_HEADER);
    FV_READ(s->proto, skb, FV_SKB_PROTOCOL);
    FV_READ(s->len, skb, FV_SKB_LEN);
    FV_READ(s->data_len, skb, FV_SKB_DATA_LEN);
    FV_READ(s->mark, skb, FV_SKB_MARK);
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

/* Is this sighting followed? A tracked skb always is; an untracked one when its outer or
 * VXLAN-inner headers match the filter, or its tuple is a followed flow's (a reply, a later
 * packet). A followed sighting's tuple joins fv_flows, so NAT-rewritten tuples are in too. */
static __always_inline int fv_wanted(struct fv_skb *s, int tracked)
{
#ifdef FV_ALL
    return 1;
#else
    __u8 one = 1;
    struct fv_level outer = {}, inner = {};
    unsigned char *inner_l2 = 0;
    int levels = 0;
    if (s->head && s->nh != 0xffff)
        levels = fv_parse(s->head + s->nh, FV_NTOHS(s->proto), &outer, &inner, &inner_l2);
    struct fv_level *last = levels == 2 ? &inner : &outer;
    struct fv_flow flow = {};
    __builtin_memset(&flow, 0, sizeof(flow));
    if (levels)
        fv_flow_of(last, &flow);
    if (!tracked) {
#ifdef FV_NETNS
        if (s->netns != FV_NETNS)
            return 0;
#endif
        if (!levels)
            return 0;
        int hit = fv_match(&outer) || (levels == 2 && fv_match(&inner));
#ifdef FV_EXPR
        if (hit) {
            /* an Ethernet header in front of the network header, or no frame the expression can read */
            unsigned char *end = s->data + (s->len - s->data_len);
            unsigned char *l2 = s->mac != 0xffff && s->nh >= s->mac + 14 ? s->head + s->mac : 0;
            __u32 wire = l2 ? s->len + (__u32)(s->data - l2) : 0;
            hit = fv_expr_at(l2, end, wire) ||
                  (levels == 2 && fv_expr_at(inner_l2, end, wire - (__u32)(inner_l2 - l2)));
        }
#endif
        if (!hit && !fv_flows.lookup(&flow))
            return 0;
    }
    if (levels)
        fv_flows.update(&flow, &one);
    return 1;
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

static __always_inline int fv_sighting(void *skb, __u8 hook, __u32 reason)
{
    __u64 key = (__u64)skb;
    __u8 one = 1;
    __u8 *t = fv_tracked.lookup(&key);
    int tracked = t != 0;
    __u8 gap = t ? (*t & FV_TRK_GAP) : 0;
    int ending = hook == FV_HOOK_DROP || hook == FV_HOOK_FREE;
    if (ending && !tracked)
        return 0;               /* only followed packets report their end */
    struct fv_skb s = {};
    fv_read_skb(skb, &s);
    if (!ending && !fv_wanted(&s, tracked))
        return 0;
    if (ending)
        fv_tracked.delete(&key);
    else if (!tracked || gap)
        fv_tracked.update(&key, &one);   /* tracked, and this event will report the gap */

    struct fv_event *e = fv_reserve(key, hook);
    if (!e) {
        __u32 zero = 0;
        __u64 *lost = fv_lost.lookup(&zero);
        if (lost)
            (*lost)++;
        if (!ending) {
            __u8 lost_one = 1 | FV_TRK_GAP;
            fv_tracked.update(&key, &lost_one);
        }
        return 0;
    }
    fv_fill(e, key, hook, reason, &s);
    e->flags = gap ? FV_EV_GAP : 0;
    fv_events.ringbuf_submit(e, 0);
    return 0;
}

int fv_rx(void *ctx)
{
    return fv_sighting(*(void **)(ctx + FV_TP_RX_SKB), FV_HOOK_RX, 0);
}

int fv_tx(void *ctx)
{
    return fv_sighting(*(void **)(ctx + FV_TP_TX_SKB), FV_HOOK_TX, 0);
}

int fv_rx_enq(void *ctx)
{
    return fv_sighting(*(void **)(ctx + FV_TP_RXQ_SKB), FV_HOOK_RX_ENQUEUE, 0);
}

int fv_drop(void *ctx)
{
    return fv_sighting(*(void **)(ctx + FV_TP_DROP_SKB), FV_HOOK_DROP, *(__u32 *)(ctx + FV_TP_DROP_REASON));
}

int fv_free(void *ctx)
{
    return fv_sighting(*(void **)(ctx + FV_TP_FREE_SKB), FV_HOOK_FREE, 0);
}

/* Raw tracepoints: ctx is the tracepoint's arguments, a u64 each (struct bpf_raw_tracepoint_args). */
#define FV_RAW_ARG(ctx, n) (((__u64 *)(ctx))[n])

int fv_rx_raw(void *ctx)
{
    return fv_sighting((void *)FV_RAW_ARG(ctx, 0), FV_HOOK_RX, 0);
}

int fv_tx_raw(void *ctx)
{
    return fv_sighting((void *)FV_RAW_ARG(ctx, 0), FV_HOOK_TX, 0);
}

int fv_rx_enq_raw(void *ctx)
{
    return fv_sighting((void *)FV_RAW_ARG(ctx, 0), FV_HOOK_RX_ENQUEUE, 0);
}

int fv_drop_raw(void *ctx)
{
    return fv_sighting((void *)FV_RAW_ARG(ctx, 0), FV_HOOK_DROP, (__u32)FV_RAW_ARG(ctx, 2));   /* (skb, location, reason) */
}

int fv_free_raw(void *ctx)
{
    return fv_sighting((void *)FV_RAW_ARG(ctx, 0), FV_HOOK_FREE, 0);
}
