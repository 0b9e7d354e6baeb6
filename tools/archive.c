/* SPDX-License-Identifier: MIT */
/* All of libarchive for epsecctl: a gzip'd ustar of in-memory entries,
 * mode 0600 (a bundle holds logs and configs). Without libarchive every
 * call says -ENOTSUP and the command names the package to install. */
#include "config.h"
#include "archive.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#ifdef HAVE_LIBARCHIVE
#include <archive.h>
#include <archive_entry.h>

struct bundle_archive {
	struct archive *a;
};

int bundle_archive_open(const char *path, struct bundle_archive **out)
{
	struct bundle_archive *b = calloc(1, sizeof(*b));

	if (!b || !(b->a = archive_write_new())) {
		free(b);
		return -ENOMEM;
	}
	if (archive_write_add_filter_gzip(b->a) != ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(b->a) != ARCHIVE_OK ||
	    archive_write_open_filename(b->a, path) != ARCHIVE_OK) {
		int err = archive_errno(b->a);

		archive_write_free(b->a);
		free(b);
		return err > 0 ? -err : -EIO;
	}
	*out = b;
	return 0;
}

int bundle_archive_add(struct bundle_archive *b, const char *name, const void *data, size_t len)
{
	struct archive_entry *e = archive_entry_new();
	int r = 0;

	if (!e)
		return -ENOMEM;
	archive_entry_set_pathname(e, name);
	archive_entry_set_size(e, (la_int64_t)len);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0600);
	archive_entry_set_mtime(e, time(NULL), 0);
	if (archive_write_header(b->a, e) != ARCHIVE_OK ||
	    (len && archive_write_data(b->a, data, len) != (la_ssize_t)len))
		r = -EIO;
	archive_entry_free(e);
	return r;
}

int bundle_archive_close(struct bundle_archive *b)
{
	int r = archive_write_close(b->a) == ARCHIVE_OK ? 0 : -EIO;

	archive_write_free(b->a);
	free(b);
	return r;
}
#else
int bundle_archive_open(const char *path, struct bundle_archive **out)
{
	(void)path;
	*out = NULL;
	return -ENOTSUP;
}

int bundle_archive_add(struct bundle_archive *b, const char *name, const void *data, size_t len)
{
	(void)b, (void)name, (void)data, (void)len;
	return -ENOTSUP;
}

int bundle_archive_close(struct bundle_archive *b)
{
	(void)b;
	return -ENOTSUP;
}
#endif
