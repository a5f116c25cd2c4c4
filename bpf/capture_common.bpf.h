/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpf/capture_common.bpf.h: what both attach points share, included once by each BPF object
 * (capture.bpf.c: socket filter; capture_tc.bpf.c: TC classifier). Each object gets its own
 * copy of the load-time configuration, the flow map and the counters (one skeleton each).
 *
 * pgtls_classify() parses the frame, looks up or creates the connection's flow entry, applies
 * pgtls_decide (parse_helpers.h) and does the counting; it returns the snap length: 0 means the
 * packet is not passed to user space, N > 0 means "pass its first N bytes".
 *
 * Packet bytes are read with bpf_skb_load_bytes_relative(BPF_HDR_START_MAC): on an AF_PACKET
 * SOCK_RAW socket and in a TC program skb->data is the link-layer header, but BPF_PROG_TEST_RUN
 * hands socket filters an skb whose data starts at the network header, and the MAC-relative
 * offset is the same in all three. That helper reads only the linear part of the skb; if headers
 * sit in paged fragments we fall back to bpf_skb_load_bytes, whose offsets are relative to
 * skb->data (= the MAC header on AF_PACKET and in TC).
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define PGTLS_INLINE static __always_inline
#include "parse_helpers.h"

#define PGTLS_LOOPBACK_IFINDEX 1 /* lo is ifindex 1 in every network namespace */

/* Load-time configuration, set through the skeleton's rodata before load. */
const volatile __u32 cfg_abi_version = PGTLS_ABI_VERSION;
const volatile __u16 cfg_ports[PGTLS_MAX_PORTS] = { 5432 };
const volatile __u32 cfg_nports = 1;
const volatile __u32 cfg_any_port = 0;
const volatile __u32 cfg_per_dir_cap = PGTLS_DEFAULT_PER_DIR_CAP;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PGTLS_DEFAULT_FLOW_ENTRIES); /* bpf_map__set_max_entries before load */
	__type(key, struct pgtls_flow_key);
	__type(value, struct pgtls_flow_value);
} flows_lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PGTLS_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats_pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PGTLS_DROP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} drops_pcpu SEC(".maps");

static __always_inline void stat_add(__u32 idx, __u64 n)
{
	__u64 *c = bpf_map_lookup_elem(&stats_pcpu, &idx);

	if (c)
		*c += n;
}

static __always_inline int drop(__u32 reason)
{
	__u64 *c = bpf_map_lookup_elem(&drops_pcpu, &reason);

	if (c)
		*c += 1;
	return 0;
}

static __always_inline int ignore(void)
{
	stat_add(PGTLS_STAT_PKTS_IGNORED, 1);
	return 0;
}

static __always_inline long load(struct __sk_buff *skb, __u32 off, void *to, __u32 len)
{
	if (bpf_skb_load_bytes_relative(skb, off, to, len, BPF_HDR_START_MAC) == 0)
		return 0;
	return bpf_skb_load_bytes(skb, off, to, len);
}

struct pgtls_cls {
	__u8 ctl; /* SYN, FIN or RST set */
	__u8 raw_ip; /* no link-layer header: the frame starts with the IP header */
};

