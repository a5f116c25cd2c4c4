/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpf/parse_helpers.h: header classification and the pass/cap/skip decision, as plain C over
 * byte buffers the caller has already loaded. No BPF helpers here: the kernel program loads each
 * header into a stack buffer and calls these; tests/bpf/parse_helpers_test.cc compiles the same
 * code in user space against tests/bpf/bpf_stubs.h (STYLE.md section 5).
 *
 * Integers are read with shifts (network order), never through casts.
 */
#pragma once

#include "pgtls_abi.h"

#ifndef PGTLS_INLINE
#define PGTLS_INLINE static inline __attribute__((always_inline))
#endif

#define PGTLS_ETH_HLEN 14u
#define PGTLS_VLAN_HLEN 4u
#define PGTLS_MAX_VLAN 2
#define PGTLS_IPV4_MIN_HLEN 20u
#define PGTLS_IPV6_HLEN 40u
#define PGTLS_TCP_MIN_HLEN 20u
#define PGTLS_MAX_IPV6_EXT 6

#define PGTLS_ETH_P_IP 0x0800u
#define PGTLS_ETH_P_IPV6 0x86DDu
#define PGTLS_ETH_P_8021Q 0x8100u
#define PGTLS_ETH_P_8021AD 0x88A8u

#define PGTLS_IPPROTO_HOPOPTS 0u
#define PGTLS_IPPROTO_TCP 6u
#define PGTLS_IPPROTO_ROUTING 43u
#define PGTLS_IPPROTO_FRAGMENT 44u
#define PGTLS_IPPROTO_AH 51u
#define PGTLS_IPPROTO_DSTOPTS 60u

#define PGTLS_TCP_FIN 0x01u
#define PGTLS_TCP_SYN 0x02u
#define PGTLS_TCP_RST 0x04u
#define PGTLS_TCP_ACK 0x10u

/* Result codes of the parse functions. */
enum pgtls_parse {
	PGTLS_PARSE_OK = 0,
	PGTLS_PARSE_NOT_OURS = 1, /* valid, but not TCP / not IP: ignore */
	PGTLS_PARSE_TRUNCATED = 2, /* a length field contradicts the header */
	PGTLS_PARSE_FRAGMENT = 3, /* non-first fragment */
	PGTLS_PARSE_EXT_LIMIT = 4,
};

struct pgtls_l3 {
	__u8 saddr[16]; /* IPv4-mapped for IPv4 */
	__u8 daddr[16];
	__u32 hdr_len; /* IP header incl. IPv4 options / IPv6 extension headers */
	/* IPv4 total length, or 40 + IPv6 payload length; 0 = unknown (TSO/BIG TCP) */
	__u32 l3_len;
	__u8 proto; /* the L4 protocol (after IPv6 extension headers) */
	__u8 is_v6;
	__u8 pad[2];
};

struct pgtls_l4 {
	__u16 sport; /* host order */
	__u16 dport;
	__u32 hdr_len; /* data offset * 4 */
	__u8 flags;
	__u8 pad[3];
};

PGTLS_INLINE __u16 pgtls_be16(const __u8 *b)
{
	return (__u16)(((__u32)b[0] << 8) | (__u32)b[1]);
}

PGTLS_INLINE int pgtls_is_vlan(__u16 proto)
{
	return proto == PGTLS_ETH_P_8021Q || proto == PGTLS_ETH_P_8021AD;
}

