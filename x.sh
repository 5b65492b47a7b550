#!/usr/bin/env bash
# Entry point for a fresh machine: installs the pinned Rust toolchain (rustup does not
# do that on first use), then hands over to `cargo xtask`.
#
#   ./x.sh run    set up, then boot oxen with the console on this terminal
#   ./x.sh test   set up, then run the host tests and every boot scenario
#   ./x.sh bench  set up, then run the benchmarks
#   ./x.sh <xtask command> [args]   anything else goes straight to cargo xtask
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v rustup >/dev/null 2>&1; then
    echo "x.sh: rustup is required (https://rustup.rs); it installs the toolchain pinned in rust-toolchain.toml" >&2
    exit 1
fi
# Reads rust-toolchain.toml: the pinned nightly with its components and targets.
rustup toolchain install >/dev/null

cmd="${1:-help}"
[ $# -gt 0 ] && shift
case "$cmd" in
    run | test | bench)
        cargo xtask setup
        exec cargo xtask "$cmd" "$@"
        ;;
    *)
        exec cargo xtask "$cmd" "$@"
        ;;
esac
