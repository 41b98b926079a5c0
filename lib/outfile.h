/* outfile.h - output files that never exist half-written.
 *
 * A regular file is written to "<path>.tmp.<pid>" beside it and renamed over
 * path only when everything was written and flushed; any failure removes the
 * temp file. A path that already exists and is not a regular file (a device
 * such as /dev/null, a FIFO) is written in place: renaming over it would
 * replace the device node. */
#ifndef BN_OUTFILE_H
#define BN_OUTFILE_H

#include <stdio.h>
#include "util.h"

typedef struct bn_outfile {
    FILE *f;    /* write here */
    char *path; /* the final name */
    char *tmp;  /* temp name beside it; NULL when writing in place */
} bn_outfile;

/* Open for writing (binary). */
int bn_outfile_open(bn_outfile *o, const char *path, bn_err *e);
/* Flush, fsync (regular files), close and rename into place. Frees o either way. */
int bn_outfile_commit(bn_outfile *o, bn_err *e);
/* Close and remove the temp file. Frees o. Safe on a zeroed or closed o. */
void bn_outfile_abort(bn_outfile *o);

#endif
