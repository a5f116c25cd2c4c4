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
#define PGTLS_ETH_P_QINQ_OLD 0x9100u /* pre-standard QinQ */
#define PGTLS_ETH_P_TEB 0x6558u /* transparent Ethernet bridging: GRETAP, GENEVE */
#define PGTLS_ETH_P_ERSPAN2 0x88BEu /* ERSPAN type I (no GRE sequence) and II */
#define PGTLS_ETH_P_ERSPAN3 0x22EBu

/* Tunnels (the parser's parser/packet_decoder.cc is the reference for every layout here). */
#define PGTLS_MAX_TUNNEL_DEPTH 4 /* = parser::kMaxTunnelDepth; one deeper is dropped */
#define PGTLS_UDP_HLEN 8u
#define PGTLS_VXLAN_HLEN 8u
#define PGTLS_GENEVE_HLEN 8u
#define PGTLS_GRE_MIN_HLEN 4u
#define PGTLS_ERSPAN2_HLEN 8u
#define PGTLS_ERSPAN3_HLEN 12u
#define PGTLS_ERSPAN3_SUBHDR_LEN 8u

#define PGTLS_IPPROTO_HOPOPTS 0u
#define PGTLS_IPPROTO_IPIP 4u
#define PGTLS_IPPROTO_TCP 6u
#define PGTLS_IPPROTO_UDP 17u
#define PGTLS_IPPROTO_IPV6 41u
#define PGTLS_IPPROTO_GRE 47u
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
	PGTLS_PARSE_BAD_HEADER = 5, /* a tunnel header with an impossible version or flag */
	PGTLS_PARSE_UNSUPPORTED = 6, /* a tunnel carrying a protocol we do not decode */
};

/* What follows a tunnel header (or the capture's link layer). */
enum pgtls_next {
	PGTLS_NEXT_ETH = 0, /* Ethernet (+ VLAN tags) */
	PGTLS_NEXT_IPV4 = 1,
	PGTLS_NEXT_IPV6 = 2,
	PGTLS_NEXT_IP_BY_VERSION = 3, /* IPv4 or IPv6, as the first nibble says */
};

/* A tunnel header's facts: its length and what it carries. */
struct pgtls_tunnel_hdr {
	__u32 hdr_len; /* bytes from the tunnel header's first byte to its payload */
	__u32 next; /* enum pgtls_next */
	__u32 type; /* enum pgtls_tunnel (pgtls_abi.h) */
	__u32 erspan; /* GRE only: 0, or the ERSPAN type (1, 2, 3) whose header follows */
};

struct pgtls_l3 {
	__u8 saddr[16]; /* IPv4-mapped for IPv4 */
	__u8 daddr[16];
	__u32 hdr_len; /* IP header incl. IPv4 options / IPv6 extension headers */
	/* IPv4 total length, or 40 + IPv6 payload length; 0 = unknown (TSO/BIG TCP) */
	__u32 l3_len;
	__u8 proto; /* the L4 protocol (after IPv6 extension headers) */
	__u8 is_v6;
	__u8 frag; /* 0, or a fragment: PGTLS_FRAG_FIRST (more follow) or PGTLS_FRAG_LATER */
	__u8 pad;
};

#define PGTLS_FRAG_FIRST 1u /* offset 0, more fragments follow */
#define PGTLS_FRAG_LATER 2u /* offset != 0: no L4 header here */

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
	return proto == PGTLS_ETH_P_8021Q || proto == PGTLS_ETH_P_8021AD ||
	       proto == PGTLS_ETH_P_QINQ_OLD;
}

PGTLS_INLINE __u32 pgtls_be32(const __u8 *b)
{
	return ((__u32)b[0] << 24) | ((__u32)b[1] << 16) | ((__u32)b[2] << 8) | (__u32)b[3];
}

/* b: the 20 bytes of an IPv4 header without options; any L4 protocol. l3->frag says whether it
 * is a fragment (MF set or offset != 0). */
