#!/usr/bin/env bash
# Measures the firmware's footprint on a Cortex-M4F (thumbv7em-none-eabihf, built and run on
# QEMU by run-qemu.sh) and a Cortex-M0+ (thumbv6m-none-eabi, built only, with the
# portable-atomic feature), and prints Markdown tables of
#   * flash (.vector_table + .text + .rodata) and static RAM (.data + .bss), from llvm-size;
#   * the peak heap, as the firmware reports it on QEMU;
#   * code bytes by component, from the disassembly with DWARF line info (llvm-objdump -l):
#     each instruction counts for the source file it was compiled from, so code that LTO
#     inlined into another crate's function still counts for its own crate. Standard-library
#     code counts for the crate whose code it was inlined into, except formatting (its own row)
#     and B-tree and sort routines (their own row, when there are any).
#
# Usage: raft-embassy/footprint.sh   (needs llvm-size, llvm-nm and llvm-objdump; set LLVM_SIZE,
# LLVM_NM and LLVM_OBJDUMP to use others)
set -euo pipefail
size=${LLVM_SIZE:-llvm-size}
nm=${LLVM_NM:-llvm-nm}
objdump=${LLVM_OBJDUMP:-llvm-objdump}
cd "$(dirname "$0")/.."

run=$(raft-embassy/run-qemu.sh)
elf7=$(sed -n 's/^firmware: //p' <<<"$run")
heap=$(sed -n 's/.* heap peak \([0-9]*\) bytes.*/\1/p' <<<"$run")

# The Cortex-M0+ build: the same firmware and profile as run-qemu.sh's. It is not run: QEMU has
# no Cortex-M0+ board with the RAM that three nodes need.
rustup target list --installed | grep -qx thumbv6m-none-eabi || rustup target add thumbv6m-none-eabi
elf6=$(cargo build -p raft-embassy --example firmware --features firmware,portable-atomic \
    --target thumbv6m-none-eabi --profile firmware --config 'profile.firmware.inherits="release"' \
    --config 'profile.firmware.opt-level="z"' --config 'profile.firmware.lto="fat"' \
    --config 'profile.firmware.codegen-units=1' --message-format=json-render-diagnostics |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -n "$elf6" ] || { echo "footprint.sh: cargo built no thumbv6m firmware" >&2; exit 1; }

section() { "$size" -A "$1" | awk -v name="$2" '$1 == name { print $2 }'; }
constants() { echo $(($(section "$1" .vector_table) + $(section "$1" .rodata))); }
flash() { echo $(($(constants "$1") + $(section "$1" .text))); }
ram() { echo $(($(section "$1" .data) + $(section "$1" .bss))); }
symbol() { "$nm" --print-size --radix=d "$1" | awk -v pattern="$2" '$0 ~ pattern { sum += $2 } END { print sum + 0 }'; }
kib() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }
cell() { echo "$1 ($(kib "$1"))"; }

arena=$(symbol "$elf7" 'heap4init5ARENA')
regions=$(symbol "$elf7" 'cluster5FLASH')
echo "| firmware | thumbv7em (M4F) | thumbv6m (M0+) |"
echo "| --- | ---: | ---: |"
echo "| flash: .vector_table + .text + .rodata | $(cell "$(flash "$elf7")") | $(cell "$(flash "$elf6")") |"
echo "| static RAM: .data + .bss | $(cell "$(ram "$elf7")") | $(cell "$(ram "$elf6")") |"
echo "| of which the heap arena | $(cell "$arena") | $(cell "$(symbol "$elf6" 'heap4init5ARENA')") |"
echo "| of which the nodes' RAM-backed flash | $(cell "$regions") | $(cell "$(symbol "$elf6" 'cluster5FLASH')") |"
echo "| static RAM besides those | $(cell $(($(ram "$elf7") - arena - regions))) | $(cell $(($(ram "$elf6") - arena - regions))) |"
echo "| peak heap, 3 nodes with 64-entry logs (QEMU) | $(cell "$heap"), $(kib $((heap / 3))) per node at most | |"
echo

# Prints "component<TAB>bytes" lines for an ELF, the code-only Raft total last.
components() {
    "$objdump" -d -l -C --no-show-raw-insn "$1" | awk -v constants="$(constants "$1")" '
    function hex(s,    i, n) {
        n = 0
        for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
        return n
    }
    function by_file(path) {
        if (path ~ /raft-core\//) return "Raft: raft-core"
        if (path ~ /raft-embassy\/src\/flash/ || path ~ /\/(sequential-storage|embedded-storage|embedded-storage-async)-[0-9]/) \
            return "Raft: flash store (FlashLog, sequential-storage)"
        if (path ~ /raft-embassy\/src\//) return "Raft: raft-embassy"
        if (path ~ /\/(serde|serde_core|postcard|cobs|bytes|heapless|crc|crc-catalog|portable-atomic)-[0-9]/) return "Raft: wire format (serde, postcard, bytes)"
        if (path ~ /\/(futures-util|futures-core|pin-project-lite)-[0-9]/) return "Raft: stream plumbing (futures-util)"
        if (path ~ /examples\/firmware\/(cluster|main)\.rs/) return "demo: scenario, output and RAM-backed flash"
        if (path ~ /^\/rustc\/|^library\//) return ""
        return "platform: executor, time driver, allocator, runtime"
    }
    function by_std_file(path) {
        if (path ~ /library\/(core|alloc)\/src\/(fmt|panicking|panic|str|string)/) return "demo: formatting and panic messages"
        if (path ~ /library\/alloc\/src\/collections\/btree|library\/core\/src\/slice\/sort/) \
            return "Raft: B-trees and sorting"
        return ""
    }
    function by_symbol(name) {
        if (name ~ /raft_core/) return "Raft: raft-core"
        if (name ~ /raft_embassy::flash|sequential_storage|embedded_storage/) return "Raft: flash store (FlashLog, sequential-storage)"
        if (name ~ /raft_embassy/) return "Raft: raft-embassy"
        if (name ~ /serde|postcard|bytes::|cobs|heapless|portable_atomic/) return "Raft: wire format (serde, postcard, bytes)"
        if (name ~ /futures_util|futures_core/) return "Raft: stream plumbing (futures-util)"
        if (name ~ /alloc::collections::btree|core::slice::sort/) return "Raft: B-trees and sorting"
        if (name ~ /core::fmt|alloc::fmt|panicking|core::str|alloc::string/) return "demo: formatting and panic messages"
        if (name ~ /firmware::(cluster|demo|main|fail|panic|__cortex_m_rt_main)/) return "demo: scenario, output and RAM-backed flash"
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
            printf "%s\t%d\n", part, bytes[part] | "sort"
        }
        close("sort")
        printf "read-only data: vector table, constants, strings, panic locations\t%d\n", constants
        printf "**Raft part: the Raft rows (code only)**\t%d\n", raft
    }'
}

echo "| flash by component | thumbv7em (M4F) | thumbv6m (M0+) |"
echo "| --- | ---: | ---: |"
components "$elf6" >/tmp/footprint.$$.6
components "$elf7" | while IFS=$'\t' read -r part bytes7; do
    bytes6=$(awk -F'\t' -v part="$part" '$1 == part { print $2 }' /tmp/footprint.$$.6)
    bytes6=${bytes6:-0}
    if [[ $part == \*\** ]]; then
        echo "| $part | **$bytes7 ($(kib "$bytes7"))** | **$bytes6 ($(kib "$bytes6"))** |"
    else
        echo "| $part | $(cell "$bytes7") | $(cell "$bytes6") |"
    fi
done
rm -f /tmp/footprint.$$.6
