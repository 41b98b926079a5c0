/* transport.c - frames over stdio, files, FIFOs and ZeroMQ PUSH/PULL.
 *
 * Pipes carry a byte stream, so reads go through the streaming frame reader
 * and EOF ends the stream. ZeroMQ carries one frame per message and has no
 * EOF: an END frame (without "more") ends the stream, and a receive timeout
 * catches a peer that died. Rules for binding vs connecting, CURVE and
 * timeouts are in docs/PROTOCOL.md ("Transports"). */
#include "transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define READ_CHUNK 65536
#define ZMQ_DEFAULT_TIMEOUT_MS 30000

enum { T_FD, T_ZMQ };

struct bn_conn {
    int type;
    bool out;
    char name[300];        /* spec as given, or "stdin"/"stdout", for messages */
    char peer[64];         /* opts.peer_name or "peer" */
    int timeout_ms;        /* effective: < 0 waits forever */
    bool ended;            /* saw an END frame ending the stream */
    bool failed;           /* a write failed: do not commit an output file */
    uint64_t nbytes;       /* bytes read or written so far (offsets in messages) */
    uint64_t nframes;
    uint64_t wait_ns, codec_ns;

    /* T_FD */
    int fd;
    bool close_fd;
    char *path, *tmp_path; /* output to a regular file: written to tmp_path, renamed on close */
    bn_frame_reader *rd;

    /* T_ZMQ */
    void *ctx, *sock;
    int watch_fd;          /* output: a pipe whose writer ending fails a pending send (bn_conn_watch), or -1 */
    char watch_peer[64];
    bool bound;
    char endpoint[512];    /* endpoint actually bound or connected */
    void *zap;             /* CURVE: ZAP handler socket (inproc) */
    struct bn_curve_auth *auth;
    char ipc_path[256];    /* bound ipc socket file, removed on close */
};

/* Defaults: BN_TIMEOUT_MS from the environment when set, otherwise the
 * per-transport default (30 s for ZeroMQ reads, none for pipes). */
void bn_conn_opts_default(bn_conn_opts *o) {
    memset(o, 0, sizeof *o);
    o->timeout_ms = BN_TIMEOUT_DEFAULT;
    const char *t = getenv("BN_TIMEOUT_MS");
    if (t && *t) {
        char *end;
        long v = strtol(t, &end, 10);
        if (*end == 0 && v >= -1 && v <= 86400000L) o->timeout_ms = (int)v;
    }
    o->peer_name = NULL;
}

static void set_names(bn_conn *c, const char *spec, const bn_conn_opts *o) {
    snprintf(c->name, sizeof c->name, "%s", spec);
    snprintf(c->peer, sizeof c->peer, "%s", o && o->peer_name ? o->peer_name : "peer");
}

/* Is spec a ZeroMQ endpoint (optionally with the @ / > prefix)? */
static bool is_zmq_spec(const char *spec) {
    if (spec[0] == '@' || spec[0] == '>') spec++;
    return !strncmp(spec, "tcp://", 6) || !strncmp(spec, "ipc://", 6);
}

/* ------------------------------------------------------------------ */
/* stdio, files, FIFOs                                                 */

