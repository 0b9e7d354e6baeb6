# SPDX-License-Identifier: MIT
# Operators' commands (issue 15): daemons' -t, epsecctl config, eicar-test,
# compat, support-bundle; the real daemons, as the runbook uses them.
OPS_TESTS = \
	t/integration/ops-config.sh \
	t/integration/ops-eicar.sh \
	t/integration/ops-compat.sh \
	t/integration/ops-bundle.sh \
	t/integration/ops-detect.sh \
	t/integration/ops-metrics.sh
TESTS += $(OPS_TESTS)
EXTRA_DIST += $(OPS_TESTS)
