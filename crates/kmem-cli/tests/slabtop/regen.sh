#!/bin/sh
# Regenerates the expected outputs of tests/top.rs from real slabtop (procps-ng; these were made
# with 4.0.2): slabtop reads only /proc/slabinfo, so each input is bind-mounted over it in a
# mount namespace of its own (root, util-linux's unshare). The inputs: host.slabinfo is the
# first 60 caches of a Linux 6.x host's /proc/slabinfo, empty/idle.slabinfo edge cases of it,
# kmem.slabinfo is `kmem stat slabinfo --workload slab`.
set -eu
# slabtop sorts names with strcoll and prints numbers with the locale's decimal point: C's.
export LC_ALL=C
cd "$(dirname "$0")"
run() { unshare -m sh -c "mount --bind '$PWD/$1.slabinfo' /proc/slabinfo && slabtop -o -s $2" > "$1.$2.out"; }
for k in o a s n c u l b p v; do run host "$k"; done
for k in o n u c; do run kmem "$k"; done
run empty o
run idle o
