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
/* UDP destination ports of VXLAN and GENEVE (--vxlan-ports, --geneve-ports; the parser's
 * DecapConfig). */
const volatile __u16 cfg_vxlan_ports[PGTLS_MAX_PORTS] = { 4789, 8472 };
const volatile __u32 cfg_nvxlan_ports = 2;
const volatile __u16 cfg_geneve_ports[PGTLS_MAX_PORTS] = { 6081 };
const volatile __u32 cfg_ngeneve_ports = 1;

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

/* Strips one tunnel layer: counts it, checks the depth. 0 or a drop (returned by the caller). */
static __always_inline int enter_tunnel(__u32 *depth, __u32 type)
{
	if (++*depth > PGTLS_MAX_TUNNEL_DEPTH)
		return drop(PGTLS_DROP_TUNNEL_TOO_DEEP) - 1;
	stat_add(PGTLS_STAT_TUNNEL_FIRST + (type < PGTLS_TUNNEL_MAX ? type : 0), 1);
	return 0;
}

static __always_inline int tunnel_verdict(int r)
{
	if (r == PGTLS_PARSE_BAD_HEADER)
		return drop(PGTLS_DROP_TUNNEL_BAD_HEADER) - 1;
	if (r == PGTLS_PARSE_UNSUPPORTED)
		return drop(PGTLS_DROP_TUNNEL_UNSUPPORTED) - 1;
	return 0;
}

/* Where the walk down to the innermost IP/TCP ends. */
#define PGTLS_WALK_TCP 1 /* l3/l3off/l4off describe the innermost IP and its TCP header */
#define PGTLS_WALK_STOP 0 /* ignored or dropped, already counted: return 0 */
#define PGTLS_WALK_NEXT 2 /* a tunnel was stripped: walk its payload */

/* The walk's state, carried from one layer to the next. */
struct pgtls_walk {
	__u32 layer; /* 0: the capture's own link layer */
	__u32 off; /* where the next layer starts, from the frame's first byte */
	__u32 next; /* enum pgtls_next: what starts there */
	__u32 depth; /* encapsulations stripped */
	__u32 l3off; /* the innermost IP header */
	__u32 l4off; /* its L4 header */
	__u32 raw_ip; /* layer 0 had no link-layer header */
	struct pgtls_l3 l3;
};

/*
 * One layer: [Ethernet + VLAN tags] IP [+ IPv6 extension headers] and, when the IP packet
 * carries a tunnel, that tunnel's headers (UDP + VXLAN/GENEVE, GRE [+ ERSPAN], or nothing for IP
 * in IP). w->off and w->next move to the tunnel's payload. Returns PGTLS_WALK_TCP,
 * PGTLS_WALK_STOP, or PGTLS_WALK_NEXT (go on with the next layer).
 *
 * A global (non-inlined) function: the verifier checks it once, on its own, instead of once per
 * layer and path of the caller's loop (inlined, the five layers exceed its 1M-instruction budget).
 */
