/* SPDX-License-Identifier: MIT */
/* epsec-sva gives up root once its plugins and sockets are open: it parses
 * hostile content, so a bug in an engine must not be a bug running as
 * root. Signature databases may stay readable by root only for the start;
 * a reload runs as the user and needs to read them. */
#include "config.h"
#include "sva.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"

#define EPSEC_LOG_SRC "sva"
#define DEFAULT_USER "epsec"
/* Without an epsec account: the system's unprivileged user, or its
 * customary ids when even that is missing. Never root by default. */
#define FALLBACK_USER "nobody"
#define FALLBACK_ID 65534

void sva_no_new_privs(void)
{
	/* Nothing this process runs may gain privileges again (set-user-ID
	 * files, file capabilities). Per thread and inherited: set it before
	 * any thread exists. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		EPSEC_WARN("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
}

static int lookup(const char *name, struct sva_user *u)
{
	struct passwd pw, *found = NULL;
	char buf[4096];
	int r;

	if (strlen(name) >= sizeof(u->name))
		return -ENAMETOOLONG;
	r = getpwnam_r(name, &pw, buf, sizeof(buf), &found);
	if (r)
		return -r;
	if (!found)
		return -ENOENT;
	snprintf(u->name, sizeof(u->name), "%s", name);
	u->uid = pw.pw_uid;
	u->gid = pw.pw_gid;
	return 0;
}

/* Not switching: the name of who we are, for status. */
static int stay(struct sva_user *u)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	memset(u, 0, sizeof(*u));
	u->uid = geteuid();
	u->gid = getegid();
	if (getpwuid_r(u->uid, &pw, buf, sizeof(buf), &found) == 0 && found &&
	    strlen(pw.pw_name) < sizeof(u->name))
		snprintf(u->name, sizeof(u->name), "%s", pw.pw_name);
	else
		snprintf(u->name, sizeof(u->name), "uid %u", (unsigned)u->uid);
	return 0;
}

/* No user configured and no epsec account (a build run from the source
 * tree, a package not installed): not root, whatever else is missing. */
static int fall_back(struct sva_user *u)
{
	int r = lookup(FALLBACK_USER, u);

	if (r < 0 || u->uid == 0) {
		memset(u, 0, sizeof(*u));
		snprintf(u->name, sizeof(u->name), "uid %d", FALLBACK_ID);
		u->uid = FALLBACK_ID;
		u->gid = FALLBACK_ID;
		u->numeric = true;
	}
	EPSEC_WARN("there is no user \"%s\": running as %s (uid %u, gid %u) instead of root "
		     "(create the user, or name one with user = \"...\")", DEFAULT_USER, u->name,
		     (unsigned)u->uid, (unsigned)u->gid);
	u->drop = true;
	return 0;
}

int sva_user_resolve(const char *name, const config_setting_t *where, struct sva_user *u)
{
	const char *want = name ? name : DEFAULT_USER;
	int r;

	stay(u);
	if (geteuid() != 0) {
		EPSEC_DBG("started as uid %u, not root: no user to switch to", (unsigned)geteuid());
		return 0;
	}
	r = lookup(want, u);
	if (r == -ENOENT && !name)
		return fall_back(u);
	if (r < 0)
		return epsec_conf_error(where, "no user \"%s\" on this system%s%s", want,
					r == -ENOENT ? "" : ": ", r == -ENOENT ? "" : strerror(-r));
	if (u->uid == 0) {
		EPSEC_INFO("user = \"%s\": keeping root privileges", want);
		return stay(u);
	}
	u->drop = true;
	return 0;
}

int sva_user_drop(const struct sva_user *u)
{
	const char *step;
	int r;

	if (!u->drop)
		return 0;
	/* The user's own supplementary groups: a group may be how it reads
	 * the signature databases. */
	step = "setgroups";
	if (u->numeric ? setgroups(0, NULL) < 0 : initgroups(u->name, u->gid) < 0)
		goto fail;
	step = "setgid";
	if (setresgid(u->gid, u->gid, u->gid) < 0)
		goto fail;
	step = "setuid";
	if (setresuid(u->uid, u->uid, u->uid) < 0)
		goto fail;
	step = "check";
	errno = EPERM;
	if (setuid(0) == 0 || geteuid() != u->uid || getegid() != u->gid)
		goto fail;
	EPSEC_INFO("running as user %s (uid %u, gid %u)", u->name, (unsigned)u->uid,
		   (unsigned)u->gid);
	return 0;
fail:
	r = -errno;
	EPSEC_ERR("cannot run as user %s: %s: %s%s", u->name, step, strerror(-r),
		  r == -EPERM ? " (root without CAP_SETUID and CAP_SETGID? user = \"root\" "
				"keeps root instead)"
			      : "");
	return r;
}

int sva_core_dumps(const char *dir)
{
	/* Changing uids made the process non-dumpable: no core, and its
	 * /proc files root's. Its own user may read its memory anyway. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		EPSEC_WARN("PR_SET_DUMPABLE: %s: a crash leaves no core", strerror(errno));
	if (!dir || !*dir)
		return 0;
	if (chdir(dir) < 0) {
		EPSEC_ERR("core_dir %s: %s (it must exist and be writable by the user epsec-sva "
			  "runs as)", dir, strerror(errno));
		return -errno;
	}
	EPSEC_INFO("a crash leaves its core in %s (as core_pattern names it)", dir);
	return 0;
}
