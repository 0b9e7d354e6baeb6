/* SPDX-License-Identifier: MIT */
/* Sends one request to a daemon's control socket and prints the reply as
 * one JSON line, for the tests that need the whole reply (epsecctl prints
 * it for humans). Usage: ctl-call SOCKET CMD [TIMEOUT_MS]. Exit 0 when a
 * reply came (whatever its "ok"), 1 otherwise. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "ctl.h"

int main(int argc, char **argv)
{
	struct json_object *req, *reply = NULL;
	int r;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: ctl-call SOCKET CMD [TIMEOUT_MS]\n");
		return 2;
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(argv[2]));
	r = epsec_ctl_call(argv[1], req, argc == 4 ? atoi(argv[3]) : 15000, &reply);
	json_object_put(req);
	if (r < 0) {
		fprintf(stderr, "ctl-call %s: %s\n", argv[1], strerror(-r));
		return 1;
	}
	printf("%s\n", json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN));
	json_object_put(reply);
	return 0;
}