__noinline int pgtls_walk_layer(struct __sk_buff *skb, struct pgtls_walk *w)
{
	struct pgtls_tunnel_hdr th = {};
	struct pgtls_l3 *l3;
	__u8 buf[PGTLS_IPV6_HLEN];
	__u32 l4off, ip_end, layer;
	__u32 *off, *next;
	__u16 proto;
	int i, r;

	if (!skb || !w)
		return PGTLS_WALK_STOP;
	l3 = &w->l3;
	off = &w->off;
	next = &w->next;
	layer = w->layer;

	if (*next == PGTLS_NEXT_ETH) {
		if (load(skb, *off, buf, PGTLS_ETH_HLEN) < 0)
			return layer == 0 ? ignore() : drop(PGTLS_DROP_TUNNEL_TRUNCATED);
		proto = pgtls_be16(buf + 12);
		if (layer == 0 && proto != PGTLS_ETH_P_IP && proto != PGTLS_ETH_P_IPV6 &&
		    !pgtls_is_vlan(proto)) {
			/* No Ethernet header (tun, WireGuard, other ARPHRD_NONE devices seen
			 * through "any"): the frame starts with the IP header and skb->protocol
			 * names it. */
			__u16 sp = bpf_ntohs((__u16)skb->protocol);

			if (sp != PGTLS_ETH_P_IP && sp != PGTLS_ETH_P_IPV6)
				return ignore();
			proto = sp;
			w->raw_ip = 1;
		} else {
			*off += PGTLS_ETH_HLEN;
		}
		/* The capture's outer tag is usually already in skb->vlan_tci (stripped before
		 * packet taps see the frame); up to PGTLS_MAX_VLAN more may remain in the data, at
		 * every Ethernet layer. */
		for (i = 0; i < PGTLS_MAX_VLAN; i++) {
			if (!pgtls_is_vlan(proto))
				break;
			if (load(skb, *off, buf, PGTLS_VLAN_HLEN) < 0)
				return layer == 0 ? ignore() : drop(PGTLS_DROP_TUNNEL_TRUNCATED);
			proto = pgtls_be16(buf + 2);
			*off += PGTLS_VLAN_HLEN;
		}
		if (proto == PGTLS_ETH_P_IP)
			*next = PGTLS_NEXT_IPV4;
		else if (proto == PGTLS_ETH_P_IPV6)
			*next = PGTLS_NEXT_IPV6;
		else
			return ignore();
	}
	if (*next == PGTLS_NEXT_IP_BY_VERSION) {
		if (load(skb, *off, buf, 1) < 0)
			return drop(PGTLS_DROP_TRUNCATED_HEADER);
		if ((buf[0] >> 4) == 4)
			*next = PGTLS_NEXT_IPV4;
		else if ((buf[0] >> 4) == 6)
			*next = PGTLS_NEXT_IPV6;
		else
			return drop(PGTLS_DROP_TUNNEL_BAD_HEADER);
	}

	if (*next == PGTLS_NEXT_IPV4) {
		if (load(skb, *off, buf, PGTLS_IPV4_MIN_HLEN) < 0)
			return drop(PGTLS_DROP_TRUNCATED_HEADER);
		r = pgtls_parse_ipv4_any(buf, l3);
	} else {
		if (load(skb, *off, buf, PGTLS_IPV6_HLEN) < 0)
			return drop(PGTLS_DROP_TRUNCATED_HEADER);
		r = pgtls_parse_ipv6(buf, l3);
	}
	if (r != PGTLS_PARSE_OK)
		return drop(PGTLS_DROP_TRUNCATED_HEADER);

	l4off = *off + l3->hdr_len;
	if (l3->is_v6) {
		for (i = 0; i < PGTLS_MAX_IPV6_EXT; i++) {
			__u32 len = 0;
			__u8 nh = 0;
			__u8 first = 0;

			if (!pgtls_ipv6_is_ext(l3->proto))
				break;
			if (load(skb, l4off, buf, 8) < 0)
				return drop(PGTLS_DROP_TRUNCATED_HEADER);
			r = pgtls_ipv6_ext_frag(l3->proto, buf, &len, &nh, &first);
			l3->proto = nh;
			l3->hdr_len += len;
			l4off += len;
			if (r == PGTLS_PARSE_FRAGMENT) {
				l3->frag = PGTLS_FRAG_LATER;
				break;
			}
			if (first) {
				l3->frag = PGTLS_FRAG_FIRST;
				break; /* as the parser: what follows is the fragment's payload */
			}
		}
		if (!l3->frag && pgtls_ipv6_is_ext(l3->proto))
			return drop(PGTLS_DROP_IPV6_EXT_LIMIT);
		if (l3->l3_len != 0 && l3->l3_len < l3->hdr_len)
			return drop(PGTLS_DROP_TRUNCATED_HEADER);
	}
	/* The end of this IP packet (0: unknown, TSO/BIG TCP): bounds the UDP length. */
	ip_end = l3->l3_len != 0 ? *off + l3->l3_len : 0;
	w->l3off = *off;
	w->l4off = l4off;

	switch (l3->proto) {
	case PGTLS_IPPROTO_TCP:
		if (l3->frag == PGTLS_FRAG_LATER)
			return drop(PGTLS_DROP_FRAGMENT);
		if (l3->is_v6 && l3->frag)
			return drop(PGTLS_DROP_FRAGMENT); /* behind a fragment header: as the parser */
		return PGTLS_WALK_TCP;
	case PGTLS_IPPROTO_IPIP:
	case PGTLS_IPPROTO_IPV6:
		if (l3->frag)
			return drop(PGTLS_DROP_TUNNEL_FRAGMENT);
		if (enter_tunnel(&w->depth, PGTLS_TUNNEL_IPIP) < 0)
			return PGTLS_WALK_STOP;
		*next = l3->proto == PGTLS_IPPROTO_IPIP ? PGTLS_NEXT_IPV4 : PGTLS_NEXT_IPV6;
		*off = l4off;
		return PGTLS_WALK_NEXT;
	case PGTLS_IPPROTO_GRE:
		if (l3->frag)
			return drop(PGTLS_DROP_TUNNEL_FRAGMENT);
		if (load(skb, l4off, buf, PGTLS_GRE_MIN_HLEN) < 0)
			return drop(PGTLS_DROP_TUNNEL_TRUNCATED);
		r = pgtls_parse_gre(buf, &th);
		if (tunnel_verdict(r) < 0)
			return PGTLS_WALK_STOP;
		l4off += th.hdr_len;
		if (th.erspan == 2 || th.erspan == 3) {
			__u32 type = th.erspan;

			if (load(skb, l4off, buf,
				 type == 2 ? PGTLS_ERSPAN2_HLEN : PGTLS_ERSPAN3_HLEN) < 0)
				return drop(PGTLS_DROP_TUNNEL_TRUNCATED);
			r = pgtls_parse_erspan(type, buf, &th);
			if (tunnel_verdict(r) < 0)
				return PGTLS_WALK_STOP;
			l4off += th.hdr_len;
		} else if (th.erspan == 1) {
			th.next = PGTLS_NEXT_ETH;
		}
		break;
	case PGTLS_IPPROTO_UDP:
		if (l3->frag == PGTLS_FRAG_LATER)
			return ignore(); /* no UDP header here: cannot tell a tunnel */
		if (load(skb, l4off, buf, PGTLS_UDP_HLEN) < 0)
			return ignore();
		proto = pgtls_be16(buf + 2); /* destination port */
		if (pgtls_port_in(cfg_vxlan_ports, cfg_nvxlan_ports, proto)) {
			th.type = PGTLS_TUNNEL_VXLAN;
		} else if (pgtls_port_in(cfg_geneve_ports, cfg_ngeneve_ports, proto)) {
			th.type = PGTLS_TUNNEL_GENEVE;
		} else {
			return ignore(); /* DNS, QUIC, ... */
		}
		if (l3->frag)
			return drop(PGTLS_DROP_TUNNEL_FRAGMENT);
		{
			__u32 ulen = pgtls_be16(buf + 4);

			if (ulen < PGTLS_UDP_HLEN || (ip_end != 0 && l4off + ulen > ip_end))
				return drop(PGTLS_DROP_TUNNEL_BAD_HEADER);
		}
		l4off += PGTLS_UDP_HLEN;
		if (load(skb, l4off, buf, PGTLS_VXLAN_HLEN) < 0) /* = PGTLS_GENEVE_HLEN */
			return drop(PGTLS_DROP_TUNNEL_TRUNCATED);
		r = th.type == PGTLS_TUNNEL_VXLAN ? pgtls_parse_vxlan(buf, &th) :
						    pgtls_parse_geneve(buf, &th);
		if (tunnel_verdict(r) < 0)
			return PGTLS_WALK_STOP;
		l4off += th.hdr_len;
		break;
	default:
		return ignore();
	}
	/* A tunnel header whose length (GENEVE options, ERSPAN subheader) runs past the frame. */
	if (load(skb, l4off - 1, buf, 1) < 0)
		return drop(PGTLS_DROP_TUNNEL_TRUNCATED);
	if (enter_tunnel(&w->depth, th.type) < 0)
		return PGTLS_WALK_STOP;
	*next = th.next;
	*off = l4off;
	return PGTLS_WALK_NEXT;
}

