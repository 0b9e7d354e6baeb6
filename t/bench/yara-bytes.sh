#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make bench: what the SVA reads (status content.bytes_read) for one large
# file, as a multiple of its size, with the yara engine, for several sizes,
# with fd passing (unix) and through READ over tcp (content staged once).
# Target: <= 1.05x for every size. BENCH_YARA_SIZES in MiB ("1 8 29 64").
export BENCH_SIZES=${BENCH_YARA_SIZES:-1 8 29 64}
exec bash "$(dirname "$0")/../integration/engines-yara-files.sh" "$@"
