/* flowviz optional hooks: kprobes on IPVS, VXLAN, bridge and NAT functions.
 *
 * Compiled in (-DFV_HOOKS, and -DFV_HOOK_<GROUP> per group) only where the
 * running kernel has kprobes and the functions exist (stock distribution
 * kernels do; the module must be loaded). flowviz/sources/hooks.py decides,
 * passes every struct offset from the kernel's (or the module's split) BTF
 * and the argument registers' offsets in struct pt_regs as -D macros, and
 * attaches the programs below by name.
 *
 * A hook only annotates: for a followed skb (in fv_tracked) it appends a
 * struct fv_note to fv_notes; the skb's next sighting (fv_send) sends the
 * notes along with it and removes the entry. Kernel functions, from reading
 * Linux 6.1 (net/netfilter/ipvs, drivers/net/vxlan, net/bridge,
 * net/netfilter/nf_nat_core.c):
 *   ip_vs_nat_xmit(skb, cp, ...)      IPVS masquerade transmit: cp holds the client, the
 *                                     virtual service, the real server and dest->svc
 *   ip_vs_schedule() return           the connection the scheduler just created (new vs reused)
 *   ip_vs_out_hook(priv, skb, ..)     a reply's way out; ip_vs_conn_out_get() inside it
 *                                     returns the connection the reply belongs to
 *   vxlan_xmit_one(skb, dev, vni, rdst, ..)  the FDB's remote chosen for one copy
 *   vxlan_rcv(sk, skb)                a VXLAN packet reaching the tunnel socket
 *   br_forward(to, skb, ..)           a known destination: the FDB's port
 *   br_flood(br, skb, ..)             an unknown destination: every port
 *   nf_nat_inet_fn(priv, skb, state)  every NAT hook passes here: state->hook names it
 *                                     (nf_nat_packet, which also has it, can be inlined into it)
 *   nf_nat_manip_pkt(skb, ct, mtype, dir)    the rewrite itself, with the conntrack entry
 */

#define FV_ARG(ctx, off) (*(__u64 *)((char *)(ctx) + (off)))

struct fv_pending {
    __u32 count;
    __u32 pad;
    struct fv_note n[FV_MAX_NOTES];
};

/* Notes waiting for their skb's next sighting. Added by the hooks below,
 * removed by that sighting (fv_send) or the skb's end; an LRU in case
 * neither comes. */
BPF_TABLE("lru_hash", __u64, struct fv_pending, fv_notes, 4096);

/* A zeroed fv_pending to insert from: too large for the BPF stack. */
BPF_PERCPU_ARRAY(fv_scratch, struct fv_pending, 1);

/* The next free note slot for a followed skb, or 0 (not followed, or full). */
static __always_inline struct fv_note *fv_note_slot(__u64 key, __u8 kind)
{
    struct fv_trk *t = fv_tracked.lookup(&key);
    if (!t || (t->flags & FV_TRK_REFUSED))
        return 0;   /* not followed */
    struct fv_pending *p = fv_notes.lookup(&key);
    if (!p) {
        __u32 zero = 0;
        struct fv_pending *z = fv_scratch.lookup(&zero);
        if (!z)
            return 0;
        z->count = 0;
        fv_notes.update(&key, z);
        p = fv_notes.lookup(&key);
        if (!p)
            return 0;
    }
    __u32 i = p->count;
    if (i >= FV_MAX_NOTES)
        return 0;
    p->count = i + 1;
    struct fv_note *n = &p->n[i & (FV_MAX_NOTES - 1)];
    __builtin_memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->hook = 0xff;
    return n;
}

/* The event for a sighting: with the skb's pending notes when it has some. */
/* Send a sighting (filled in at src): with the skb's pending notes, whole, when it has some;
 * else as fv_send_plain does. 0: the ring buffer had no room. */