static int open_fd(bn_conn *c, const char *spec, const bn_conn_opts *o, bn_err *e) {
    c->type = T_FD;
    c->timeout_ms = o->timeout_ms == BN_TIMEOUT_DEFAULT ? -1 : o->timeout_ms;
    if (!strcmp(spec, "-")) {
        c->fd = c->out ? 1 : 0;
        snprintf(c->name, sizeof c->name, "%s", c->out ? "stdout" : "stdin");
    } else if (!c->out) {
        struct stat st;
        bool fifo = stat(spec, &st) == 0 && S_ISFIFO(st.st_mode);
        /* With a timeout, a FIFO is opened without waiting for its writer;
         * fd_wait's poll then waits for data (Linux reports no hangup on a
         * FIFO whose writer has not yet come), bounded by the timeout. */
        bool nb = fifo && c->timeout_ms >= 0;
        c->fd = open(spec, O_RDONLY | O_CLOEXEC | (nb ? O_NONBLOCK : 0));
        if (c->fd < 0) return bn_errf(e, "%s: cannot open: %s", spec, strerror(errno));
        if (nb) fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
        c->close_fd = true;
    } else {
        struct stat st;
        if (stat(spec, &st) == 0 && !S_ISREG(st.st_mode)) {
            /* FIFO, /dev/null, a tty: write in place. A FIFO without a
             * reader blocks open(); with a timeout, retry non-blocking. */
            if (S_ISFIFO(st.st_mode) && c->timeout_ms >= 0) {
                uint64_t deadline = bn_now_ns() + (uint64_t)c->timeout_ms * 1000000u;
                while ((c->fd = open(spec, O_WRONLY | O_CLOEXEC | O_NONBLOCK)) < 0 && errno == ENXIO &&
                       bn_now_ns() < deadline)
                    usleep(10000);
                if (c->fd < 0 && errno == ENXIO)
                    return bn_errf(e, "%s: no reader opened the FIFO within %d ms (timeout)", spec, c->timeout_ms);
                if (c->fd >= 0) fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
            } else {
                c->fd = open(spec, O_WRONLY | O_CLOEXEC);
            }
            if (c->fd < 0) return bn_errf(e, "%s: cannot open: %s", spec, strerror(errno));
        } else {
            size_t n = strlen(spec) + 32;
            c->path = strdup(spec);
            c->tmp_path = malloc(n);
            if (!c->path || !c->tmp_path) return bn_errf(e, "%s: out of memory", spec);
            snprintf(c->tmp_path, n, "%s.tmp.%ld", spec, (long)getpid());
            c->fd = open(c->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (c->fd < 0) return bn_errf(e, "%s: cannot create: %s", c->tmp_path, strerror(errno));
        }
        c->close_fd = true;
    }
    if (!c->out && bn_frame_reader_new(&c->rd, e) < 0) return -1;
    return 0;
}

/* Wait until fd is readable, honouring the timeout (only when one was set
 * explicitly: pipes end with EOF when the writer dies). */
static int fd_wait(bn_conn *c, bn_err *e) {
    if (c->timeout_ms < 0) return 0;
    struct pollfd p = { .fd = c->fd, .events = POLLIN };
    for (;;) {
        int r = poll(&p, 1, c->timeout_ms);
        if (r > 0) return 0;
        if (r == 0) return bn_errf(e, "%s: no data from %s within %d ms (timeout)", c->name, c->peer, c->timeout_ms);
        if (errno != EINTR) return bn_errf(e, "%s: poll: %s", c->name, strerror(errno));
    }
}

static int fd_read(bn_conn *c, bn_frame *f, bn_err *e) {
    for (;;) {
        uint64_t t0 = bn_now_ns();
        int r = bn_frame_reader_next(c->rd, f, e);
        c->codec_ns += bn_now_ns() - t0;
        if (r != 0) {
            if (r < 0) bn_err_prefix(e, c->name);
            return r;
        }
        uint8_t *buf;
        size_t avail;
        if (bn_frame_reader_reserve(c->rd, READ_CHUNK, &buf, &avail, e) < 0) return -1;
        t0 = bn_now_ns();
        if (fd_wait(c, e) < 0) return -1;
        ssize_t n = read(c->fd, buf, avail);
        c->wait_ns += bn_now_ns() - t0;
        if (n < 0) {
            if (errno == EINTR) continue;
            return bn_errf(e, "%s: read: %s", c->name, strerror(errno));
        }
        if (n == 0) {
            size_t pend = bn_frame_reader_pending(c->rd);
            /* a writer killed mid-frame looks like this: name it, as a clean EOF does */
            if (pend) return bn_errf(e, "%s: %s stopped inside a frame: truncated frame at byte %llu (%zu bytes of an incomplete frame at end of input)",
                                     c->name, c->peer, (unsigned long long)bn_frame_reader_offset(c->rd), pend);
            return 0;
        }
        bn_frame_reader_commit(c->rd, (size_t)n);
        c->nbytes += (uint64_t)n;
    }
}

/* Write all bytes; EPIPE means the reader went away. SIGPIPE is blocked in
 * this thread around the write and a SIGPIPE it raised is consumed, so a
 * closed reader is an error message even in a program that did not ignore
 * SIGPIPE (no process-wide signal state is touched). */
static int fd_write(bn_conn *c, const uint8_t *p, size_t n, bn_err *e) {
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE) == 1;
    int r = 0;
    while (n > 0) {
        ssize_t w = write(c->fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EPIPE) {
                if (!was_pending) {
                    const struct timespec zero = { 0, 0 };
                    while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {}
                }
                r = bn_errf(e, "%s: output closed by reader", c->name);
            } else {
                r = bn_errf(e, "%s: write: %s", c->name, strerror(errno));
            }
            break;
        }
        p += w;
        n -= (size_t)w;
        c->nbytes += (uint64_t)w;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}

/* ------------------------------------------------------------------ */
/* ZeroMQ                                                              */

static int zmq_fail(bn_conn *c, const char *what, bn_err *e) {
    return bn_errf(e, "%s: %s: %s", c->name, what, zmq_strerror(zmq_errno()));
}

