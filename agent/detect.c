/* SPDX-License-Identifier: MIT */
/* The agent's half of a detection record: what it did about the file and
 * how that went, as one JSON object in a LOG message of source "detection"
 * (an old mux writes it to the agent's log like any line). The mux adds
 * which agent it came from: an agent cannot speak for another. */
#include "config.h"
#include "detect.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <json-c/json.h>

#include "actions.h"
#include "log.h"
#include "msg.h"

#define EPSEC_LOG_SRC "detect"

static _Atomic(vsep_detect_sink) sink;

void vsep_detect_set_sink(vsep_detect_sink s)
{
	atomic_store(&sink, s);
}

static void add_str(struct json_object *o, const char *key, const char *v)
{
	json_object_object_add(o, key, json_object_new_string(v ? v : ""));
}

/* UTC with milliseconds: what log tools sort and join on. */
static void now_iso(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

void vsep_detect_report(const char *path, const char *engine, const char *signature,
			enum vsep_action action, const char *result)
{
	vsep_detect_sink s = atomic_load(&sink);
	struct json_object *o;
	char when[40];
	const char *text;

	if (!s)
		return;
	o = json_object_new_object();
	now_iso(when, sizeof(when));
	add_str(o, "time", when);
	add_str(o, "path", path);
	add_str(o, "engine", engine);
	add_str(o, "signature", signature);
	add_str(o, "action", vsep_action_name(action));
	add_str(o, "result", result);
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						     JSON_C_TO_STRING_NOSLASHESCAPE);
	/* Not sent (no mux now, or a record longer than a LOG line may be:
	 * a path of escaped bytes): the warning vsep logs anyway stays local. */
	if (strlen(text) > EPSEC_LOG_TEXT_MAX || s(EPSEC_LOG_NOTICE, "detection", text) < 0)
		EPSEC_DBG("%s: detection record not sent to the mux", path);
	json_object_put(o);
}