static __always_inline int fv_send(__u64 key, __u8 hook, struct fv_event *src, int head_only)
{
    struct fv_pending *p = fv_notes.lookup(&key);
    if (p && hook != FV_HOOK_FREE) {
        struct fv_event_noted *x = fv_events.ringbuf_reserve(sizeof(struct fv_event_noted));
        if (x) {
            fv_reserved(sizeof(struct fv_event_noted));
            __builtin_memcpy(&x->e, src, sizeof(struct fv_event));
            x->e.flags &= ~FV_EV_COMPACT;
            __u32 c = p->count;
            x->e.nnotes = c > FV_MAX_NOTES ? FV_MAX_NOTES : c;
            bpf_probe_read_kernel(x->notes, sizeof(x->notes), p->n);
            fv_events.ringbuf_submit(x, FV_SUBMIT);
        }
        fv_notes.delete(&key);
        return x != 0;
    }
    if (p)
        fv_notes.delete(&key);   /* the skb ends: its notes explain nothing now */
    return fv_send_plain(src, head_only);
}

#ifdef FV_HOOK_IPVS
/* Connections the scheduler created, until their first packet is sent (ip_vs_schedule's
 * return adds, ip_vs_nat_xmit removes; an LRU for connections never sent). */
BPF_TABLE("lru_hash", __u64, __u8, fv_ipvs_new, 1024);
/* A followed reply inside ip_vs_out_hook, by thread, for ip_vs_conn_out_get's return. */
BPF_HASH(fv_ipvs_out, __u64, __u64, 1024);

static __always_inline void fv_ipvs_fill(struct fv_note *n, void *cp)
{
    __u16 af = 0, proto = 0, cport = 0, vport = 0, dport = 0;
    void *dest = 0, *svc = 0, *sched = 0, *name = 0;
    FV_READ(af, cp, FV_IPVS_CONN_AF);
    FV_READ(proto, cp, FV_IPVS_CONN_PROTOCOL);
    FV_READ(cport, cp, FV_IPVS_CONN_CPORT);
    FV_READ(vport, cp, FV_IPVS_CONN_VPORT);
    FV_READ(dport, cp, FV_IPVS_CONN_DPORT);
    FV_READ(n->num, cp, FV_IPVS_CONN_FWMARK);
    bpf_probe_read_kernel(n->addr[0], 16, cp + FV_IPVS_CONN_CADDR);
    bpf_probe_read_kernel(n->addr[1], 16, cp + FV_IPVS_CONN_VADDR);
    bpf_probe_read_kernel(n->addr[2], 16, cp + FV_IPVS_CONN_DADDR);
    n->af = af;
    n->proto = proto;
    n->port[0] = FV_NTOHS(cport);
    n->port[1] = FV_NTOHS(vport);
    n->port[2] = FV_NTOHS(dport);
    FV_READ(dest, cp, FV_IPVS_CONN_DEST);
    if (dest)
        FV_READ(svc, dest, FV_IPVS_DEST_SVC);
    if (svc)
        FV_READ(sched, svc, FV_IPVS_SVC_SCHEDULER);
    if (sched)
        FV_READ(name, sched, FV_IPVS_SCHED_NAME);
    if (name)
        bpf_probe_read_kernel_str(n->name[0], sizeof(n->name[0]), name);
}

int fv_k_ipvs_xmit(void *ctx)
{
    __u64 skb = FV_ARG(ctx, FV_REG_ARG1);
    __u64 cp = FV_ARG(ctx, FV_REG_ARG2);
    struct fv_note *n = fv_note_slot(skb, FV_NOTE_IPVS);
    if (!n || !cp)
        return 0;
    fv_ipvs_fill(n, (void *)cp);
    if (fv_ipvs_new.lookup(&cp)) {
        n->flags |= FV_NOTE_F_NEW;
        fv_ipvs_new.delete(&cp);
    }
    return 0;
}

int fv_r_ipvs_sched(void *ctx)
{
    __u64 cp = FV_ARG(ctx, FV_REG_RET);
    __u8 one = 1;
    if (cp)
        fv_ipvs_new.update(&cp, &one);
    return 0;
}

int fv_k_ipvs_out(void *ctx)
{
    __u64 skb = FV_ARG(ctx, FV_REG_ARG2);
    __u64 id = bpf_get_current_pid_tgid();
    if (fv_tracked.lookup(&skb))
        fv_ipvs_out.update(&id, &skb);
    return 0;
}