/* ------------------------------------------------------------------ */
/* CURVE: keys, and a ZAP handler that accepts only authorized clients */


#define MAX_AUTH_KEYS 256

typedef struct bn_curve_auth {
    void *zap;                 /* REP socket on inproc://zeromq.zap.01, used only by the thread */
    pthread_t thread;
    bool running;
    atomic_int stop;
    pthread_mutex_t lock;      /* guards endpoint (set after bind) */
    uint8_t keys[MAX_AUTH_KEYS][32];
    size_t n_keys;
    bn_conn_log_fn log;
    void *log_ud;
    char endpoint[512];
    char seen[16][41 + 128]; /* "key addr" already logged: a refused client retries every 100 ms */
    size_t n_seen;
} bn_curve_auth;

bool bn_curve_available(void) { return zmq_has("curve") != 0; }

int bn_curve_read_key(const char *path, char z85[41], bn_err *e) {
    uint8_t *data;
    size_t len;
    if (bn_read_file(path, &data, &len, 4096, e) < 0) return -1;
    while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' ' || data[len - 1] == '\t')) len--;
    uint8_t bin[32];
    if (len != 40) { free(data); return bn_errf(e, "%s: not a CURVE key (expected 40 z85 characters, got %zu)", path, len); }
    memcpy(z85, data, 40);
    z85[40] = 0;
    free(data);
    if (!zmq_z85_decode(bin, z85)) return bn_errf(e, "%s: not a valid z85 key", path);
    return 0;
}

/* Write text to dir/name with mode, via a temp file and rename. */
static int write_key_file(const char *dir, const char *name, const char *text, mode_t mode, bool force, bn_err *e) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!force && access(path, F_OK) == 0) return bn_errf(e, "%s: exists (use --force to overwrite)", path);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return bn_errf(e, "%s: cannot create: %s", tmp, strerror(errno));
    if (fchmod(fd, mode) < 0 || bn_write_all(fd, text, strlen(text), e) < 0 || fsync(fd) < 0) {
        close(fd);
        unlink(tmp);
        return bn_errf(e, "%s: write failed", tmp);
    }
    if (close(fd) < 0 || rename(tmp, path) < 0) {
        unlink(tmp);
        return bn_errf(e, "%s: %s", path, strerror(errno));
    }
    return 0;
}

int bn_curve_keygen(const char *dir, const char *name, bool authorize, bool force, bn_err *e) {
    if (!bn_curve_available()) return bn_errf(e, "this libzmq was built without CURVE support");
    if (!name || !*name || strchr(name, '/') || name[0] == '.') return bn_errf(e, "%s: invalid key name", name ? name : "");
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) return bn_errf(e, "%s: cannot create directory: %s", dir, strerror(errno));
    char pub[41], sec[41], line[64], sub[4096];
    if (zmq_curve_keypair(pub, sec) < 0) return bn_errf(e, "zmq_curve_keypair: %s", zmq_strerror(zmq_errno()));
    char kname[300];
    snprintf(line, sizeof line, "%s\n", sec);
    snprintf(kname, sizeof kname, "%s.key", name);
    if (write_key_file(dir, kname, line, 0600, force, e) < 0) return -1;
    snprintf(line, sizeof line, "%s\n", pub);
    snprintf(kname, sizeof kname, "%s.pub", name);
    if (write_key_file(dir, kname, line, 0644, force, e) < 0) return -1;
    if (authorize) {
        snprintf(sub, sizeof sub, "%s/authorized", dir);
        if (mkdir(sub, 0700) < 0 && errno != EEXIST) return bn_errf(e, "%s: cannot create directory: %s", sub, strerror(errno));
        if (write_key_file(sub, kname, line, 0644, force, e) < 0) return -1;
    }
    return 0;
}

/* Load DIR/authorized/ *.pub into the allow list. */
static int load_authorized(bn_curve_auth *a, const char *dir, bn_err *e) {
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/authorized", dir);
    DIR *d = opendir(sub);
    if (!d) return bn_errf(e, "%s: cannot open (the allow list of client keys): %s", sub, strerror(errno));
    struct dirent *de;
    int r = 0;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".pub") != 0) continue;
        if (a->n_keys == MAX_AUTH_KEYS) { r = bn_errf(e, "%s: more than %d keys", sub, MAX_AUTH_KEYS); break; }
        char path[4400], z[41];
        snprintf(path, sizeof path, "%s/%s", sub, de->d_name);
        if (bn_curve_read_key(path, z, e) < 0) { r = -1; break; }
        zmq_z85_decode(a->keys[a->n_keys++], z);
    }
    closedir(d);
    if (r == 0 && a->n_keys == 0) r = bn_errf(e, "%s: no *.pub keys: every client would be refused", sub);
    return r;
}

