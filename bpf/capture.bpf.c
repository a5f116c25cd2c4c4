// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * bpf/capture.bpf.c: a socket filter (BPF_PROG_TYPE_SOCKET_FILTER) for an AF_PACKET socket with
 * a TPACKET_V3 ring (capture/bpf_source.cc), the default attach point. Its return value is the
 * snap length: 0 means this socket does not see the packet, N > 0 means "copy the first N bytes
 * into the ring".
 *
 * It passes the handshake bytes of TCP connections on the monitored ports and nothing once user
 * space has marked the connection DONE (its record is final), while still counting the DONE
 * connection's packets and bytes. Parsing, flow state and counting: capture_common.bpf.h;
 * decisions: parse_helpers.h (pgtls_decide).
 */
#include "capture_common.bpf.h"

#define PGTLS_PACKET_OUTGOING 4 /* linux/if_packet.h */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("socket")
int pgtls_capture(struct __sk_buff *skb)
{
	struct pgtls_cls cls = {};

	/* On lo every packet shows up twice, outgoing then incoming: keep the incoming copy (as
	 * libpcap does), so each byte counts once against the cap. */
	if (skb->pkt_type == PGTLS_PACKET_OUTGOING && skb->ifindex == PGTLS_LOOPBACK_IFINDEX)
		return 0;
	return (int)pgtls_classify(skb, &cls);
}
