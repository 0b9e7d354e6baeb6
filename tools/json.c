/* SPDX-License-Identifier: MIT */
/* Reading the daemons' replies: each is data from another process, so a
 * missing key or a wrong type gives a harmless default, never an abort. */
#include "config.h"
#include "json.h"

struct json_object *jget(struct json_object *o, const char *key)
{
	struct json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

const char *jstr(struct json_object *o, const char *key)
{
	struct json_object *v = jget(o, key);

	return v ? json_object_get_string(v) : "?";
}

long long jint(struct json_object *o, const char *key)
{
	return (long long)json_object_get_int64(jget(o, key));
}

bool jbool(struct json_object *o, const char *key)
{
	return json_object_get_boolean(jget(o, key));
}

/* json-c asserts on the length of a non-array: a daemon's reply is data. */
size_t jlen(struct json_object *a)
{
	return json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

const char *jelem(struct json_object *a, size_t i)
{
	const char *s = json_object_get_string(json_object_array_get_idx(a, i));

	return s ? s : "?";
}