static void zap_log(bn_curve_auth *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void zap_log(bn_curve_auth *a, const char *fmt, ...) {
    if (!a->log) return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    a->log(a->log_ud, line);
}

/* ZAP (RFC 27): answer each handshake with 200 if the client's public key
 * is in the allow list, else 400 (the connection is dropped). */
static void *zap_thread(void *arg) {
    bn_curve_auth *a = arg;
    int tmo = 100;
    zmq_setsockopt(a->zap, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    while (!atomic_load(&a->stop)) {
        zmq_msg_t part[8];
        int n = 0, more = 1;
        bool bad = false;
        while (more) {
            zmq_msg_t tmp;
            zmq_msg_init(&tmp);
            if (zmq_msg_recv(&tmp, a->zap, 0) < 0) {
                zmq_msg_close(&tmp);
                if (n == 0) break;   /* timeout: check the stop flag */
                bad = true;
                break;
            }
            more = zmq_msg_more(&tmp);
            if (n < 8) part[n++] = tmp;
            else { zmq_msg_close(&tmp); bad = true; }
        }
        if (n == 0) continue;
        /* version, request_id, domain, address, identity, mechanism, credentials... */
        const char *status = "400", *text = "unknown client key";
        char addr[128] = "?", key[41] = "?";
        if (!bad && n >= 7) {
            size_t al = zmq_msg_size(&part[3]);
            if (al >= sizeof addr) al = sizeof addr - 1;
            memcpy(addr, zmq_msg_data(&part[3]), al);
            addr[al] = 0;
            bool curve = zmq_msg_size(&part[5]) == 5 && !memcmp(zmq_msg_data(&part[5]), "CURVE", 5);
            if (curve && zmq_msg_size(&part[6]) == 32) {
                zmq_z85_encode(key, zmq_msg_data(&part[6]), 32);
                for (size_t i = 0; i < a->n_keys; i++)
                    if (!memcmp(a->keys[i], zmq_msg_data(&part[6]), 32)) { status = "200"; text = "OK"; break; }
            } else text = "CURVE required";
        }
        char tag[41 + 128];
        snprintf(tag, sizeof tag, "%s %s", key, addr);
        bool repeat = false;
        for (size_t i = 0; i < a->n_seen; i++) if (!strcmp(a->seen[i], tag)) repeat = true;
        if (!repeat && strcmp(status, "200") != 0) {
            memcpy(a->seen[a->n_seen++ % 16], tag, sizeof tag);
            if (a->n_seen > 16) a->n_seen = 16;
            char ep[512];
            pthread_mutex_lock(&a->lock);
            snprintf(ep, sizeof ep, "%s", a->endpoint);
            pthread_mutex_unlock(&a->lock);
            zap_log(a, "%s: refused a client from %s with key %s: %s", ep, addr, key, text);
        }
        if (n >= 2) {
            zmq_send(a->zap, "1.0", 3, ZMQ_SNDMORE);
            zmq_send(a->zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
            zmq_send(a->zap, status, 3, ZMQ_SNDMORE);
            zmq_send(a->zap, text, strlen(text), ZMQ_SNDMORE);
            zmq_send(a->zap, "", 0, ZMQ_SNDMORE);
            zmq_send(a->zap, "", 0, 0);
        }
        for (int i = 0; i < n; i++) zmq_msg_close(&part[i]);
    }
    zmq_close(a->zap);
    return NULL;
}

/* Binding side: CURVE server with DIR/server.key and a ZAP allow list.
 * Connecting side: DIR/client.{pub,key} and the server's DIR/server.pub. */
static int curve_setup(bn_conn *c, const char *dir, bool server, const bn_conn_opts *o, bn_err *e) {
    if (!bn_curve_available()) return bn_errf(e, "%s: CURVE requested but this libzmq has no CURVE support", c->name);
    char path[4096], pub[41], sec[41], srv[41];
    if (server) {
        bn_curve_auth *a = bn_calloc(1, sizeof *a, e);
        if (!a) return -1;
        c->auth = a;
        pthread_mutex_init(&a->lock, NULL);
        a->log = o->log;
        a->log_ud = o->log_ud;
        snprintf(a->endpoint, sizeof a->endpoint, "%s", c->name);
        if (load_authorized(a, dir, e) < 0) return -1;
        snprintf(path, sizeof path, "%s/server.key", dir);
        if (bn_curve_read_key(path, sec, e) < 0) return -1;
        int one = 1;
        if (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVER, &one, sizeof one) < 0 ||
            zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, sec, 40) < 0)
            return zmq_fail(c, "CURVE server options", e);
        a->zap = zmq_socket(c->ctx, ZMQ_REP);
        if (!a->zap) return zmq_fail(c, "ZAP socket", e);
        if (zmq_bind(a->zap, "inproc://zeromq.zap.01") < 0) {
            zmq_close(a->zap);
            a->zap = NULL;
            return zmq_fail(c, "ZAP bind", e);
        }
        if (pthread_create(&a->thread, NULL, zap_thread, a) != 0) {
            zmq_close(a->zap);
            a->zap = NULL;
            return bn_errf(e, "%s: cannot start the ZAP thread", c->name);
        }
        a->running = true;
        if (zmq_setsockopt(c->sock, ZMQ_ZAP_DOMAIN, "bn", 2) < 0) return zmq_fail(c, "ZAP domain", e);
        return 0;
    }
    snprintf(path, sizeof path, "%s/client.pub", dir);
    if (bn_curve_read_key(path, pub, e) < 0) return -1;
    snprintf(path, sizeof path, "%s/client.key", dir);
    if (bn_curve_read_key(path, sec, e) < 0) return -1;
    snprintf(path, sizeof path, "%s/server.pub", dir);
    if (bn_curve_read_key(path, srv, e) < 0) return -1;
    if (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, srv, 40) < 0 ||
        zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, pub, 40) < 0 ||
        zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, sec, 40) < 0)
        return zmq_fail(c, "CURVE client options", e);
    return 0;
}

