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

/* timeout_ms value meaning "the transport's default": 30000 ms for ZeroMQ,
 * none for pipes and files (EOF tells us the writer is gone). */
#define BN_TIMEOUT_DEFAULT (-2)

/* Receives one line (no newline) about security events, e.g. a CURVE client
 * refused; called from a helper thread. Tools print it to stderr. */
typedef void (*bn_conn_log_fn)(void *ud, const char *line);

typedef struct bn_conn_opts {
    int timeout_ms;          /* < 0: wait forever for the first frame / between frames; default from BN_TIMEOUT_MS */
    const char *curve_dir;   /* --curve-keys DIR: enables CURVE on tcp:// endpoints (NULL = off) */
    bool insecure;           /* allow plaintext tcp binds on non-loopback addresses */
    const char *peer_name;   /* used in messages: "bn-forward" */
    bn_conn_log_fn log;      /* security log (CURVE refusals); NULL = not reported */
    void *log_ud;
} bn_conn_opts;

/* Zero everything; timeout_ms = BN_TIMEOUT_MS from the environment if set
 * (-1 = forever), else BN_TIMEOUT_DEFAULT. An explicit timeout also applies
 * to pipes and files (poll before each read). */
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
/* What a connection cost so far: a stage reports these as TIMING events
 * "wait" and "codec" (lib/timing.h). */
typedef struct bn_conn_stats {
    uint64_t frames, bytes;  /* frames and bytes read (input) or written (output) */
    uint64_t wait_ns;        /* blocked: waiting for input, or for the reader to take output */
    uint64_t codec_ns;       /* msgpack decoding (input) or encoding (output) */
} bn_conn_stats;
void bn_conn_get_stats(const bn_conn *c, bn_conn_stats *s);

/* Finish an output: an output file written to PATH.tmp.PID is renamed to
 * PATH only here (or in close, if no write failed). 0 ok, -1 a write failed. */
int bn_conn_finish(bn_conn *c, bn_err *e);
/* Close; ZeroMQ outputs wait at most the timeout (30 s by default) for
 * queued frames to leave, never forever. */
void bn_conn_close(bn_conn *c);

/* A private ipc:// endpoint in a fresh temp directory (mode 0700), e.g. for
 * bn-forward's feedback socket: "ipc:///tmp/bn-XXXXXX/NAME". The directory
 * is removed by bn_conn_close of a connection bound to it. */
int bn_conn_temp_ipc(char *out, size_t cap, const char *name, bn_err *e);

/* The feedback link (docs/PROTOCOL.md section 7). bn-forward opens the
 * input: spec NULL or "" makes a private ipc endpoint (bn_conn_temp_ipc),
 * and a spec without @/> prefix is bound; announce bn_conn_endpoint() in
 * hello.feedback. bn-sample opens the output: a spec without prefix is
 * connected (plain outputs would bind). */
int bn_conn_open_feedback_in(bn_conn **out, const char *spec, const bn_conn_opts *o, bn_err *e);
int bn_conn_open_feedback_out(bn_conn **out, const char *spec, const bn_conn_opts *o, bn_err *e);

/* Let sends on out (ZeroMQ) fail at once when the writer of in (a pipe)
 * has gone, instead of waiting out the timeout (transport.c). in must stay
 * open while out is written to (it is polled by file descriptor). */
void bn_conn_watch(bn_conn *out, const bn_conn *in);

/* CURVE keys (z85 text files, see docs/man/bn-keygen.md):
 *   DIR/server.key DIR/server.pub   the binding side's pair
 *   DIR/client.key DIR/client.pub   the connecting side's pair
 *   DIR/authorized/NAME.pub         public keys the binding side accepts
 * true if this libzmq can do CURVE. */
bool bn_curve_available(void);
/* Write a key pair DIR/NAME.key (0600) + DIR/NAME.pub; with authorize, also
 * DIR/authorized/NAME.pub. Refuses to overwrite unless force. */
int bn_curve_keygen(const char *dir, const char *name, bool authorize, bool force, bn_err *e);
/* Read a 40-character z85 key from a file (trailing whitespace allowed). */
int bn_curve_read_key(const char *path, char z85[41], bn_err *e);

#endif
