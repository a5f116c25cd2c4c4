// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * bpf/capture_tc.bpf.c: the TC attach point (`pgtlsmon watch --ebpf-attach tc`,
 * capture/bpf_tc_source.cc). Two direct-action classifiers (BPF_PROG_TYPE_SCHED_CLS) on one
 * interface's clsact qdisc, pgtls_tc_ingress and pgtls_tc_egress, share the flow map and the
 * decision with the socket filter (capture_common.bpf.h). A passed packet's first `snap` bytes
 * are written to the BPF ring buffer `events` as a struct pgtls_pkt_event record.
 *
 * The program never changes a packet's fate: it always returns TC_ACT_UNSPEC ("no verdict, go
 * on with the next filter"), so filters of other tools attached after it still run.
 *
 * Wake-ups: a record is written with BPF_RB_NO_WAKEUP unless it carries SYN/FIN/RST or the ring
 * then holds at least cfg_wakeup_bytes unread bytes (BPF_RB_FORCE_WAKEUP); user space polls with
 * a short timeout (10 ms) for the rest, so it is woken once per batch, not once per record.
 */
#include "capture_common.bpf.h"

#define PGTLS_TC_ACT_UNSPEC (-1) /* linux/pkt_cls.h */

_Static_assert((PGTLS_TC_MAX_SNAP & (PGTLS_TC_MAX_SNAP - 1)) == 0, "a power of two");

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 cfg_wakeup_bytes = PGTLS_DEFAULT_WAKEUP_BYTES;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8u << 20); /* bytes, power of 2; bpf_map__set_max_entries before load */
} events SEC(".maps");

/* Where a record is assembled before bpf_ringbuf_output (which then reserves exactly its size;
 * bpf_ringbuf_reserve needs a constant size). One slot per CPU: a plain array, because per-CPU
 * values are limited to 32 KiB; max_entries is set to the number of possible CPUs before load.
 * TC programs run with migration disabled and do not nest on one CPU. */
struct pgtls_tc_scratch {
	struct pgtls_pkt_event ev;
	__u8 data[PGTLS_TC_MAX_SNAP];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pgtls_tc_scratch);
} scratch SEC(".maps");

static __always_inline int pgtls_tc(struct __sk_buff *skb, __u8 egress)
{
	struct pgtls_cls cls = {};
	struct pgtls_tc_scratch *s;
	__u32 cpu, snap, flags;
	__u64 wake, len;

	/* On lo a packet leaves (egress) and comes back (ingress) on the same device: keep the
	 * ingress copy, as the socket filter and libpcap do. */
	if (egress && skb->ifindex == PGTLS_LOOPBACK_IFINDEX)
		return PGTLS_TC_ACT_UNSPEC;
	snap = pgtls_classify(skb, &cls);
	if (snap == 0)
		return PGTLS_TC_ACT_UNSPEC;

	cpu = bpf_get_smp_processor_id();
	s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s) {
		drop(PGTLS_DROP_RINGBUF_FULL);
		return PGTLS_TC_ACT_UNSPEC;
	}
	flags = egress ? PGTLS_EV_EGRESS : 0;
	if (cls.raw_ip)
		flags |= PGTLS_EV_RAW_IP;
	if (snap > skb->len)
		snap = skb->len; /* an IP length beyond the frame: never read past it */
	if (snap > PGTLS_TC_MAX_SNAP) {
		snap = PGTLS_TC_MAX_SNAP;
		flags |= PGTLS_EV_CUT;
	}
	if (snap == 0)
		return PGTLS_TC_ACT_UNSPEC; /* an empty skb */
	/* 1..PGTLS_TC_MAX_SNAP in the very register the helper gets (a bounds check on a copy of
	 * snap would not do for the verifier). */
	len = (((__u64)snap - 1) & (PGTLS_TC_MAX_SNAP - 1)) + 1;
	if (bpf_skb_load_bytes(skb, 0, s->data, len) < 0) {
		drop(PGTLS_DROP_TRUNCATED_HEADER);
		return PGTLS_TC_ACT_UNSPEC;
	}
	s->ev.ts_ns = bpf_ktime_get_ns();
	s->ev.ifindex = skb->ifindex;
	s->ev.len = skb->len;
	s->ev.caplen = (__u32)len;
	s->ev.protocol = bpf_ntohs((__u16)skb->protocol);
	s->ev.flags = (__u8)flags;
	s->ev.pad0 = 0;

	wake = BPF_RB_NO_WAKEUP;
	if (cls.ctl ||
	    bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) + sizeof(s->ev) + len >= cfg_wakeup_bytes)
		wake = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&events, s, sizeof(s->ev) + len, wake) != 0)
		drop(PGTLS_DROP_RINGBUF_FULL);
	return PGTLS_TC_ACT_UNSPEC;
}

SEC("tc")
int pgtls_tc_ingress(struct __sk_buff *skb)
{
	return pgtls_tc(skb, 0);
}

SEC("tc")
int pgtls_tc_egress(struct __sk_buff *skb)
{
	return pgtls_tc(skb, 1);
}
