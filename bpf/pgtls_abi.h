/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * bpf/pgtls_abi.h: the only header shared by the kernel program (capture.bpf.c) and user space
 * (capture/bpf_abi.h re-checks the layout with static_assert). capture_tc.bpf.c (the TC classifier
 * + BPF ring buffer attach point) shares everything here and adds struct pgtls_pkt_event. Packet programs use UAPI headers,
 * not vmlinux.h. Every type here has fixed-width fields and explicit padding; enums are stored
 * in __u32 fields.
 *
 * Flow identity. A TCP connection maps to ONE pgtls_flow_key whatever the packet's direction:
 * both endpoints are written as (IPv4-mapped IPv6 address, port) and the smaller endpoint
 * (memcmp of the 16 address bytes, then the port) goes into addr_lo/port_lo. Ports are stored
 * in HOST byte order. A packet travels in direction PGTLS_DIR_LO_TO_HI when its source is the
 * lo endpoint, else PGTLS_DIR_HI_TO_LO. That says nothing about client or server.
 */
#pragma once

#include <linux/types.h>

/* 2: PGTLS_DROP_RINGBUF_FULL (drops_pcpu grew by one slot), struct pgtls_pkt_event.
 * 3: decapsulation: PGTLS_STAT_TUNNEL_* (stats_pcpu), PGTLS_DROP_TUNNEL_* (drops_pcpu),
 *    cfg_vxlan_ports / cfg_geneve_ports in .rodata. */
#define PGTLS_ABI_VERSION 3u

#define PGTLS_MAX_PORTS 8u
/* Per direction: a full TLS record (16 KiB + 5) plus headroom for the PostgreSQL preamble
 * (SSLRequest, 'S') and TLS 1.2 server flights whose certificate chain spans several records. */
#define PGTLS_DEFAULT_PER_DIR_CAP (16384u + 5u + 16384u)
#define PGTLS_DEFAULT_FLOW_ENTRIES 65536u

/* Map value state, written by the kernel (HANDSHAKE on creation) and by user space (DONE, the
 * connection's record is final: spec/session-record.md "When a record is final"). */
enum pgtls_flow_state {
	PGTLS_FLOW_HANDSHAKE = 0,
	PGTLS_FLOW_DONE = 1,
};

enum pgtls_dir {
	PGTLS_DIR_LO_TO_HI = 0,
	PGTLS_DIR_HI_TO_LO = 1,
};

struct pgtls_flow_key {
	__u8 addr_lo[16]; /* IPv4-mapped IPv6 (::ffff:a.b.c.d) or IPv6, network order */
	__u8 addr_hi[16];
	__u16 port_lo; /* host order */
	__u16 port_hi;
}; /* 36 bytes, 2-byte aligned: no padding */

struct pgtls_flow_value {
	__u32 state; /* enum pgtls_flow_state */
	__u32 pad0;
	__u64 passed_payload[2]; /* TCP payload bytes passed to user space, by enum pgtls_dir */
	__u64 capped_packets; /* handshake packets not passed: per-direction cap reached */
	__u64 skipped_packets; /* packets seen after DONE and not passed */
	__u64 skipped_bytes; /* their skb->len */
}; /* 48 bytes */

/* Encapsulations the programs strip (the parser's TunnelType, same order, without kNone). */
enum pgtls_tunnel {
	PGTLS_TUNNEL_VXLAN = 0,
	PGTLS_TUNNEL_GENEVE,
	PGTLS_TUNNEL_GRE, /* GRE with an IPv4, IPv6 or Ethernet (GRETAP) payload */
	PGTLS_TUNNEL_ERSPAN, /* types I, II, III (GRE protocols 0x88be, 0x22eb) */
	PGTLS_TUNNEL_IPIP, /* IPv4 or IPv6 in IPv4 (4, 41: SIT) or IPv6 */
	PGTLS_TUNNEL_MAX,
};

/* Per-CPU counters (stats_pcpu), indexed by this enum. Bytes are skb->len: the frame from its
 * link-layer header, a whole GSO/GRO super-packet counted once. */
enum pgtls_stat {
	PGTLS_STAT_PKTS_SEEN = 0, /* TCP packets on a monitored port (any state) */
	PGTLS_STAT_BYTES_SEEN,
	PGTLS_STAT_PKTS_PASSED, /* handed to the ring (return value > 0) */
	PGTLS_STAT_BYTES_PASSED, /* bytes the program asked for (the snap length) */
	PGTLS_STAT_PKTS_SKIPPED, /* flow DONE: counted, not passed */
	PGTLS_STAT_BYTES_SKIPPED,
	PGTLS_STAT_PKTS_CUT, /* passed, but payload cut at the per-direction cap */
	PGTLS_STAT_PKTS_IGNORED, /* not IP/TCP, or no monitored port: not ours */
	PGTLS_STAT_FLOWS_CREATED,
	/* Packets decapsulated, by enum pgtls_tunnel (each layer stripped counts once, whatever
	 * the inner packet turns out to be), as the parser's pgtlsmon_tunnel_packets_total. */
	PGTLS_STAT_TUNNEL_FIRST,
	PGTLS_STAT_TUNNEL_LAST = PGTLS_STAT_TUNNEL_FIRST + PGTLS_TUNNEL_MAX - 1,
	PGTLS_STAT_MAX,
};