int fv_r_ipvs_out_conn(void *ctx)
{
    __u64 cp = FV_ARG(ctx, FV_REG_RET);
    __u64 id = bpf_get_current_pid_tgid();
    __u64 *skb = fv_ipvs_out.lookup(&id);
    if (!skb || !cp)
        return 0;
    struct fv_note *n = fv_note_slot(*skb, FV_NOTE_IPVS);
    if (n) {
        fv_ipvs_fill(n, (void *)cp);
        n->flags |= FV_NOTE_F_REPLY;
    }
    fv_ipvs_out.delete(&id);   /* one note per reply */
    return 0;
}

int fv_r_ipvs_out(void *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    fv_ipvs_out.delete(&id);
    return 0;
}
#endif

#ifdef FV_HOOK_VXLAN
int fv_k_vxlan_xmit(void *ctx)
{
    __u64 skb = FV_ARG(ctx, FV_REG_ARG1);
    __u32 default_vni = (__u32)FV_ARG(ctx, FV_REG_ARG3);
    void *rdst = (void *)FV_ARG(ctx, FV_REG_ARG4);
    struct fv_note *n = fv_note_slot(skb, FV_NOTE_VXLAN_TX);
    if (!n)
        return 0;
    __u32 vni = 0;
    if (rdst) {
        __u16 family = 0, port = 0;
        FV_READ(family, rdst, FV_VXLAN_RDST_IP);
        if (family == 10)
            bpf_probe_read_kernel(n->addr[0], 16, rdst + FV_VXLAN_RDST_IP + 8);
        else
            bpf_probe_read_kernel(n->addr[0], 4, rdst + FV_VXLAN_RDST_IP + 4);
        n->af = family == 10 ? 10 : 2;
        FV_READ(port, rdst, FV_VXLAN_RDST_PORT);
        n->port[0] = FV_NTOHS(port);
        FV_READ(vni, rdst, FV_VXLAN_RDST_VNI);
    }
    n->num = __builtin_bswap32(vni ? vni : default_vni);   /* a __be32 holding the 24-bit VNI */
    unsigned char *data = 0;
    FV_READ(data, (void *)skb, FV_SKB_DATA);
    if (data)
        bpf_probe_read_kernel(n->mac, 6, data);   /* the inner Ethernet destination */
    return 0;
}

int fv_k_vxlan_rcv(void *ctx)
{
    void *sk = (void *)FV_ARG(ctx, FV_REG_ARG1);
    __u64 skb = FV_ARG(ctx, FV_REG_ARG2);
    struct fv_note *n = fv_note_slot(skb, FV_NOTE_VXLAN_RX);
    if (!n)
        return 0;
    unsigned char *head = 0;
    __u16 th = 0, nh = 0, port = 0;
    __u32 vni = 0;
    __u8 vihl = 0;
    FV_READ(head, (void *)skb, FV_SKB_HEAD);
    FV_READ(th, (void *)skb, FV_SKB_TRANSPORT_HEADER);
    FV_READ(nh, (void *)skb, FV_SKB_NETWORK_HEADER);
    if (head && th != 0xffff) {
        bpf_probe_read_kernel(&vni, 4, head + th + 8 + 4);   /* udp header, then flags(4) vni(3) */
        n->num = __builtin_bswap32(vni) >> 8;
    }
    if (head && nh != 0xffff) {
        bpf_probe_read_kernel(&vihl, 1, head + nh);
        if ((vihl >> 4) == 6) {
            bpf_probe_read_kernel(n->addr[0], 16, head + nh + 8);
            n->af = 10;
        } else {
            bpf_probe_read_kernel(n->addr[0], 4, head + nh + 12);
            n->af = 2;
        }
    }
    if (sk) {
        FV_READ(port, sk, FV_SOCK_NUM);   /* host order already */
        n->port[0] = port;
    }
    return 0;
}
#endif

#ifdef FV_HOOK_BRIDGE
static __always_inline void fv_dev_name(char *dst, void *dev)
{
    if (dev)
        bpf_probe_read_kernel(dst, 16, dev + FV_DEV_NAME);
}

