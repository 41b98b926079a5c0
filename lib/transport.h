/* transport.h - where frames come from and go to, behind one interface:
 *   "-"                  stdin / stdout (the default)
 *   a path               a file or FIFO
 *   tcp://HOST:PORT      ZeroMQ (ipc://PATH too); PUSH/PULL sockets
 * Endpoint syntax for binding vs connecting and the CURVE options are in
 * docs/PROTOCOL.md. A stage never waits forever: EOF, a closed peer or the
 * timeout (BN_TIMEOUT_MS / --timeout) ends it with an error naming the peer. */
#ifndef BN_TRANSPORT_H
#define BN_TRANSPORT_H

#include <stdbool.h>
#include "frame.h"
#include "util.h"

typedef struct bn_conn bn_conn; /* opaque */

typedef struct bn_conn_opts {
    int timeout_ms;          /* < 0: wait forever for the first frame / between frames; default from BN_TIMEOUT_MS */
    const char *curve_dir;   /* --curve-keys DIR: enables CURVE on tcp:// endpoints (NULL = off) */
    bool insecure;           /* allow plaintext tcp binds on non-loopback addresses */
    const char *peer_name;   /* used in messages: "bn-forward" */
} bn_conn_opts;

void bn_conn_opts_default(bn_conn_opts *o);

/* Open an input (frames are read) or output (frames are written) endpoint. */
int bn_conn_open_in(bn_conn **out, const char *spec, const bn_conn_opts *o, bn_err *e);
int bn_conn_open_out(bn_conn **out, const char *spec, const bn_conn_opts *o, bn_err *e);

/* 1 = got a frame, 0 = clean end of stream, -1 = error (timeout, truncated, malformed). */
int bn_conn_read(bn_conn *c, bn_frame *f, bn_err *e);
/* 0 ok, -1 error (EPIPE: the reader went away -> message says so). */
int bn_conn_write(bn_conn *c, const bn_frame *f, bn_err *e);
/* Flush buffered output (pipes). */
int bn_conn_flush(bn_conn *c, bn_err *e);
/* The endpoint actually bound (useful when binding tcp://127.0.0.1:* or ipc temp paths). */
const char *bn_conn_endpoint(const bn_conn *c);
void bn_conn_close(bn_conn *c);

#endif