/* Stop the ZAP thread (it closes its own socket) before the context ends. */
static void curve_teardown(bn_conn *c) {
    bn_curve_auth *a = c->auth;
    if (!a) return;
    if (a->running) {
        atomic_store(&a->stop, 1);
        pthread_join(a->thread, NULL);
    }
    pthread_mutex_destroy(&a->lock);
    free(a);
    c->auth = NULL;
}

/* Temp dir + socket name for a private ipc endpoint. */
int bn_conn_temp_ipc(char *out, size_t cap, const char *name, bn_err *e) {
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    char dir[256];
    if ((size_t)snprintf(dir, sizeof dir, "%s/bn-XXXXXX", tmp) >= sizeof dir) return bn_errf(e, "TMPDIR: path too long");
    if (!mkdtemp(dir)) return bn_errf(e, "%s: mkdtemp: %s", dir, strerror(errno));
    size_t n = (size_t)snprintf(out, cap, "ipc://%s/%s", dir, name && *name ? name : "sock");
    if (n >= cap || n - 6 >= 108) { rmdir(dir); return bn_errf(e, "%s: ipc path too long", dir); }
    return 0;
}

/* Host part of tcp://HOST:PORT for the loopback check. */
static bool tcp_is_loopback(const char *addr) {
    const char *h = addr + 6;
    char host[256];
    size_t n;
    if (*h == '[') {
        const char *end = strchr(h, ']');
        if (!end) return false;
        n = (size_t)(end - h - 1);
        if (n >= sizeof host) return false;
        memcpy(host, h + 1, n);
    } else {
        const char *colon = strrchr(h, ':');
        n = colon ? (size_t)(colon - h) : strlen(h);
        if (n >= sizeof host) return false;
        memcpy(host, h, n);
    }
    host[n] = 0;
    /* "lo" as an interface name also means loopback for zmq binds */
    return !strncmp(host, "127.", 4) || !strcmp(host, "localhost") || !strcmp(host, "::1") || !strcmp(host, "lo");
}


