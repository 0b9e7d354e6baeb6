#!/bin/sh
# SPDX-License-Identifier: MIT
# make check: a short run of the conf fuzzer (run-fuzz.sh).
exec "${top_srcdir:-.}/t/fuzz/run-fuzz.sh" conf
