#!/usr/bin/env bash
# Builds the raft-embassy firmware example and runs it on QEMU's mps2-an386 (Cortex-M4F).
#
# Usage: raft-embassy/run-qemu.sh [--build-only]
#
# Passes only if the firmware exits 0 and prints its summary line, which must report the
# power-cycled node's restart ("restored from flash at term T index I"). Installs what it needs
# (the thumbv7em-none-eabihf target, Debian's qemu-system-arm) when missing. Prints the ELF's
# path as "firmware: <path>" (the last line with --build-only).
set -euo pipefail
cd "$(dirname "$0")/.."

target=thumbv7em-none-eabihf
timeout_s=${QEMU_TIMEOUT:-120}
summary='^raft-embassy firmware OK: '

rustup target list --installed | grep -qx "$target" || rustup target add "$target"

# Size-optimized build. Defined here with --config so the script works from any checkout; the
# same settings can live in the workspace Cargo.toml as [profile.firmware].
profile=(
    --profile firmware
    --config 'profile.firmware.inherits="release"'
    --config 'profile.firmware.opt-level="z"'
    --config 'profile.firmware.lto="fat"'
    --config 'profile.firmware.codegen-units=1'
)
elf=$(cargo build -p raft-embassy --example firmware --features firmware --target "$target" "${profile[@]}" \
    --message-format=json-render-diagnostics | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -n "$elf" ] || { echo "run-qemu.sh: cargo built no firmware executable" >&2; exit 1; }
echo "firmware: $elf"
[ "${1:-}" = --build-only ] && exit 0

if ! command -v qemu-system-arm >/dev/null; then
    sudo=$([ "$(id -u)" = 0 ] || echo sudo)
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq qemu-system-arm >/dev/null
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
timeout "$timeout_s" qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
    -semihosting-config enable=on,target=native -kernel "$elf" | tee "$log" || status=${PIPESTATUS[0]}

if [ "$status" -ne 0 ]; then
    [ "$status" -eq 124 ] && echo "run-qemu.sh: the firmware did not finish within ${timeout_s}s" >&2
    echo "run-qemu.sh: the firmware failed (exit status $status)" >&2
    exit 1
fi
grep -q "$summary" "$log" || { echo "run-qemu.sh: no summary line in the firmware's output" >&2; exit 1; }
grep "$summary" "$log" | grep -Eq 'restored from flash at term [0-9]+ index [0-9]+' ||
    { echo "run-qemu.sh: the summary line does not report a restart from flash" >&2; exit 1; }
