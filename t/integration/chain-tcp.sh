#!/bin/sh
# SPDX-License-Identifier: MIT
exec "$(dirname "$0")/chain.sh" tcp