/* b: the 20 bytes of an IPv4 header without options. */
PGTLS_INLINE int pgtls_parse_ipv4(const __u8 *b, struct pgtls_l3 *l3)
{
	__u32 ihl;
	__u32 frag;
	int i;

	if ((b[0] >> 4) != 4)
		return PGTLS_PARSE_TRUNCATED;
	ihl = (__u32)(b[0] & 0x0f) * 4u;
	if (ihl < PGTLS_IPV4_MIN_HLEN)
		return PGTLS_PARSE_TRUNCATED;
	l3->hdr_len = ihl;
	l3->l3_len = pgtls_be16(b + 2);
	/* TSO/BIG TCP super-packets may carry 0; otherwise the length must cover the header. */
	if (l3->l3_len != 0 && l3->l3_len < ihl)
		return PGTLS_PARSE_TRUNCATED;
	l3->proto = b[9];
	l3->is_v6 = 0;
	for (i = 0; i < 10; i++) {
		l3->saddr[i] = 0;
		l3->daddr[i] = 0;
	}
	l3->saddr[10] = 0xff;
	l3->saddr[11] = 0xff;
	l3->daddr[10] = 0xff;
	l3->daddr[11] = 0xff;
	for (i = 0; i < 4; i++) {
		l3->saddr[12 + i] = b[12 + i];
		l3->daddr[12 + i] = b[16 + i];
	}
	if (l3->proto != PGTLS_IPPROTO_TCP)
		return PGTLS_PARSE_NOT_OURS;
	frag = pgtls_be16(b + 6) & 0x1fffu; /* fragment offset in 8-byte units */
	if (frag != 0)
		return PGTLS_PARSE_FRAGMENT;
	return PGTLS_PARSE_OK;
}

/* b: the 40-byte fixed IPv6 header. Leaves l3->proto = next header (maybe an extension). */
PGTLS_INLINE int pgtls_parse_ipv6(const __u8 *b, struct pgtls_l3 *l3)
{
	__u32 plen;
	int i;

	if ((b[0] >> 4) != 6)
		return PGTLS_PARSE_TRUNCATED;
	plen = pgtls_be16(b + 4);
	l3->l3_len = plen == 0 ? 0 : PGTLS_IPV6_HLEN + plen; /* 0: jumbogram / BIG TCP */
	l3->hdr_len = PGTLS_IPV6_HLEN;
	l3->proto = b[6];
	l3->is_v6 = 1;
	for (i = 0; i < 16; i++) {
		l3->saddr[i] = b[8 + i];
		l3->daddr[i] = b[24 + i];
	}
	return PGTLS_PARSE_OK;
}

PGTLS_INLINE int pgtls_ipv6_is_ext(__u8 nexthdr)
{
	return nexthdr == PGTLS_IPPROTO_HOPOPTS || nexthdr == PGTLS_IPPROTO_ROUTING ||
	       nexthdr == PGTLS_IPPROTO_FRAGMENT || nexthdr == PGTLS_IPPROTO_AH ||
	       nexthdr == PGTLS_IPPROTO_DSTOPTS;
}

/* One IPv6 extension header of type `type` whose first 8 bytes are b. Stores its length and
 * next header. */
PGTLS_INLINE int pgtls_ipv6_ext(__u8 type, const __u8 *b, __u32 *len, __u8 *next)
{
	*next = b[0];
	if (type == PGTLS_IPPROTO_FRAGMENT) {
		*len = 8;
		if ((pgtls_be16(b + 2) & 0xfff8u) != 0) /* offset != 0 */
			return PGTLS_PARSE_FRAGMENT;
		return PGTLS_PARSE_OK;
	}
	if (type == PGTLS_IPPROTO_AH) {
		*len = ((__u32)b[1] + 2u) * 4u;
		return PGTLS_PARSE_OK;
	}
	*len = ((__u32)b[1] + 1u) * 8u;
	return PGTLS_PARSE_OK;
}

/* b: the 20-byte TCP header without options. */
PGTLS_INLINE int pgtls_parse_tcp(const __u8 *b, struct pgtls_l4 *l4)
{
	l4->sport = pgtls_be16(b);
	l4->dport = pgtls_be16(b + 2);
	l4->hdr_len = (__u32)(b[12] >> 4) * 4u;
	l4->flags = b[13];
	if (l4->hdr_len < PGTLS_TCP_MIN_HLEN)
		return PGTLS_PARSE_TRUNCATED;
	return PGTLS_PARSE_OK;
}

