/* flowviz: the one record the kernel side sends to userspace.
 *
 * Mirrored once in Python by flowviz/sources/live.py (FV_EVENT, a struct
 * format); tests/unit/test_bpf_struct.py reads this file and fails when the
 * two drift apart. Change both together.
 */
#ifndef FV_EVENTS_H
#define FV_EVENTS_H

#define FV_SNAP 128             /* packet bytes copied, from the link-layer header on */

/* which hook saw the packet */
#define FV_HOOK_RX 1            /* tracepoint net:netif_receive_skb */
#define FV_HOOK_TX 2            /* tracepoint net:net_dev_start_xmit */
#define FV_HOOK_RX_ENQUEUE 3    /* tracepoint net:netif_rx: no longer attached (its packets reach netif_receive_skb) */
#define FV_HOOK_DROP 4          /* tracepoint skb:kfree_skb, with the drop reason */
#define FV_HOOK_FREE 5          /* tracepoint skb:consume_skb: end of life, not a drop */

#define FV_EV_GAP 1
#define FV_EV_COMPACT 2         /* the skb's headers are those of its previous event: no data[] sent */

/* A record is either the whole struct fv_event, or (a consume_skb sighting, which
 * copies no bytes, or an FV_EV_COMPACT one) only its first FV_EVENT_HEAD bytes. */
#define FV_EVENT_HEAD 64

struct fv_event {
    __u64 ts_ns;                /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
    __u64 skb;                  /* sk_buff address: the packet's identity while it lives */
    __u32 netns;                /* inode of the network namespace of skb->dev */
    __u32 ifindex;              /* skb->dev->ifindex */
    __u32 len;                  /* skb->len as this hook sees it */
    __u32 mark;                 /* skb->mark (fwmark) */
    __u32 reason;               /* enum skb_drop_reason for FV_HOOK_DROP, else 0 */
    __u32 cpu;
    __u16 caplen;               /* valid bytes in data[] */
    __u8 hook;                  /* FV_HOOK_* */
    __u8 l2;                    /* 1: data[] starts with an Ethernet header, 0: with the IP header */
    __u8 nnotes;                /* struct fv_note records after this one (struct fv_event_noted) */
    __u8 flags;                 /* FV_EV_GAP: a sighting of this skb since its last event was lost;
                                 * FV_EV_COMPACT: data[] not sent, unchanged since the last event */
    __u8 pad[2];
    char ifname[16];            /* skb->dev->name */
    __u8 data[FV_SNAP];         /* from byte FV_EVENT_HEAD on */
};

/* Annotations from the optional kprobe hooks (bpf/fv_hooks.h): what a kernel
 * function decided for a followed skb since its previous sighting. They ride
 * on the skb's next sighting; a hook never sends an event of its own. */
#define FV_MAX_NOTES 4

#define FV_NOTE_IPVS 1          /* ip_vs_nat_xmit (request) or ip_vs_conn_out_get (reply) */
#define FV_NOTE_VXLAN_TX 2      /* vxlan_xmit_one */
#define FV_NOTE_VXLAN_RX 3      /* vxlan_rcv */
#define FV_NOTE_BRIDGE 4        /* br_forward (fdb hit) or br_flood */
#define FV_NOTE_NAT 5           /* nf_nat_manip_pkt, the hook from nf_nat_inet_fn */

#define FV_NOTE_F_NEW 1         /* IPVS: the scheduler chose the real server for this packet */
#define FV_NOTE_F_REPLY 2       /* IPVS: a reply rewritten on its way out; NAT: reply direction */
#define FV_NOTE_F_FLOOD 4       /* bridge: no fdb entry, flooded */
#define FV_NOTE_F_DNAT 8        /* NAT: destination rewritten (else the source) */

struct fv_note {
    __u8 kind;                  /* FV_NOTE_* */
    __u8 flags;                 /* FV_NOTE_F_* */
    __u8 hook;                  /* NAT: netfilter hook (NF_INET_*), 0xff unknown */
    __u8 af;                    /* family of addr[]: 2 IPv4 (first 4 bytes), 10 IPv6 */
    __u8 proto;                 /* IPVS, NAT: IP protocol */
    __u8 pad[3];
    __u32 num;                  /* IPVS: fwmark; VXLAN: VNI; bridge: egress ifindex */
    __u16 port[4];              /* host order. IPVS: client, virtual, real; VXLAN: remote (tx) or
                                 * socket (rx) port; NAT: orig sport, dport, reply sport, dport */
    __u8 addr[4][16];           /* IPVS: client, virtual, real; NAT: orig src, dst, reply src, dst;
                                 * VXLAN: remote VTEP (tx) or outer source (rx) */
    char name[2][16];           /* IPVS: scheduler; bridge: bridge, egress port */
    __u8 mac[8];                /* VXLAN tx: inner destination MAC, the FDB key */
};

struct fv_event_noted {
    struct fv_event e;
    struct fv_note notes[FV_MAX_NOTES];
};

#endif