static int open_zmq(bn_conn *c, const char *spec, const bn_conn_opts *o, bn_err *e) {
    c->type = T_ZMQ;
    bool bind = c->out;
    if (spec[0] == '@') { bind = true; spec++; }
    else if (spec[0] == '>') { bind = false; spec++; }
    c->bound = bind;
    c->timeout_ms = o->timeout_ms == BN_TIMEOUT_DEFAULT ? ZMQ_DEFAULT_TIMEOUT_MS : o->timeout_ms;
    bool tcp = !strncmp(spec, "tcp://", 6);
    bool curve = tcp && o->curve_dir && *o->curve_dir;
    if (tcp && bind && !curve && !o->insecure && !tcp_is_loopback(spec))
        return bn_errf(e, "%s: refusing a plaintext bind on a non-loopback address (use CURVE keys, or insecure mode)", c->name);

    c->ctx = zmq_ctx_new();
    if (!c->ctx) return zmq_fail(c, "zmq_ctx_new", e);
    c->sock = zmq_socket(c->ctx, c->out ? ZMQ_PUSH : ZMQ_PULL);
    if (!c->sock) return zmq_fail(c, "zmq_socket", e);
    /* Output: give queued frames up to the timeout to leave on close; never
     * the default infinite linger. Input: drop on close. */
    int linger = c->out ? (c->timeout_ms < 0 || c->timeout_ms > ZMQ_DEFAULT_TIMEOUT_MS ? ZMQ_DEFAULT_TIMEOUT_MS : c->timeout_ms) : 0;
    int64_t maxmsg = BN_FRAME_MAX_BYTES;
    int tmo = c->timeout_ms < 0 ? -1 : c->timeout_ms;
    /* Output: queue only on completed connections, so a writer whose reader
     * never comes (or is refused by CURVE) fails with the send timeout
     * instead of queueing into the void and exiting 0. */
    int immediate = c->out ? 1 : 0;
    /* At most 128 frames queued each way (libzmq's default 1000 would let a
     * fast producer park ~1 GB of 128k-vocabulary logits in memory). */
    int hwm = 128;
    if (zmq_setsockopt(c->sock, ZMQ_IMMEDIATE, &immediate, sizeof immediate) < 0 ||
        zmq_setsockopt(c->sock, c->out ? ZMQ_SNDHWM : ZMQ_RCVHWM, &hwm, sizeof hwm) < 0 ||
        zmq_setsockopt(c->sock, ZMQ_LINGER, &linger, sizeof linger) < 0 ||
        zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) < 0 ||
        zmq_setsockopt(c->sock, c->out ? ZMQ_SNDTIMEO : ZMQ_RCVTIMEO, &tmo, sizeof tmo) < 0)
        return zmq_fail(c, "zmq_setsockopt", e);
    if (curve && curve_setup(c, o->curve_dir, bind, o, e) < 0) return -1;
    if (bind) {
        if (zmq_bind(c->sock, spec) < 0) return zmq_fail(c, "bind", e);
        size_t n = sizeof c->endpoint;
        if (zmq_getsockopt(c->sock, ZMQ_LAST_ENDPOINT, c->endpoint, &n) < 0) snprintf(c->endpoint, sizeof c->endpoint, "%s", spec);
        if (!strncmp(spec, "ipc://", 6)) snprintf(c->ipc_path, sizeof c->ipc_path, "%s", spec + 6);
        if (c->auth) {
            pthread_mutex_lock(&c->auth->lock);
            snprintf(c->auth->endpoint, sizeof c->auth->endpoint, "%s", c->endpoint);
            pthread_mutex_unlock(&c->auth->lock);
        }
    } else {
        if (zmq_connect(c->sock, spec) < 0) return zmq_fail(c, "connect", e);
        snprintf(c->endpoint, sizeof c->endpoint, "%s", spec);
    }
    return 0;
}

static int zmq_read(bn_conn *c, bn_frame *f, bn_err *e) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    uint64_t t0 = bn_now_ns();
    for (;;) {
        int n = zmq_msg_recv(&m, c->sock, 0);
        if (n >= 0) break;
        int err = zmq_errno();
        zmq_msg_close(&m);
        if (err == EAGAIN)
            return bn_errf(e, "%s: no frame from %s within %d ms (timeout; is the %s still running?)", c->endpoint,
                           c->peer, c->timeout_ms, c->peer);
        if (err == EINTR) return bn_errf(e, "%s: interrupted while waiting for %s", c->endpoint, c->peer);
        return bn_errf(e, "%s: receive: %s", c->endpoint, zmq_strerror(err));
    }
    uint64_t t1 = bn_now_ns();
    c->wait_ns += t1 - t0;
    size_t len = zmq_msg_size(&m);
    int r = bn_frame_decode(zmq_msg_data(&m), len, c->nbytes, f, e);
    zmq_msg_close(&m);
    c->codec_ns += bn_now_ns() - t1;
    if (r < 0) {
        bn_err_prefix(e, c->endpoint);
        return -1;
    }
    c->nbytes += len;
    return 1;
}

static void zmq_free_buf(void *data, void *hint) {
    (void)hint;
    free(data);
}

/* While a send waits for the peer: has the watched pipe's writer gone
 * (POLLHUP: the upstream process ended)? */
static bool watch_gone(const bn_conn *c) {
    if (c->watch_fd < 0) return false;
    struct pollfd p = { .fd = c->watch_fd, .events = POLLIN };
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR));
}

