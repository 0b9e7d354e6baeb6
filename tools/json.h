/* SPDX-License-Identifier: MIT */
/* epsecctl's accessors for the daemons' JSON replies (json.c): absent keys
 * and wrong types read as NULL, "?", 0 or false. */
#ifndef EPSECCTL_JSON_H
#define EPSECCTL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

struct json_object *jget(struct json_object *o, const char *key);
const char *jstr(struct json_object *o, const char *key);  /* "?" when absent */
long long jint(struct json_object *o, const char *key);
bool jbool(struct json_object *o, const char *key);
size_t jlen(struct json_object *a);                         /* 0 unless an array */
const char *jelem(struct json_object *a, size_t i);        /* "?" when absent */

#endif
