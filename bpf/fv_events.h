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
#define FV_HOOK_RX_ENQUEUE 3    /* tracepoint net:netif_rx (queued for a later receive) */
#define FV_HOOK_DROP 4          /* tracepoint skb:kfree_skb, with the drop reason */
#define FV_HOOK_FREE 5          /* tracepoint skb:consume_skb: end of life, not a drop */

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
    char ifname[16];            /* skb->dev->name */
    __u8 data[FV_SNAP];
};

#endif