PGTLS_INLINE int pgtls_parse_ipv4_any(const __u8 *b, struct pgtls_l3 *l3)
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
	frag = pgtls_be16(b + 6);
	l3->frag = (frag & 0x1fffu) != 0 ? PGTLS_FRAG_LATER :
		   (frag & 0x2000u) != 0 ? PGTLS_FRAG_FIRST : 0; /* offset, MF */
	return PGTLS_PARSE_OK;
}

/* The same for TCP only: NOT_OURS for other protocols, FRAGMENT for a non-first fragment. */
PGTLS_INLINE int pgtls_parse_ipv4(const __u8 *b, struct pgtls_l3 *l3)
{
	int r = pgtls_parse_ipv4_any(b, l3);

	if (r != PGTLS_PARSE_OK)
		return r;
	if (l3->proto != PGTLS_IPPROTO_TCP)
		return PGTLS_PARSE_NOT_OURS;
	if (l3->frag == PGTLS_FRAG_LATER)
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
	l3->frag = 0;
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
 * next header. A fragment header: FRAGMENT for a non-first fragment; a first fragment (M set)
 * is OK with *first_frag = 1 (an atomic fragment, neither, is no fragment). */
PGTLS_INLINE int pgtls_ipv6_ext_frag(__u8 type, const __u8 *b, __u32 *len, __u8 *next,
				     __u8 *first_frag)
{
	*next = b[0];
	if (type == PGTLS_IPPROTO_FRAGMENT) {
		*len = 8;
		if ((pgtls_be16(b + 2) & 0xfff8u) != 0) /* offset != 0 */
			return PGTLS_PARSE_FRAGMENT;
		if ((pgtls_be16(b + 2) & 1u) != 0) /* M: more fragments */
			*first_frag = 1;
		return PGTLS_PARSE_OK;
	}
	if (type == PGTLS_IPPROTO_AH) {
		*len = ((__u32)b[1] + 2u) * 4u;
		return PGTLS_PARSE_OK;
	}
	*len = ((__u32)b[1] + 1u) * 8u;
	return PGTLS_PARSE_OK;
}

PGTLS_INLINE int pgtls_ipv6_ext(__u8 type, const __u8 *b, __u32 *len, __u8 *next)
{
	__u8 first = 0;

	return pgtls_ipv6_ext_frag(type, b, len, next, &first);
}

/* ---- Tunnel headers. Each takes the header's first bytes (the count its comment gives),
 * fills *t and returns PGTLS_PARSE_OK, BAD_HEADER or UNSUPPORTED. ---- */

/* What an Ethernet type inside a tunnel (GRE, GENEVE) leads to; -1: not decoded. */
PGTLS_INLINE int pgtls_next_from_ethertype(__u16 type)
{
	if (type == PGTLS_ETH_P_TEB)
		return PGTLS_NEXT_ETH;
	if (type == PGTLS_ETH_P_IP)
		return PGTLS_NEXT_IPV4;
	if (type == PGTLS_ETH_P_IPV6)
		return PGTLS_NEXT_IPV6;
	return -1;
}

PGTLS_INLINE int pgtls_port_in(const volatile __u16 *ports, __u32 nports, __u16 port)
{
	__u32 i;

	for (i = 0; i < PGTLS_MAX_PORTS; i++) {
		if (i >= nports)
			break;
		if (ports[i] == port)
			return 1;
	}
	return 0;
}

/* b: 8 bytes. VXLAN: the I flag must be set; Ethernet follows. */
PGTLS_INLINE int pgtls_parse_vxlan(const __u8 *b, struct pgtls_tunnel_hdr *t)
{
	t->type = PGTLS_TUNNEL_VXLAN;
	t->hdr_len = PGTLS_VXLAN_HLEN;
	t->next = PGTLS_NEXT_ETH;
	t->erspan = 0;
	return (b[0] & 0x08u) != 0 ? PGTLS_PARSE_OK : PGTLS_PARSE_BAD_HEADER;
}

/* b: the 8 fixed bytes. GENEVE: version 0, options (b[0] & 0x3f words) skipped. */
PGTLS_INLINE int pgtls_parse_geneve(const __u8 *b, struct pgtls_tunnel_hdr *t)
{
	int next = pgtls_next_from_ethertype(pgtls_be16(b + 2));

	t->type = PGTLS_TUNNEL_GENEVE;
	t->hdr_len = PGTLS_GENEVE_HLEN + (__u32)(b[0] & 0x3fu) * 4u;
	t->next = PGTLS_NEXT_ETH;
	t->erspan = 0;
	if ((b[0] >> 6) != 0)
		return PGTLS_PARSE_BAD_HEADER;
	if (next < 0)
		return PGTLS_PARSE_UNSUPPORTED;
	t->next = (__u32)next;
	return PGTLS_PARSE_OK;
}

/* b: the 4 fixed bytes. GRE (RFC 2784/2890): checksum, key, sequence each add 4 bytes; version 0
 * only (1 is PPTP), no RFC 1701 routing. ERSPAN (protocol 0x88be: type II with a sequence number,
 * type I without; 0x22eb: type III) is reported in t->erspan, its header follows. */
PGTLS_INLINE int pgtls_parse_gre(const __u8 *b, struct pgtls_tunnel_hdr *t)
{
	__u16 flags = pgtls_be16(b);
	__u16 proto = pgtls_be16(b + 2);
	int next = pgtls_next_from_ethertype(proto);

	t->type = PGTLS_TUNNEL_GRE;
	t->hdr_len = PGTLS_GRE_MIN_HLEN + ((flags & 0x8000u) ? 4u : 0u) +
		     ((flags & 0x2000u) ? 4u : 0u) + ((flags & 0x1000u) ? 4u : 0u);
	t->next = PGTLS_NEXT_ETH;
	t->erspan = 0;
	if ((flags & 0x7u) != 0)
		return PGTLS_PARSE_BAD_HEADER;
	if ((flags & 0x4000u) != 0)
		return PGTLS_PARSE_UNSUPPORTED;
	if (proto == PGTLS_ETH_P_ERSPAN2) {
		t->erspan = (flags & 0x1000u) ? 2 : 1;
		t->type = PGTLS_TUNNEL_ERSPAN;
		return PGTLS_PARSE_OK;
	}
	if (proto == PGTLS_ETH_P_ERSPAN3) {
		t->erspan = 3;
		t->type = PGTLS_TUNNEL_ERSPAN;
		return PGTLS_PARSE_OK;
	}
	if (next < 0)
		return PGTLS_PARSE_UNSUPPORTED;
	t->next = (__u32)next;
	return PGTLS_PARSE_OK;
}

/* The ERSPAN header of `type` (1: none, 2: 8 bytes, 3: 12 bytes + an optional 8-byte platform
 * subheader) whose first 12 bytes (type 3; 8 for type 2; none for type 1) are b. */
PGTLS_INLINE int pgtls_parse_erspan(__u32 type, const __u8 *b, struct pgtls_tunnel_hdr *t)
{
	__u32 frame_type;

	t->type = PGTLS_TUNNEL_ERSPAN;
	t->next = PGTLS_NEXT_ETH;
	t->erspan = 0;
	if (type == 1) {
		t->hdr_len = 0;
		return PGTLS_PARSE_OK;
	}
	if (type == 2) {
		t->hdr_len = PGTLS_ERSPAN2_HLEN;
		return (b[0] >> 4) == 1 ? PGTLS_PARSE_OK : PGTLS_PARSE_BAD_HEADER;
	}
	t->hdr_len = PGTLS_ERSPAN3_HLEN + ((b[11] & 1u) ? PGTLS_ERSPAN3_SUBHDR_LEN : 0u);
	if ((b[0] >> 4) != 2)
		return PGTLS_PARSE_BAD_HEADER;
	frame_type = (pgtls_be16(b + 10) >> 10) & 0x1fu;
	if (frame_type == 2)
		t->next = PGTLS_NEXT_IP_BY_VERSION;
	else if (frame_type != 0)
		return PGTLS_PARSE_UNSUPPORTED;
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
