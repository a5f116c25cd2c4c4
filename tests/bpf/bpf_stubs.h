// tests/bpf/bpf_stubs.h: what bpf/parse_helpers.h needs from the BPF toolchain, for compiling it
// as user-space C++ (STYLE.md section 5; Pixie's bcc_bpf stubs.h plays the same role).
#pragma once

#include <linux/types.h>

#define PGTLS_INLINE static inline
