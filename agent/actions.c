/* SPDX-License-Identifier: MIT */
/* Actions on files the SVA found infected after a write: delete or
 * quarantine, each only if the path still names the inode that was
 * scanned. Deny needs nothing here: the write already happened. */
#include "config.h"
#include "actions.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "detect.h"
#include "log.h"
#include "quarantine.h"

#define EPSEC_LOG_SRC "action"

const char *vsep_action_name(enum vsep_action act)
{
	switch (act) {
	case VSEP_ACT_ALLOW:
		return "allow";
	case VSEP_ACT_DENY:
		return "deny";
	case VSEP_ACT_DELETE:
		return "delete";
	case VSEP_ACT_QUARANTINE:
		return "quarantine";
	}
	return "?";
}

/* The path may have been renamed over since the event, or a directory on
 * it swapped for a symlink: unlinking it then would delete someone else's
 * file. vsep_unlink_if_same resolves the directory without symlinks. */
static int delete_file(const char *path, dev_t dev, ino_t ino, const char *signature)
{
	int r = vsep_unlink_if_same(path, dev, ino);

	switch (r) {
	case 0:
		EPSEC_WARN("deleted %s: %s", path, signature);
		break;
	case -ENOENT:
		EPSEC_INFO("%s (%s): already gone", path, signature);
		break;
	case -ESTALE:
		EPSEC_WARN("not deleting %s (%s): the path now names another file", path, signature);
		break;
	case -ELOOP:
	case -ENOTDIR:
		EPSEC_WARN("not deleting %s (%s): a directory on the path is now a symlink", path,
			   signature);
		break;
	default:
		EPSEC_ERR("cannot delete %s (%s): %s", path, signature, strerror(-r));
		break;
	}
	return r;
}

static int quarantine_file(const char *path, dev_t dev, ino_t ino, const char *engine,
			   const char *signature, char id[VSEP_QUARANTINE_ID_LEN])
{
	int r = vsep_quarantine_file(path, dev, ino, engine, signature, id);

	if (r < 0) {
		if (r != -ENOENT)
			atomic_fetch_add(&vsep_stats.errors, 1);
		if (r == -ESTALE || r == -ENOENT)
			EPSEC_WARN("not quarantining %s (%s): %s", path, signature,
				   r == -ESTALE ? "the path now names another file" : strerror(-r));
		else if (r == -ELOOP || r == -ENOTDIR)
			EPSEC_WARN("not quarantining %s (%s): a directory on the path is now a "
				   "symlink", path, signature);
		else
			EPSEC_ERR("cannot quarantine %s (%s): %s", path, signature, strerror(-r));
		return r;
	}
	atomic_fetch_add(&vsep_stats.quarantined, 1);
	EPSEC_WARN("quarantined %s: %s found by %s (quarantine id %s)", path, signature,
		   engine ? engine : "?", id);
	return 0;
}

int vsep_action_apply(enum vsep_action act, const char *path, dev_t dev, ino_t ino,
		      const char *signature)
{
	return vsep_action_apply_engine(act, path, dev, ino, NULL, signature);
}

/* The detection record's "result": what became of the file. */
static void report(enum vsep_action act, const char *path, const char *engine,
		   const char *signature, int r, const char *id)
{
	char result[160];

	if (r == 0 && act == VSEP_ACT_DENY)
		snprintf(result, sizeof(result), "left in place, opens refused");
	else if (r == 0 && act == VSEP_ACT_DELETE)
		snprintf(result, sizeof(result), "deleted");
	else if (r == 0)
		snprintf(result, sizeof(result), "quarantined as %s", id);
	else
		snprintf(result, sizeof(result), "failed: %s", r == -ESTALE ? "the path now names "
			 "another file" : strerror(-r));
	vsep_detect_report(path, engine, signature, act, result);
}

int vsep_action_apply_engine(enum vsep_action act, const char *path, dev_t dev, ino_t ino,
			     const char *engine, const char *signature)
{
	char id[VSEP_QUARANTINE_ID_LEN] = "";
	int r = 0;

	if (!signature)
		signature = "infected";
	switch (act) {
	case VSEP_ACT_ALLOW:
		return 0;
	case VSEP_ACT_DENY:
		EPSEC_WARN("%s: %s (action deny: file left in place)", path, signature);
		break;
	case VSEP_ACT_DELETE:
		r = delete_file(path, dev, ino, signature);
		break;
	case VSEP_ACT_QUARANTINE:
		r = quarantine_file(path, dev, ino, engine, signature, id);
		break;
	default:
		return -EINVAL;
	}
	/* Already gone: a second scan of the file, whose first was reported. */
	if (r != -ENOENT)
		report(act, path, engine, signature, r, id);
	return r;
}
