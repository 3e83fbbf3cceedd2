#!/usr/bin/env bash
# Builds raft-core and the raft-embassy library for every bare-metal target CI covers:
#
#   thumbv6m-none-eabi          Cortex-M0/M0+ (RP2040, STM32F0)      with --features portable-atomic
#   thumbv7em-none-eabihf       Cortex-M4F/M7F (STM32F4, nRF52)
#   thumbv8m.main-none-eabihf   Cortex-M33 (nRF5340, STM32U5, RP2350)
#   riscv32imc-unknown-none-elf RISC-V without atomics (ESP32-C3)    with --features portable-atomic
#
# Targets without compare-and-swap atomics need the `portable-atomic` feature (see
# raft-embassy/README.md). raft-embassy is built twice per target: with its default features and
# with the optional UDP transport and frame authentication (`udp,auth`). Installs the rustup
# targets when missing.
#
# Usage: raft-embassy/build-targets.sh
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(
    "thumbv6m-none-eabi portable-atomic"
    "thumbv7em-none-eabihf"
    "thumbv8m.main-none-eabihf"
    "riscv32imc-unknown-none-elf portable-atomic"
)

installed=$(rustup target list --installed)
for spec in "${targets[@]}"; do
    target=${spec%% *}
    grep -qx "$target" <<<"$installed" || rustup target add "$target"
done

for spec in "${targets[@]}"; do
    read -r target features <<<"$spec"
    args=(--target "$target")
    [ -n "${features:-}" ] && args+=(--features "$features")
    echo "==> $target ${features:+(features: $features)}"
    cargo build -p raft-core "${args[@]}"
    cargo build -p raft-embassy --lib "${args[@]}"
    cargo build -p raft-embassy --lib --target "$target" --features "${features:+$features,}udp,auth"
done
echo "build-targets.sh: raft-core and raft-embassy build for ${#targets[@]} targets"
