#!/usr/bin/env bash
# Measures the firmware's footprint: builds and runs it (run-qemu.sh), then prints Markdown
# tables of
#   * flash (.vector_table + .text + .rodata) and static RAM (.data + .bss), from llvm-size;
#   * the peak heap, as the firmware reports it;
#   * code bytes by component, from the disassembly with DWARF line info (llvm-objdump -l):
#     each instruction counts for the source file it was compiled from, so code that LTO
#     inlined into another crate's function still counts for its own crate. Standard-library
#     code counts for the crate whose code it was inlined into, except formatting (its own row)
#     and the B-tree and sort routines (their own row: raft-core's maps, sets and quorum math).
#
# Usage: raft-embassy/footprint.sh   (needs llvm-size, llvm-nm and llvm-objdump; set LLVM_SIZE,
# LLVM_NM and LLVM_OBJDUMP to use others)
set -euo pipefail
size=${LLVM_SIZE:-llvm-size}
nm=${LLVM_NM:-llvm-nm}
objdump=${LLVM_OBJDUMP:-llvm-objdump}

run=$("$(dirname "$0")/run-qemu.sh")
elf=$(sed -n 's/^firmware: //p' <<<"$run")
heap=$(sed -n 's/.* heap peak \([0-9]*\) bytes.*/\1/p' <<<"$run")

section() { "$size" -A "$elf" | awk -v name="$1" '$1 == name { print $2 }'; }
constants=$(($(section .vector_table) + $(section .rodata)))
flash=$((constants + $(section .text)))
ram=$(($(section .data) + $(section .bss)))
arena=$("$nm" --print-size --radix=d "$elf" | awk '/heap4init5ARENA/ { print $2 + 0 }')

kib() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }

echo "| firmware | bytes | |"
echo "| --- | ---: | --- |"
echo "| flash: .vector_table + .text + .rodata | $flash | $(kib "$flash") |"
echo "| static RAM: .data + .bss | $ram | $(kib "$ram"), of which the heap arena $(kib "$arena") |"
echo "| static RAM besides the heap arena | $((ram - arena)) | $(kib $((ram - arena))) |"
echo "| peak heap, 3 nodes with 64-entry logs | $heap | $(kib "$heap"), $(kib $((heap / 3))) per node at most |"
echo
echo "| flash by component | bytes | |"
echo "| --- | ---: | --- |"
"$objdump" -d -l -C --no-show-raw-insn "$elf" | awk -v constants="$constants" '
    function hex(s,    i, n) {
        n = 0
        for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
        return n
    }
    function by_file(path) {
        if (path ~ /raft-core\//) return "Raft: raft-core"
        if (path ~ /raft-embassy\/src\//) return "Raft: raft-embassy"
        if (path ~ /\/(serde|serde_core|postcard|cobs|bytes|heapless|crc)-[0-9]/) return "Raft: wire format (serde, postcard, bytes)"
        if (path ~ /\/(futures-util|futures-core|pin-project-lite)-[0-9]/) return "Raft: stream plumbing (futures-util)"
        if (path ~ /examples\/firmware\/(cluster|main)\.rs/) return "demo: scenario and output"
        if (path ~ /^\/rustc\/|^library\//) return ""
        return "platform: executor, time driver, allocator, runtime"
    }
    function by_std_file(path) {
        if (path ~ /library\/(core|alloc)\/src\/(fmt|panicking|panic|str|string)/) return "demo: formatting and panic messages"
        if (path ~ /library\/alloc\/src\/collections\/btree|library\/core\/src\/slice\/sort/) \
            return "Raft: B-trees and sorting (raft-core maps, sets, quorum)"
        return ""
    }
    function by_symbol(name) {
        if (name ~ /raft_core/) return "Raft: raft-core"
        if (name ~ /raft_embassy/) return "Raft: raft-embassy"
        if (name ~ /serde|postcard|bytes::|cobs|heapless/) return "Raft: wire format (serde, postcard, bytes)"
        if (name ~ /futures_util|futures_core/) return "Raft: stream plumbing (futures-util)"
        if (name ~ /alloc::collections::btree|core::slice::sort/) return "Raft: B-trees and sorting (raft-core maps, sets, quorum)"
        if (name ~ /core::fmt|alloc::fmt|panicking|core::str|alloc::string/) return "demo: formatting and panic messages"
        if (name ~ /firmware::(cluster|demo|main|fail|panic|__cortex_m_rt_main)/) return "demo: scenario and output"
        if (name ~ /embassy|cortex_m|linked_list|embedded_alloc|critical_section|compiler_builtins|firmware::(heap|time_driver)|^(Reset|SysTick|HardFault|DefaultHandler|__pre_init|mem|__aeabi|__udiv)/) \
            return "platform: executor, time driver, allocator, runtime"
        return "standard library code used by several parts"
    }
    /^[0-9a-f]+ <[^$].*>:$/ {
        owner = by_symbol(substr($0, index($0, "<") + 1, length($0) - index($0, "<") - 2))
        class = owner
        next
    }
    /^; \// {
        path = substr($2, 1, index($2, ":") - 1)
        class = by_file(path)
        if (class != "") owner = class
        else class = by_std_file(path) != "" ? by_std_file(path) : owner
        next
    }
    /^ +[0-9a-f]+:/ {
        address = hex(substr($1, 1, length($1) - 1))
        if (previous != "") bytes[previous_class] += address - previous
        previous = address
        previous_class = class
    }
    END {
        for (part in bytes) {
            if (part ~ /^Raft/) raft += bytes[part]
            printf "| %s | %d | %.1f KiB |\n", part, bytes[part], bytes[part] / 1024 | "sort"
        }
        close("sort")
        printf "| read-only data: vector table, constants, strings, panic locations | %d | %.1f KiB |\n", \
            constants, constants / 1024
        printf "| **Raft part: the Raft rows (code only)** | **%d** | **%.1f KiB** |\n", raft, raft / 1024
    }'