static __always_inline __u32 pgtls_classify(struct __sk_buff *skb, struct pgtls_cls *out)
{
	struct pgtls_verdict v = {};
	struct pgtls_flow_value fresh = {};
	struct pgtls_flow_value *val;
	struct pgtls_flow_key key = {};
	struct pgtls_walk w = {};
	struct pgtls_l3 l3;
	struct pgtls_l4 l4 = {};
	__u8 buf[PGTLS_TCP_MIN_HLEN];
	__u32 l3off, l4off, hdr_len, payload, end, dir, layer;
	int r = PGTLS_WALK_STOP;

	/* Down to the innermost IP/TCP: the capture's own layer, then at most
	 * PGTLS_MAX_TUNNEL_DEPTH encapsulations (one more is dropped by enter_tunnel). */
	w.next = PGTLS_NEXT_ETH;
	for (layer = 0; layer < PGTLS_MAX_TUNNEL_DEPTH + 1; layer++) {
		w.layer = layer;
		r = pgtls_walk_layer(skb, &w);
		if (r != PGTLS_WALK_NEXT)
			break;
	}
	out->raw_ip = w.raw_ip != 0;
	if (r != PGTLS_WALK_TCP)
		return 0;
	l3 = w.l3;
	l3off = w.l3off;
	l4off = w.l4off;

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
