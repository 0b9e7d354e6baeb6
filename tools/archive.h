/* SPDX-License-Identifier: MIT */
/* The support bundle's tar.gz (archive.c, the only file that calls
 * libarchive): entries are whole buffers, added in order. */
#ifndef EPSECCTL_ARCHIVE_H
#define EPSECCTL_ARCHIVE_H

#include <stddef.h>

struct bundle_archive;

/* 0, -ENOTSUP built without libarchive, or -errno / -EIO. */
int bundle_archive_open(const char *path, struct bundle_archive **out);
int bundle_archive_add(struct bundle_archive *a, const char *name, const void *data, size_t len);
/* Finishes the file; 0 or -EIO. Frees `a` either way. */
int bundle_archive_close(struct bundle_archive *a);

#endif
