/* SPDX-License-Identifier: MIT */
/* The capabilities vsep keeps after start-up, and why each one: an agent
 * that reads every protected file for a scanner should be able to do
 * nothing else. libcap-ng does the capset(2) and bounding-set work. */
#include "config.h"
#include "caps.h"

#include <cap-ng.h>
#include <errno.h>
#include <unistd.h>
#include <linux/capability.h>

int vsep_caps_drop(void)
{
	capng_select_t what = CAPNG_SELECT_BOTH;

	if (geteuid() != 0)
		return 0;
	/* Under systemd the unit's CapabilityBoundingSet already bounds us
	 * and leaves out CAP_SETPCAP, which dropping from the bounding set
	 * needs: then the sets we hold are enough. */
	if (capng_get_caps_process() < 0)
		return -EPERM;
	if (!capng_have_capability(CAPNG_EFFECTIVE, CAP_SETPCAP))
		what = CAPNG_SELECT_CAPS;
	capng_clear(what);
	/* SYS_ADMIN: marks for new directories and mounts; DAC_READ_SEARCH:
	 * directories opened by handle, files swept; DAC_OVERRIDE, FOWNER:
	 * delete and quarantine any file; CHOWN: restore its owner;
	 * SETUID, SETGID: setfsuid/setfsgid to restore it as its owner;
	 * SYS_PTRACE: /proc/PID/exe of other users' processes (exclude_exes,
	 * the exe sent with each event). */
	if (capng_updatev(CAPNG_ADD, CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET,
			  CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH, CAP_DAC_OVERRIDE, CAP_FOWNER,
			  CAP_CHOWN, CAP_SETUID, CAP_SETGID, CAP_SYS_PTRACE, -1) < 0)
		return -EINVAL;
	return capng_apply(what) < 0 ? -EPERM : 0;
}