static int zmq_write(bn_conn *c, uint8_t *buf, size_t len, bn_err *e) {
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, buf, len, zmq_free_buf, NULL) < 0) {
        free(buf);
        return zmq_fail(c, "zmq_msg_init_data", e);
    }
    /* with a watched pipe: non-blocking sends in 20 ms slices, so a dead
     * upstream is reported at once instead of after the whole timeout */
    const bool sliced = c->watch_fd >= 0;
    const uint64_t t_end = c->timeout_ms >= 0 ? bn_now_ns() + (uint64_t)c->timeout_ms * 1000000u : UINT64_MAX;
    for (;;) {
        if (zmq_msg_send(&m, c->sock, sliced ? ZMQ_DONTWAIT : 0) >= 0) break;
        int err = zmq_errno();
        if (err == EINTR) continue;
        if (sliced && err == EAGAIN) {
            if (watch_gone(c)) {
                zmq_msg_close(&m);
                return bn_errf(e, "%s: %s ended while a frame for it was pending", c->endpoint, c->watch_peer);
            }
            if (bn_now_ns() < t_end) {
                zmq_pollitem_t it = { .socket = c->sock, .events = ZMQ_POLLOUT };
                zmq_poll(&it, 1, 20);
                continue;
            }
        }
        zmq_msg_close(&m);
        if (err == EAGAIN)
            return bn_errf(e, "%s: %s did not take a frame within %d ms (no reader connected, or it stopped reading)",
                           c->endpoint, c->peer, c->timeout_ms);
        return bn_errf(e, "%s: send: %s", c->endpoint, zmq_strerror(err));
    }
    c->nbytes += len;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Public interface                                                    */

static int conn_open(bn_conn **out, const char *spec, const bn_conn_opts *o, bool is_out, bn_err *e) {
    bn_conn_opts def;
    if (!o) { bn_conn_opts_default(&def); o = &def; }
    if (!spec || !*spec) spec = "-";
    *out = NULL;
    bn_conn *c = bn_calloc(1, sizeof *c, e);
    if (!c) return -1;
    c->out = is_out;
    c->fd = -1;
    c->watch_fd = -1;
    set_names(c, spec, o);
    const char *scheme = spec + (spec[0] == '@' || spec[0] == '>');
    if (strstr(scheme, "://") && !is_zmq_spec(spec)) {
        /* inproc://, pgm://, a typo like tpc://: not a file name either */
        bn_errf(e, "%s: unsupported endpoint (use -, a path, tcp://HOST:PORT or ipc://PATH)", spec);
        bn_conn_close(c);
        return -1;
    }
    int r = is_zmq_spec(spec) ? open_zmq(c, spec, o, e) : open_fd(c, spec, o, e);
    if (r < 0) {
        c->failed = true;
        bn_conn_close(c);
        return -1;
    }
    *out = c;
    return 0;
}

int bn_conn_open_in(bn_conn **out, const char *spec, const bn_conn_opts *o, bn_err *e) {
    return conn_open(out, spec, o, false, e);
}

int bn_conn_open_out(bn_conn **out, const char *spec, const bn_conn_opts *o, bn_err *e) {
    return conn_open(out, spec, o, true, e);
}

/* Feedback input: bind (a private ipc endpoint by default). */
int bn_conn_open_feedback_in(bn_conn **out, const char *spec, const bn_conn_opts *o, bn_err *e) {
    char buf[600];
    if (!spec || !*spec) {
        char ipc[300];
        if (bn_conn_temp_ipc(ipc, sizeof ipc, "feedback", e) < 0) return -1;
        snprintf(buf, sizeof buf, "@%s", ipc);
    } else if (spec[0] == '@' || spec[0] == '>') {
        snprintf(buf, sizeof buf, "%s", spec);
    } else {
        if (!is_zmq_spec(spec)) return bn_errf(e, "%s: the feedback link must be a tcp:// or ipc:// endpoint", spec);
        snprintf(buf, sizeof buf, "@%s", spec);
    }
    int r = conn_open(out, buf, o, false, e);
    if (r < 0 && (!spec || !*spec)) {
        /* nothing bound: remove the temp directory again */
        char dir[600];
        snprintf(dir, sizeof dir, "%s", buf + 7);
        char *slash = strrchr(dir, '/');
        if (slash) { *slash = 0; rmdir(dir); }
    }
    return r;
}

/* Feedback output: connect to what bn-forward announced. */
int bn_conn_open_feedback_out(bn_conn **out, const char *spec, const bn_conn_opts *o, bn_err *e) {
    if (!spec || !*spec) return bn_errf(e, "feedback: no endpoint (none announced in hello and no --feedback)");
    if (!is_zmq_spec(spec)) return bn_errf(e, "%s: the feedback link must be a tcp:// or ipc:// endpoint", spec);
    char buf[600];
    snprintf(buf, sizeof buf, "%s%s", spec[0] == '@' || spec[0] == '>' ? "" : ">", spec);
    return conn_open(out, buf, o, true, e);
}

