/* SPDX-License-Identifier: MIT */
/* libFuzzer target for the wire decoders: frame parsing over a byte stream
 * and message decoding for every role, with the property that whatever is
 * accepted re-encodes and decodes the same way (the mux forwards it). */
#include "config.h"
#include "frame.h"
#include "msg.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <epsec/transport.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(epsec_msg *m, enum epsec_role role)
{
	epsec_msg *again = NULL;
	void *buf;
	size_t len;

	if (!epsec_msg_allowed(role, m->body_case))
		abort();
	if (epsec_msg_encode(m, &buf, &len) != 0)
		abort();
	if (epsec_msg_decode(buf, len, role, &again) != 0 || again->body_case != m->body_case)
		abort();
	epsec_msg_free(again);
	free(buf);
}

static void decode_all(const uint8_t *buf, size_t len)
{
	int role;

	/* 0 and 5 are no role: nothing may pass */
	for (role = 0; role <= 5; role++) {
		epsec_msg *m = NULL;
		int r = epsec_msg_decode(buf, len, (enum epsec_role)role, &m);

		if (r == 0)
			check_accepted(m, (enum epsec_role)role);
		else if ((r != -EBADMSG && r != -EPERM) || m)
			abort();
		epsec_msg_free(m);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t ceilings[] = { EPSEC_FRAME_MAX, 64 };
	size_t i;

	decode_all(data, size);
	for (i = 0; i < sizeof(ceilings) / sizeof(ceilings[0]); i++) {
		size_t off = 0;

		while (off < size) {
			const uint8_t *body;
			size_t blen, used;
			int r = epsec_frame_parse(data + off, size - off, ceilings[i], &body, &blen,
						  &used);

			if (r == -EAGAIN || r == -EMSGSIZE)
				break;
			if (r != 0 || blen > ceilings[i] || used != blen + 4 || used > size - off ||
			    body != data + off + 4)
				abort();
			if (i == 0)
				decode_all(body, blen);
			off += used;
		}
	}
	return 0;
}