static __always_inline __u32 pgtls_classify(struct __sk_buff *skb, struct pgtls_cls *out)
{
	struct pgtls_verdict v = {};
	struct pgtls_flow_value fresh = {};
	struct pgtls_flow_value *val;
	struct pgtls_flow_key key = {};
	struct pgtls_l3 l3 = {};
	struct pgtls_l4 l4 = {};
	__u8 buf[PGTLS_IPV6_HLEN];
	__u32 l3off = PGTLS_ETH_HLEN;
	__u32 l4off, hdr_len, payload, end, dir;
	__u16 proto;
	int i, r;

	if (load(skb, 0, buf, PGTLS_ETH_HLEN) < 0)
		return ignore();
	proto = pgtls_be16(buf + 12);
	if (proto != PGTLS_ETH_P_IP && proto != PGTLS_ETH_P_IPV6 && !pgtls_is_vlan(proto)) {
		/* No Ethernet header (tun, WireGuard, other ARPHRD_NONE devices seen through
		 * "any"): the frame starts with the IP header and skb->protocol names it. */
		__u16 sp = bpf_ntohs((__u16)skb->protocol);

		if (sp != PGTLS_ETH_P_IP && sp != PGTLS_ETH_P_IPV6)
			return ignore();
		proto = sp;
		l3off = 0;
		out->raw_ip = 1;
	}
	/* The outer tag is usually already in skb->vlan_tci (stripped before packet taps see the
	 * frame); up to PGTLS_MAX_VLAN more may remain in the data. */
	for (i = 0; i < PGTLS_MAX_VLAN; i++) {
		if (!pgtls_is_vlan(proto))
			break;
		if (load(skb, l3off, buf, PGTLS_VLAN_HLEN) < 0)
			return ignore();
		proto = pgtls_be16(buf + 2);
		l3off += PGTLS_VLAN_HLEN;
	}

	if (proto == PGTLS_ETH_P_IP) {
		if (load(skb, l3off, buf, PGTLS_IPV4_MIN_HLEN) < 0)
			return drop(PGTLS_DROP_TRUNCATED_HEADER);
		r = pgtls_parse_ipv4(buf, &l3);
	} else if (proto == PGTLS_ETH_P_IPV6) {
		if (load(skb, l3off, buf, PGTLS_IPV6_HLEN) < 0)
			return drop(PGTLS_DROP_TRUNCATED_HEADER);
		r = pgtls_parse_ipv6(buf, &l3);
	} else {
		return ignore();
	}
	if (r == PGTLS_PARSE_NOT_OURS)
		return ignore();
	if (r == PGTLS_PARSE_FRAGMENT)
		return drop(PGTLS_DROP_FRAGMENT);
	if (r != PGTLS_PARSE_OK)
		return drop(PGTLS_DROP_TRUNCATED_HEADER);

	l4off = l3off + l3.hdr_len;
	if (l3.is_v6) {
		for (i = 0; i < PGTLS_MAX_IPV6_EXT; i++) {
			__u32 len = 0;
			__u8 next = 0;

			if (!pgtls_ipv6_is_ext(l3.proto))
				break;
			if (load(skb, l4off, buf, 8) < 0)
				return drop(PGTLS_DROP_TRUNCATED_HEADER);
			r = pgtls_ipv6_ext(l3.proto, buf, &len, &next);
			if (r == PGTLS_PARSE_FRAGMENT)
				return drop(PGTLS_DROP_FRAGMENT);
			l3.proto = next;
			l3.hdr_len += len;
			l4off += len;
		}
		if (pgtls_ipv6_is_ext(l3.proto))
			return drop(PGTLS_DROP_IPV6_EXT_LIMIT);
		if (l3.proto != PGTLS_IPPROTO_TCP)
			return ignore();
		if (l3.l3_len != 0 && l3.l3_len < l3.hdr_len)
			return drop(PGTLS_DROP_TRUNCATED_HEADER);
	}

	if (load(skb, l4off, buf, PGTLS_TCP_MIN_HLEN) < 0)
		return drop(PGTLS_DROP_TRUNCATED_HEADER);
	if (pgtls_parse_tcp(buf, &l4) != PGTLS_PARSE_OK)
		return drop(PGTLS_DROP_TRUNCATED_HEADER);
	if (!pgtls_port_monitored(cfg_ports, cfg_nports, cfg_any_port, l4.sport, l4.dport))
		return ignore();

	hdr_len = l4off + l4.hdr_len;
	if (l3.l3_len != 0) {
		end = l3off + l3.l3_len;
		if (end < hdr_len)
			return drop(PGTLS_DROP_TRUNCATED_HEADER);
		payload = end - hdr_len;
	} else {
		/* IP length 0: a TSO/BIG TCP super-packet; the skb length is the truth. */
		payload = skb->len > hdr_len ? skb->len - hdr_len : 0;
	}

	out->ctl = (l4.flags & (PGTLS_TCP_SYN | PGTLS_TCP_FIN | PGTLS_TCP_RST)) != 0;
	stat_add(PGTLS_STAT_PKTS_SEEN, 1);
	stat_add(PGTLS_STAT_BYTES_SEEN, skb->len);

	dir = pgtls_flow_key_init(&key, &l3, &l4) & 1;
	val = bpf_map_lookup_elem(&flows_lru, &key);
	if (val && (l4.flags & (PGTLS_TCP_SYN | PGTLS_TCP_ACK)) == PGTLS_TCP_SYN &&
	    val->state == PGTLS_FLOW_DONE)
		val = 0; /* a new connection reusing a finished one's 4-tuple starts afresh */
	if (!val) {
		if (bpf_map_update_elem(&flows_lru, &key, &fresh, BPF_ANY) == 0) {
			stat_add(PGTLS_STAT_FLOWS_CREATED, 1);
			val = bpf_map_lookup_elem(&flows_lru, &key);
		}
	}
	if (!val) {
		/* Fail open: untracked, but the parser still gets the handshake. */
		drop(PGTLS_DROP_MAP_FULL);
		pgtls_decide(PGTLS_FLOW_HANDSHAKE, 0, l4.flags, hdr_len, payload, cfg_per_dir_cap,
			     &v);
	} else {
		pgtls_decide(val->state, val->passed_payload[dir], l4.flags, hdr_len, payload,
			     cfg_per_dir_cap, &v);
	}

	if (v.action == PGTLS_ACT_SKIP) {
		stat_add(PGTLS_STAT_PKTS_SKIPPED, 1);
		stat_add(PGTLS_STAT_BYTES_SKIPPED, skb->len);
		if (val) {
			__sync_fetch_and_add(&val->skipped_packets, 1);
			__sync_fetch_and_add(&val->skipped_bytes, skb->len);
		}
		return 0;
	}
	if (v.action == PGTLS_ACT_CAP_DROP) {
		if (val)
			__sync_fetch_and_add(&val->capped_packets, 1);
		return drop(PGTLS_DROP_CAP_REACHED);
	}
	if (val && v.payload_taken)
		__sync_fetch_and_add(&val->passed_payload[dir], v.payload_taken);
	stat_add(PGTLS_STAT_PKTS_PASSED, 1);
	stat_add(PGTLS_STAT_BYTES_PASSED, v.snap);
	if (v.cut)
		stat_add(PGTLS_STAT_PKTS_CUT, 1);
	return v.snap;
}