/* Per-CPU counters (drops_pcpu): packets of (possibly) monitored flows NOT passed whole. */
enum pgtls_drop_reason {
	PGTLS_DROP_CAP_REACHED = 0, /* handshake flow, per-direction payload cap already used */
	PGTLS_DROP_MAP_FULL, /* flow map insert failed; the packet is passed (fail open) */
	PGTLS_DROP_TRUNCATED_HEADER, /* IPv4/IPv6/TCP header shorter than it says or unreadable */
	PGTLS_DROP_IPV6_EXT_LIMIT, /* too many IPv6 extension headers to find TCP */
	PGTLS_DROP_FRAGMENT, /* non-first IP fragment: no TCP header to classify */
	PGTLS_DROP_RINGBUF_FULL, /* TC attach point: bpf_ringbuf_output failed (ring full) */
	/* Encapsulated packets (any inner port: the inner connection is not known yet). */
	PGTLS_DROP_TUNNEL_TOO_DEEP, /* more than PGTLS_MAX_TUNNEL_DEPTH (4) encapsulations */
	PGTLS_DROP_TUNNEL_TRUNCATED, /* a UDP/VXLAN/GENEVE/GRE/ERSPAN header cut short */
	PGTLS_DROP_TUNNEL_BAD_HEADER, /* bad version or flags, UDP length beyond the IP packet */
	PGTLS_DROP_TUNNEL_UNSUPPORTED, /* unknown GRE/GENEVE protocol, ERSPAN frame type, ... */
	PGTLS_DROP_TUNNEL_FRAGMENT, /* an outer IP fragment carrying a tunnel (not reassembled) */
	PGTLS_DROP_MAX,
};

/* TC attach point (capture_tc.bpf.c): one BPF ring buffer record per passed packet, this header
 * followed by caplen bytes of the frame from its first byte (the link-layer header on Ethernet-like
 * devices; the IP header when flags has PGTLS_EV_RAW_IP). */
#define PGTLS_TC_MAX_SNAP 65536u /* a longer snap is cut here (PGTLS_EV_CUT) */
/* The program forces a wake-up once this many bytes wait in the ring (or on SYN/FIN/RST); the
 * other records are written with BPF_RB_NO_WAKEUP and user space polls on a short timeout. */
#define PGTLS_DEFAULT_WAKEUP_BYTES (256u * 1024u)

enum pgtls_ev_flags {
	PGTLS_EV_EGRESS = 1, /* seen on the TC egress hook (else ingress) */
	PGTLS_EV_RAW_IP = 2, /* no link-layer header: data starts with the IP header */
	PGTLS_EV_CUT = 4, /* caplen < the snap the decision asked for (PGTLS_TC_MAX_SNAP) */
};

struct pgtls_pkt_event {
	__u64 ts_ns; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 ifindex;
	__u32 len; /* skb->len: the frame on the wire (a GSO/GRO super-packet counted once) */
	__u32 caplen; /* bytes following this header */
	__u16 protocol; /* skb->protocol, host order (ETH_P_IP / ETH_P_IPV6) */
	__u8 flags; /* enum pgtls_ev_flags */
	__u8 pad0;
}; /* 24 bytes, followed by the frame */

#ifndef __cplusplus /* C++ re-checks in capture/bpf_abi.h with static_assert */
_Static_assert(sizeof(struct pgtls_flow_key) == 36, "pgtls_flow_key ABI size");
_Static_assert(sizeof(struct pgtls_flow_value) == 48, "pgtls_flow_value ABI size");
_Static_assert(__builtin_offsetof(struct pgtls_flow_value, passed_payload) == 8, "ABI offset");
_Static_assert(PGTLS_STAT_MAX == 14, "stats_pcpu size");
_Static_assert(PGTLS_DROP_MAX == 11, "drops_pcpu size");
_Static_assert(sizeof(struct pgtls_pkt_event) == 24, "pgtls_pkt_event ABI size");
_Static_assert(__builtin_offsetof(struct pgtls_pkt_event, caplen) == 16, "ABI offset");
_Static_assert(__builtin_offsetof(struct pgtls_pkt_event, protocol) == 20, "ABI offset");
#endif