int fv_k_br_forward(void *ctx)
{
    void *to = (void *)FV_ARG(ctx, FV_REG_ARG1);
    __u64 skb = FV_ARG(ctx, FV_REG_ARG2);
    struct fv_note *n = fv_note_slot(skb, FV_NOTE_BRIDGE);
    if (!n || !to)
        return 0;
    void *pdev = 0, *br = 0, *bdev = 0;
    FV_READ(pdev, to, FV_BRPORT_DEV);
    FV_READ(br, to, FV_BRPORT_BR);
    if (br)
        FV_READ(bdev, br, FV_BR_DEV);
    fv_dev_name(n->name[0], bdev);
    fv_dev_name(n->name[1], pdev);
    if (pdev)
        FV_READ(n->num, pdev, FV_DEV_IFINDEX);
    return 0;
}

int fv_k_br_flood(void *ctx)
{
    void *br = (void *)FV_ARG(ctx, FV_REG_ARG1);
    __u64 skb = FV_ARG(ctx, FV_REG_ARG2);
    struct fv_note *n = fv_note_slot(skb, FV_NOTE_BRIDGE);
    if (!n || !br)
        return 0;
    void *bdev = 0;
    FV_READ(bdev, br, FV_BR_DEV);
    fv_dev_name(n->name[0], bdev);
    n->flags |= FV_NOTE_F_FLOOD;
    return 0;
}
#endif

#ifdef FV_HOOK_NAT
/* The netfilter hook nf_nat_inet_fn runs at, by thread, for nf_nat_manip_pkt inside it
 * (added on entry, removed on return). */
BPF_HASH(fv_nat_hook, __u64, __u32, 1024);

int fv_k_nat_hook(void *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    void *state = (void *)FV_ARG(ctx, FV_REG_ARG3);
    __u8 hook = 0xff;
    if (state)
        FV_READ(hook, state, FV_HOOK_STATE_HOOK);
    __u32 hooknum = hook;
    fv_nat_hook.update(&id, &hooknum);
    return 0;
}

int fv_r_nat_hook(void *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    fv_nat_hook.delete(&id);
    return 0;
}

static __always_inline void fv_ct_tuple(struct fv_note *n, void *t, int i)
{
    __u16 sport = 0, dport = 0;
    bpf_probe_read_kernel(n->addr[i], 16, t + FV_CT_TUPLE_SRC_U3);
    bpf_probe_read_kernel(n->addr[i + 1], 16, t + FV_CT_TUPLE_DST_U3);
    FV_READ(sport, t, FV_CT_TUPLE_SRC_U);
    FV_READ(dport, t, FV_CT_TUPLE_DST_U);
    n->port[i] = FV_NTOHS(sport);
    n->port[i + 1] = FV_NTOHS(dport);
}

int fv_k_nat_manip(void *ctx)
{
    __u64 skb = FV_ARG(ctx, FV_REG_ARG1);
    void *ct = (void *)FV_ARG(ctx, FV_REG_ARG2);
    __u32 mtype = (__u32)FV_ARG(ctx, FV_REG_ARG3);
    __u32 dir = (__u32)FV_ARG(ctx, FV_REG_ARG4);
    struct fv_note *n = fv_note_slot(skb, FV_NOTE_NAT);
    if (!n || !ct)
        return 0;
    __u64 id = bpf_get_current_pid_tgid();
    __u32 *hook = fv_nat_hook.lookup(&id);
    if (hook)
        n->hook = *hook;
    if (mtype == 1)
        n->flags |= FV_NOTE_F_DNAT;
    if (dir == 1)
        n->flags |= FV_NOTE_F_REPLY;
    void *orig = ct + FV_CT_ORIG_TUPLE;
    void *reply = ct + FV_CT_REPLY_TUPLE;
    __u16 l3num = 0;
    FV_READ(l3num, orig, FV_CT_TUPLE_SRC_L3NUM);
    FV_READ(n->proto, orig, FV_CT_TUPLE_DST_PROTONUM);
    n->af = l3num == 10 ? 10 : 2;
    fv_ct_tuple(n, orig, 0);
    fv_ct_tuple(n, reply, 2);
    return 0;
}
#endif
