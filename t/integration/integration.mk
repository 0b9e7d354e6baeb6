# SPDX-License-Identifier: MIT
# Integration scripts: real daemons, real sockets, fanotify on a tmpfs in a
# private mount namespace. Each skips (exit 77) with the reason when the
# machine cannot run it (no root, no unshare).
INTEGRATION_TESTS = \
	t/integration/config.sh \
	t/integration/chain-unix.sh \
	t/integration/chain-tcp.sh
TESTS += $(INTEGRATION_TESTS)
EXTRA_DIST += $(INTEGRATION_TESTS) t/integration/lib.sh t/integration/chain.sh
