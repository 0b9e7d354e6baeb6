/* SPDX-License-Identifier: MIT */
/* epsecctl quarantine list | restore ID | delete ID: what vsep moved into
 * its quarantine_dir, asked of vsep's control socket. vsep does the file
 * work itself (as root, in a directory only it may enter). */
#include "config.h"
#include "epsecctl.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <json-c/json.h>

#include "ctl.h"

#define EX_FAILED 1
/* A restore across filesystems copies the file: give it time. */
#define CALL_TIMEOUT_MS 60000

static void usage(FILE *f)
{
	fprintf(f, "usage: epsecctl quarantine list [--json]\n"
		   "       epsecctl quarantine restore ID\n"
		   "       epsecctl quarantine delete ID\n"
		   "  list     what vsep quarantined: ID, when, owner, size, signature, path\n"
		   "  restore  put ID back at its original path, owner and mode (never over\n"
		   "           an existing file); it is scanned again when opened\n"
		   "  delete   remove ID and its record for good\n");
}

static const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return "";
	return json_object_get_string(v);
}

static long long jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return 0;
	return (long long)json_object_get_int64(v);
}

/* 0 and *reply when vsep answered "ok": true; else prints why, 1. */
static int call(const struct epsecctl_env *env, const char *cmd, const char *id,
		struct json_object **reply)
{
	struct json_object *req = json_object_new_object(), *ok;
	char path[PATH_MAX];
	int r;

	epsecctl_ctl_path(env, "vsep", path, sizeof(path));
	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	if (id)
		json_object_object_add(req, "id", json_object_new_string(id));
	r = epsec_ctl_call(path, req, CALL_TIMEOUT_MS, reply);
	json_object_put(req);
	if (r < 0) {
		fprintf(stderr, "epsecctl: quarantine: vsep not answering (%s: %s)\n", path,
			strerror(-r));
		return EX_FAILED;
	}
	if (!json_object_object_get_ex(*reply, "ok", &ok) || !json_object_get_boolean(ok)) {
		fprintf(stderr, "epsecctl: quarantine: %s%s%s\n", id ? id : "", id ? ": " : "",
			jstr(*reply, "error"));
		json_object_put(*reply);
		*reply = NULL;
		return EX_FAILED;
	}
	return 0;
}

static void print_item(struct json_object *it)
{
	time_t t = (time_t)jint(it, "time");
	struct tm tm;
	char when[32] = "?";

	if (localtime_r(&t, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	printf("%-16s  %-19s  %6lld  %10lld  %-24s  %-8s  %s\n", jstr(it, "id"), when,
	       jint(it, "uid"), jint(it, "size"), jstr(it, "signature"), jstr(it, "engine"),
	       jstr(it, "path"));
}

static int list(const struct epsecctl_env *env, bool json)
{
	struct json_object *reply, *items;
	size_t i, n;

	if (call(env, "quarantine-list", NULL, &reply))
		return EX_FAILED;
	json_object_object_get_ex(reply, "items", &items);
	n = json_object_is_type(items, json_type_array) ? json_object_array_length(items) : 0;
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(items, JSON_C_TO_STRING_PRETTY |
							      JSON_C_TO_STRING_NOSLASHESCAPE));
	} else if (n == 0) {
		printf("quarantine %s is empty\n", jstr(reply, "dir"));
	} else {
		printf("%-16s  %-19s  %6s  %10s  %-24s  %-8s  %s\n", "ID", "QUARANTINED", "UID",
		       "SIZE", "SIGNATURE", "ENGINE", "PATH");
		for (i = 0; i < n; i++)
			print_item(json_object_array_get_idx(items, i));
	}
	json_object_put(reply);
	return 0;
}

static int one(const struct epsecctl_env *env, const char *verb, const char *id)
{
	struct json_object *reply;
	bool restore = strcmp(verb, "restore") == 0;

	if (call(env, restore ? "quarantine-restore" : "quarantine-delete", id, &reply))
		return EX_FAILED;
	if (restore)
		printf("%s: restored to %s\n", id, jstr(reply, "path"));
	else
		printf("%s: deleted\n", id);
	json_object_put(reply);
	return 0;
}

int epsecctl_quarantine(const struct epsecctl_env *env, int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "list") == 0)
		return list(env, false);
	if (argc == 3 && strcmp(argv[1], "list") == 0 && strcmp(argv[2], "--json") == 0)
		return list(env, true);
	if (argc == 3 && (strcmp(argv[1], "restore") == 0 || strcmp(argv[1], "delete") == 0))
		return one(env, argv[1], argv[2]);
	usage(stderr);
	return EPSECCTL_EX_USAGE;
}
