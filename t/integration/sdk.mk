# SPDX-License-Identifier: MIT
# t/integration/sdk.mk: epsec-sva and libepsec as a vendor ships them:
# reloads under load, engine order and refusals, dropping root, and the
# SDK installed into a prefix with the skeleton plugin built against it
# out of tree. The scripts drive the real daemons with two small helpers.

# A stand-in agent (events from files, verdicts printed) and a raw
# control-socket client.
check_PROGRAMS += t/integration/sdk-agent t/integration/ctl-call
t_integration_sdk_agent_SOURCES = t/integration/sdk-agent.c
t_integration_sdk_agent_CFLAGS = $(AM_CFLAGS) $(PROTOBUF_C_CFLAGS)
t_integration_sdk_agent_LDADD = libcore/libepsec-core.la
t_integration_ctl_call_SOURCES = t/integration/ctl-call.c
t_integration_ctl_call_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS)
t_integration_ctl_call_LDADD = libcore/libepsec-core.la $(JSONC_LIBS)

# wordlist.la: an engine whose reload can be watched; wordlist_abi9.la:
# the same built for a verdict ABI that does not exist (9.0).
check_LTLIBRARIES += t/integration/wordlist.la t/integration/wordlist_abi9.la
t_integration_wordlist_la_SOURCES = t/integration/wordlist.c
t_integration_wordlist_la_LDFLAGS = $(PLUGIN_LDFLAGS) -rpath /nowhere
t_integration_wordlist_la_LIBADD = $(LIBCONFIG_LIBS) -lpthread
t_integration_wordlist_abi9_la_SOURCES = t/integration/wordlist.c
t_integration_wordlist_abi9_la_CPPFLAGS = $(AM_CPPFLAGS) -DWORDLIST_ABI_MAJOR=9
t_integration_wordlist_abi9_la_LDFLAGS = $(PLUGIN_LDFLAGS) -rpath /nowhere
t_integration_wordlist_abi9_la_LIBADD = $(LIBCONFIG_LIBS) -lpthread

SDK_TESTS = t/integration/sva-engines.sh t/integration/sva-reload.sh \
	t/integration/sva-user.sh t/integration/sdk.sh
TESTS += $(SDK_TESTS)
EXTRA_DIST += $(SDK_TESTS) t/integration/sdk-lib.sh

# sdk.sh builds partner code (the skeleton, the documented appliance) with
# this build's compiler and flags, so a sanitizer build stays one.
sdk-build-flags:
	@echo 'CC="$(CC)"; CFLAGS="$(CFLAGS)"; LDFLAGS="$(LDFLAGS)"'
.PHONY: sdk-build-flags