PGTLS_INLINE int pgtls_port_monitored(const volatile __u16 *ports, __u32 nports, __u32 any_port,
				      __u16 sport, __u16 dport)
{
	__u32 i;

	if (any_port)
		return 1;
	for (i = 0; i < PGTLS_MAX_PORTS; i++) {
		if (i >= nports)
			break;
		if (ports[i] == sport || ports[i] == dport)
			return 1;
	}
	return 0;
}

/* Returns < 0 when endpoint a < endpoint b, 0 when equal, > 0 otherwise. */
PGTLS_INLINE int pgtls_endpoint_cmp(const __u8 *a, __u16 pa, const __u8 *b, __u16 pb)
{
	int i;

	for (i = 0; i < 16; i++) {
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	}
	if (pa != pb)
		return pa < pb ? -1 : 1;
	return 0;
}

/* Fills the canonical key and returns the packet's enum pgtls_dir. */
PGTLS_INLINE __u32 pgtls_flow_key_init(struct pgtls_flow_key *key, const struct pgtls_l3 *l3,
				       const struct pgtls_l4 *l4)
{
	int i;
	int src_is_lo = pgtls_endpoint_cmp(l3->saddr, l4->sport, l3->daddr, l4->dport) <= 0;

	for (i = 0; i < 16; i++) {
		key->addr_lo[i] = src_is_lo ? l3->saddr[i] : l3->daddr[i];
		key->addr_hi[i] = src_is_lo ? l3->daddr[i] : l3->saddr[i];
	}
	key->port_lo = src_is_lo ? l4->sport : l4->dport;
	key->port_hi = src_is_lo ? l4->dport : l4->sport;
	return src_is_lo ? PGTLS_DIR_LO_TO_HI : PGTLS_DIR_HI_TO_LO;
}

/* What to do with a TCP packet of a monitored flow. */
enum pgtls_action {
	PGTLS_ACT_PASS = 0, /* return snap (> 0) */
	PGTLS_ACT_CAP_DROP = 1, /* return 0, count PGTLS_DROP_CAP_REACHED */
	PGTLS_ACT_SKIP = 2, /* return 0, count skipped */
};

struct pgtls_verdict {
	__u32 action; /* enum pgtls_action */
	__u32 snap; /* bytes from the link-layer header to hand to user space */
	__u32 payload_taken; /* payload bytes within snap, to add to passed_payload[dir] */
	__u32 cut; /* 1 when the cap cut the payload short */
};

/*
 * The decision, given the flow's state and the payload bytes already passed in this direction:
 * - SYN, FIN and RST are always passed: a DONE flow's as headers only; a handshake flow's with
 *   whatever payload still fits under the cap.
 * - DONE flow, other packets: skipped (counted, not passed).
 * - HANDSHAKE flow: passed while passed < cap, the payload cut so that at most `cap` payload
 *   bytes per direction reach user space (its reassembly counts the cut as a hole); once the
 *   cap is used, payload-carrying packets are dropped with reason cap-reached. Pure ACKs are
 *   passed (headers only, they are small).
 * hdr_len counts from the link-layer header to the end of the TCP header.
 */
PGTLS_INLINE void pgtls_decide(__u32 state, __u64 passed, __u8 tcp_flags, __u32 hdr_len,
			       __u32 payload_len, __u32 cap, struct pgtls_verdict *v)
{
	int ctl = (tcp_flags & (PGTLS_TCP_SYN | PGTLS_TCP_FIN | PGTLS_TCP_RST)) != 0;
	__u64 room = passed < cap ? (__u64)cap - passed : 0;
	__u32 take = (__u64)payload_len < room ? payload_len : (__u32)room;

	v->cut = 0;
	v->payload_taken = 0;
	if (state == PGTLS_FLOW_DONE) {
		v->action = ctl ? PGTLS_ACT_PASS : PGTLS_ACT_SKIP;
		v->snap = ctl ? hdr_len : 0;
		return;
	}
	if (payload_len > 0 && take == 0 && !ctl) {
		v->action = PGTLS_ACT_CAP_DROP;
		v->snap = 0;
		return;
	}
	v->action = PGTLS_ACT_PASS;
	v->snap = hdr_len + take;
	v->payload_taken = take;
	v->cut = take < payload_len;
}