/* Sends on out (a ZeroMQ output) fail as soon as the writer of in (a pipe
 * or FIFO input) has gone: bn-sample's feedback to bn-forward, whose logits
 * arrive on in, so a killed bn-forward is reported at once rather than after
 * the send timeout (by which time the stage downstream may have timed out
 * on its own, without the cause). No effect on other kinds of connection. */
void bn_conn_watch(bn_conn *out, const bn_conn *in) {
    if (!out || !in || !out->out || out->type == T_FD || in->type != T_FD || in->out) return;
    out->watch_fd = in->fd;
    snprintf(out->watch_peer, sizeof out->watch_peer, "%s", in->peer);
}

/* Read the next frame; after an END that closes the stream, report a clean
 * end (0) so pipe and ZeroMQ readers loop the same way. */
int bn_conn_read(bn_conn *c, bn_frame *f, bn_err *e) {
    bn_frame_init(f, BN_FRAME_UNKNOWN);
    if (c->out) return bn_errf(e, "%s: read on an output", c->name);
    if (c->ended) return 0;
    int r = c->type == T_FD ? fd_read(c, f, e) : zmq_read(c, f, e);
    if (r == 1) {
        c->nframes++;
        if (f->kind == BN_FRAME_END && !f->more) c->ended = true;
    }
    return r;
}

int bn_conn_write(bn_conn *c, const bn_frame *f, bn_err *e) {
    if (!c->out) return bn_errf(e, "%s: write on an input", c->name);
    uint8_t *buf;
    size_t len;
    uint64_t t0 = bn_now_ns();
    if (bn_frame_encode(f, &buf, &len, e) < 0) return -1;
    uint64_t t1 = bn_now_ns();
    c->codec_ns += t1 - t0;
    int r;
    if (c->type == T_FD) {
        r = fd_write(c, buf, len, e);
        free(buf);
    } else {
        r = zmq_write(c, buf, len, e); /* takes buf */
    }
    c->wait_ns += bn_now_ns() - t1;
    if (r < 0) c->failed = true;
    else c->nframes++;
    return r;
}

/* Frames are written with one write() each (no user-space buffering, so a
 * token reaches the next stage at once); nothing to flush but we check. */
int bn_conn_flush(bn_conn *c, bn_err *e) {
    if (c->failed) return bn_errf(e, "%s: an earlier write failed", c->name);
    return 0;
}

void bn_conn_get_stats(const bn_conn *c, bn_conn_stats *s) {
    s->frames = c->nframes;
    s->bytes = c->nbytes;
    s->wait_ns = c->wait_ns;
    s->codec_ns = c->codec_ns;
}

const char *bn_conn_endpoint(const bn_conn *c) {
    return c->type == T_ZMQ && c->endpoint[0] ? c->endpoint : c->name;
}

/* Commit an output file: close and rename over the target. */
int bn_conn_finish(bn_conn *c, bn_err *e) {
    int r = 0;
    if (c->type == T_FD && c->close_fd && c->fd >= 0) {
        if (close(c->fd) < 0 && !c->failed) r = bn_errf(e, "%s: close: %s", c->name, strerror(errno));
        c->fd = -1;
        if (c->tmp_path) {
            if (r == 0 && !c->failed) {
                if (rename(c->tmp_path, c->path) < 0) r = bn_errf(e, "%s: rename: %s", c->path, strerror(errno));
            } else {
                unlink(c->tmp_path);
            }
            if (r < 0) unlink(c->tmp_path);
            free(c->tmp_path);
            c->tmp_path = NULL;
        }
    }
    if (c->failed && r == 0) r = bn_errf(e, "%s: an earlier write failed", c->name);
    return r;
}

/* Remove a bound ipc socket file, and its directory if bn_conn_temp_ipc
 * made it (named bn-XXXXXX; rmdir fails harmlessly if anything else is in it). */
static void remove_ipc(const char *path) {
    unlink(path);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) return;
    *slash = 0;
    const char *base = strrchr(dir, '/');
    base = base ? base + 1 : dir;
    if (!strncmp(base, "bn-", 3) && strlen(base) == 9) rmdir(dir);
}

void bn_conn_close(bn_conn *c) {
    if (!c) return;
    bn_conn_finish(c, NULL);
    if (c->type == T_ZMQ) curve_teardown(c);
    if (c->sock) zmq_close(c->sock);
    if (c->ctx) zmq_ctx_term(c->ctx);
    if (c->ipc_path[0]) remove_ipc(c->ipc_path);
    bn_frame_reader_free(c->rd);
    free(c->path);
    free(c->tmp_path);
    free(c);
}
