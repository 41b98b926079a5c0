/* test_transport.c - frames over pipes, files, ZeroMQ tcp and ipc: round
 * trips, truncation and EPIPE messages, timeouts on a silent peer, END as
 * the end of a ZeroMQ stream, peer restart, the plaintext bind rule, and
 * CURVE accept/refuse with the refusal logged. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tap.h"
#include "transport.h"

static char tmpdir[256];

/* Write n TOKEN frames then an END over an open output. */
static int send_tokens(bn_conn *c, int n, int base, bn_err *e) {
    for (int i = 0; i < n; i++) {
        int32_t id = base + i;
        bn_frame f;
        bn_frame_token(&f, &id, (uint32_t)i);
        if (bn_conn_write(c, &f, e) < 0) return -1;
    }
    bn_frame end;
    bn_frame_init(&end, BN_FRAME_END);
    return bn_conn_write(c, &end, e);
}

/* Read until the end of stream; count tokens and check their ids. */
static int recv_tokens(bn_conn *c, int base, int *count, bn_err *e) {
    *count = 0;
    bool ok = true;
    bn_frame f;
    int r;
    while ((r = bn_conn_read(c, &f, e)) == 1) {
        if (f.kind == BN_FRAME_TOKEN) {
            if (f.tokens[0] != base + *count) ok = false;
            (*count)++;
        }
        bn_frame_free(&f);
    }
    return r < 0 ? -1 : ok ? 0 : -2;
}

static void test_pipe(void) {
    int p[2];
    if (pipe(p) < 0) return;
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 1);
        bn_conn *c;
        bn_err e;
        bn_conn_opts o;
        bn_conn_opts_default(&o);
        if (bn_conn_open_out(&c, "-", &o, &e) < 0 || send_tokens(c, 100, 5, &e) < 0) _exit(1);
        bn_conn_close(c);
        _exit(0);
    }
    close(p[1]);
    int saved = dup(0);
    dup2(p[0], 0);
    close(p[0]);
    bn_conn *c;
    bn_err e;
    int n = -1, r = -1;
    if (bn_conn_open_in(&c, "-", NULL, &e) == 0) {
        r = recv_tokens(c, 5, &n, &e);
        CHECK(!strcmp(bn_conn_endpoint(c), "stdin"), "stdin named stdin");
        bn_conn_close(c);
    }
    int st;
    waitpid(pid, &st, 0);
    dup2(saved, 0);
    close(saved);
    CHECK(r == 0 && n == 100 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "100 tokens over a pipe (%s)", r ? e.msg : "ok");
}

static void test_file(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/frames.bin", tmpdir);
    bn_conn *c;
    bn_err e;
    int r = bn_conn_open_out(&c, path, NULL, &e);
    CHECK(r == 0, "open file output (%s)", r ? e.msg : "");
    if (r) return;
    send_tokens(c, 10, 0, &e);
    CHECK(access(path, F_OK) != 0, "file not visible before finish (temp + rename)");
    CHECK(bn_conn_finish(c, &e) == 0 && access(path, F_OK) == 0, "file renamed into place on finish");
    bn_conn_close(c);
    int n;
    r = bn_conn_open_in(&c, path, NULL, &e);
    r = r == 0 ? recv_tokens(c, 0, &n, &e) : -1;
    CHECK(r == 0 && n == 10, "10 tokens read back from the file");
    bn_conn_close(c);

    /* truncated file: error names the offset of the incomplete frame */
    struct stat st;
    stat(path, &st);
    if (truncate(path, st.st_size - 2) < 0) return;
    bn_conn_opts co;
    bn_conn_opts_default(&co);
    co.peer_name = "bn-forward";
    if (bn_conn_open_in(&c, path, &co, &e) < 0) return;
    bn_frame f;
    int got = 0;
    while ((r = bn_conn_read(c, &f, &e)) == 1) { got++; bn_frame_free(&f); }
    /* a writer killed mid-frame is named (tests/pipeline.bats caught the unnamed message) */
    CHECK(r < 0 && strstr(e.msg, "truncated frame at byte") && strstr(e.msg, path) &&
              strstr(e.msg, "bn-forward stopped inside a frame") && got == 10,
          "truncated file: %s", e.msg);
    bn_conn_close(c);
    /* a device is written in place, never replaced by a renamed temp file */
    struct stat dn;
    if (stat("/dev/null", &dn) == 0 && S_ISCHR(dn.st_mode) && bn_conn_open_out(&c, "/dev/null", NULL, &e) == 0) {
        r = send_tokens(c, 3, 0, &e);
        r = r ? r : bn_conn_finish(c, &e);
        bn_conn_close(c);
        CHECK(r == 0 && stat("/dev/null", &dn) == 0 && S_ISCHR(dn.st_mode), "/dev/null written in place, still a device");
    }
    CHECK(bn_conn_open_in(&c, "/nonexistent/x", NULL, &e) < 0 && strstr(e.msg, "/nonexistent/x"),
          "missing input file named: %s", e.msg);
}

static void test_fifo(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/fifo", tmpdir);
    if (mkfifo(path, 0600) < 0) return;
    pid_t pid = fork();
    if (pid == 0) {
        bn_conn *c;
        bn_err e;
        if (bn_conn_open_out(&c, path, NULL, &e) < 0 || send_tokens(c, 50, 1, &e) < 0) _exit(1);
        bn_conn_close(c);
        _exit(0);
    }
    bn_conn *c;
    bn_err e;
    int n = -1, r = bn_conn_open_in(&c, path, NULL, &e);
    if (r == 0) { r = recv_tokens(c, 1, &n, &e); bn_conn_close(c); }
    int st;
    waitpid(pid, &st, 0);
    CHECK(r == 0 && n == 50, "50 tokens through a FIFO");

    /* with a timeout, neither side waits forever for the other to open */
    bn_conn_opts o;
    bn_conn_opts_default(&o);
    o.timeout_ms = 150;
    r = bn_conn_open_in(&c, path, &o, &e);
    bn_frame f;
    if (r == 0) { r = bn_conn_read(c, &f, &e); bn_conn_close(c); }
    CHECK(r < 0 && strstr(e.msg, "150 ms"), "FIFO without writer times out: %s", e.msg);
    r = bn_conn_open_out(&c, path, &o, &e);
    if (r == 0) bn_conn_close(c);
    CHECK(r < 0 && strstr(e.msg, "no reader opened the FIFO within 150 ms"), "FIFO without reader times out: %s", e.msg);
}

static void test_epipe_and_timeout(void) {
    int p[2];
    if (pipe(p) < 0) return;
    int saved = dup(1);
    dup2(p[1], 1);
    close(p[1]);
    close(p[0]); /* the reader is gone */
    bn_conn *c;
    bn_err e;
    bn_conn_open_out(&c, "-", NULL, &e);
    int32_t id = 1;
    bn_frame f;
    bn_frame_token(&f, &id, 0);
    int r = bn_conn_write(c, &f, &e);
    bn_conn_close(c);
    dup2(saved, 1);
    close(saved);
    CHECK(r < 0 && strstr(e.msg, "output closed by reader"), "EPIPE: %s", e.msg);

    /* the same with SIGPIPE at its default action (a tool that forgot to
     * ignore it): the process survives and gets the message */
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        int q[2];
        if (pipe(q) < 0) _exit(3);
        dup2(q[1], 1);
        close(q[1]);
        close(q[0]);
        bn_conn *cc;
        bn_err ee;
        if (bn_conn_open_out(&cc, "-", NULL, &ee) < 0) _exit(3);
        int rr = bn_conn_write(cc, &f, &ee);
        _exit(rr < 0 && strstr(ee.msg, "output closed by reader") ? 0 : 4);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "EPIPE without SIG_IGN: no death by SIGPIPE (status %d)", st);

    /* a pipe whose writer stays silent: explicit timeout fires */
    if (pipe(p) < 0) return;
    saved = dup(0);
    dup2(p[0], 0);
    close(p[0]);
    bn_conn_opts o;
    bn_conn_opts_default(&o);
    o.timeout_ms = 150;
    o.peer_name = "bn-tokenize";
    bn_conn_open_in(&c, "-", &o, &e);
    r = bn_conn_read(c, &f, &e);
    bn_conn_close(c);
    dup2(saved, 0);
    close(saved);
    close(p[1]);
    CHECK(r < 0 && strstr(e.msg, "bn-tokenize") && strstr(e.msg, "150 ms"), "silent pipe writer: %s", e.msg);
}

/* Writer processes are forked while this process has no ZeroMQ threads
 * (forking a multi-threaded process can leave the child's allocator locked),
 * then told the endpoint through a pipe once the reader is bound. */
static pid_t spawn_writer(int *release_fd, const bn_conn_opts *o, int base, int n, bool end) {
    int p[2];
    if (pipe(p) < 0) return -1;
    pid_t pid = fork();
    if (pid != 0) {
        close(p[0]);
        *release_fd = p[1];
        return pid;
    }
    close(p[1]);
    char ep[600];
    ssize_t k = 0, m;
    while (k < (ssize_t)sizeof ep - 1 && (m = read(p[0], ep + k, 1)) == 1 && ep[k] != '\n') k++;
    ep[k] = 0;
    if (k == 0) _exit(1);
    bn_conn *out;
    bn_err e;
    if (bn_conn_open_out(&out, ep, o, &e) < 0) { fprintf(stderr, "# child: %s\n", e.msg); _exit(1); }
    for (int i = 0; i < n; i++) {
        int32_t id = base + i;
        bn_frame f;
        bn_frame_token(&f, &id, (uint32_t)(base + i));
        if (bn_conn_write(out, &f, &e) < 0) { fprintf(stderr, "# child: %s\n", e.msg); _exit(1); }
    }
    if (end) {
        bn_frame f;
        bn_frame_init(&f, BN_FRAME_END);
        if (bn_conn_write(out, &f, &e) < 0) { fprintf(stderr, "# child: %s\n", e.msg); _exit(1); }
    }
    bn_conn_close(out); /* lingers until the frames left */
    _exit(0);
}

/* Tell a waiting writer where to connect (out_fmt gets the endpoint via %s;
 * NULL = give up). */
static void release_writer(int fd, const char *out_fmt, const char *endpoint) {
    char ep[640];
    int n = out_fmt ? snprintf(ep, sizeof ep, out_fmt, endpoint) : 0;
    ep[n] = '\n';
    if (write(fd, ep, (size_t)n + 1) < 0) { /* the child exits on EOF anyway */ }
    close(fd);
}

/* One writer process sending n tokens + END, the reader here. */
static int zmq_pair(const char *in_spec, const char *out_fmt, const bn_conn_opts *oi, const bn_conn_opts *oo,
                    int n, int *got, bn_err *e) {
    int rel;
    *got = 0;
    pid_t pid = spawn_writer(&rel, oo, 0, n, true);
    bn_conn *in;
    int r = bn_conn_open_in(&in, in_spec, oi, e);
    release_writer(rel, r == 0 ? out_fmt : NULL, r == 0 ? bn_conn_endpoint(in) : "");
    if (r == 0) {
        r = recv_tokens(in, 0, got, e);
        bn_conn_close(in);
    }
    int st;
    waitpid(pid, &st, 0);
    return r;
}

static void test_zmq(void) {
    bn_err e;
    int got = 0;
    bn_conn_opts o;
    bn_conn_opts_default(&o);
    o.timeout_ms = 5000;
    /* reader forced to bind (@), writer forced to connect (>) */
    int r = zmq_pair("@tcp://127.0.0.1:*", ">%s", &o, &o, 200, &got, &e);
    CHECK(r == 0 && got == 200, "tcp: 200 tokens, END ends the stream (%s)", r ? e.msg : "ok");

    /* default rule on ipc: input connects, output binds */
    char ipc[300];
    r = bn_conn_temp_ipc(ipc, sizeof ipc, "t", &e);
    CHECK(r == 0 && !strncmp(ipc, "ipc://", 6), "temp ipc endpoint %s", ipc);
    r = zmq_pair(ipc, "%s", &o, &o, 100, &got, &e);
    CHECK(r == 0 && got == 100, "ipc: 100 tokens with the default bind/connect rule (%s)", r ? e.msg : "ok");
    char dir[300];
    snprintf(dir, sizeof dir, "%s", ipc + 6);
    *strrchr(dir, '/') = 0;
    CHECK(access(dir, F_OK) != 0, "temp ipc directory removed by the binding side's close");

    /* a silent peer: the read times out naming endpoint and peer */
    bn_conn_opts q = o;
    q.timeout_ms = 200;
    q.peer_name = "bn-forward";
    bn_conn *c;
    bn_frame f;
    r = bn_conn_open_in(&c, "@tcp://127.0.0.1:*", &q, &e);
    if (r == 0) { r = bn_conn_read(c, &f, &e); bn_conn_close(c); }
    CHECK(r < 0 && strstr(e.msg, "tcp://127.0.0.1:") && strstr(e.msg, "bn-forward") && strstr(e.msg, "200 ms"),
          "silent peer times out: %s", e.msg);
    /* a writer with no reader: the send times out */
    r = bn_conn_open_out(&c, "tcp://127.0.0.1:*", &q, &e);
    int32_t id = 3;
    bn_frame_token(&f, &id, 0);
    if (r == 0) { r = bn_conn_write(c, &f, &e); bn_conn_close(c); }
    CHECK(r < 0 && strstr(e.msg, "did not take a frame"), "writer without reader times out: %s", e.msg);

    r = bn_conn_open_in(&c, "inproc://x", &o, &e);
    CHECK(r < 0 && strstr(e.msg, "unsupported endpoint"), "inproc:// refused: %s", e.msg);
    r = bn_conn_open_out(&c, "tpc://127.0.0.1:5", &o, &e);
    CHECK(r < 0 && strstr(e.msg, "unsupported endpoint"), "a scheme typo is not taken as a file name: %s", e.msg);

    /* plaintext binds only on loopback unless insecure */
    r = bn_conn_open_out(&c, "tcp://0.0.0.0:*", &o, &e);
    CHECK(r < 0 && strstr(e.msg, "plaintext"), "plaintext bind on 0.0.0.0 refused: %s", e.msg);
    q = o;
    q.insecure = true;
    r = bn_conn_open_out(&c, "tcp://0.0.0.0:*", &q, &e);
    CHECK(r == 0, "plaintext bind on 0.0.0.0 allowed with insecure");
    if (r == 0) bn_conn_close(c);
    r = bn_conn_open_in(&c, "@tcp://[::1]:*", &o, &e);
    if (r == 0) bn_conn_close(c); /* IPv6 may be off here; only the rule matters */
    CHECK(r == 0 || !strstr(e.msg, "plaintext"), "[::1] counts as loopback");

    /* peer restart: the reader keeps its socket, a writer goes away and a new
     * one connects; zmq reconnects transparently */
    int rel1, rel2;
    pid_t w1 = spawn_writer(&rel1, &o, 0, 5, false);
    pid_t w2 = spawn_writer(&rel2, &o, 5, 5, true);
    r = bn_conn_open_in(&c, "@tcp://127.0.0.1:*", &o, &e);
    int st, n = 0;
    release_writer(rel1, r == 0 ? ">%s" : NULL, r == 0 ? bn_conn_endpoint(c) : "");
    waitpid(w1, &st, 0);
    release_writer(rel2, r == 0 ? ">%s" : NULL, r == 0 ? bn_conn_endpoint(c) : "");
    if (r == 0) {
        r = recv_tokens(c, 0, &n, &e);
        bn_conn_close(c);
    }
    waitpid(w2, &st, 0);
    CHECK(r == 0 && n == 10, "writer restarted: 10 tokens from two writer processes (%s)", r ? e.msg : "ok");
}

/* The feedback loop's link: forward binds a private ipc endpoint, sample
 * connects to the announced endpoint; tokens then END flow back. */
/* bn_conn_watch: a ZeroMQ send that cannot leave (no reader; 60 s timeout)
 * fails as soon as the writer of the watched FIFO exits, naming that peer
 * (without the watch it would wait the whole minute and then say "did not
 * take a frame": the pipeline test of a killed bn-forward raced on this). */
static void test_watch(void) {
    char path[300];
    snprintf(path, sizeof path, "%s/watch", tmpdir);
    int ctl[2];
    if (mkfifo(path, 0600) < 0 || pipe(ctl) < 0) return;
    pid_t pid = fork();
    if (pid == 0) { /* the upstream: holds the FIFO open until released, then ends */
        close(ctl[1]);
        int fd = open(path, O_WRONLY);
        char b;
        if (read(ctl[0], &b, 1) < 0) _exit(1);
        close(fd);
        _exit(0);
    }
    close(ctl[0]);
    bn_conn_opts oi, oo;
    bn_conn_opts_default(&oi);
    oi.peer_name = "bn-forward";
    bn_conn_opts_default(&oo);
    oo.timeout_ms = 60000;
    bn_conn *in = NULL, *out = NULL;
    bn_err e;
    int r = bn_conn_open_in(&in, path, &oi, &e);
    if (r == 0) r = bn_conn_open_out(&out, "tcp://127.0.0.1:*", &oo, &e);
    if (r == 0) {
        bn_conn_watch(out, in);
        if (write(ctl[1], "x", 1) != 1) r = -1;
        int st;
        waitpid(pid, &st, 0);
        bn_frame f;
        int32_t id = 7;
        bn_frame_token(&f, &id, 0);
        if (r == 0) r = bn_conn_write(out, &f, &e);
    } else {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    CHECK(r < 0 && strstr(e.msg, "bn-forward ended while a frame for it was pending"),
          "send waiting on a dead upstream fails at once: %s", e.msg);
    bn_conn_close(out);
    bn_conn_close(in);
    close(ctl[1]);
}

static void test_feedback(void) {
    bn_conn *fin, *fout;
    bn_err e;
    bn_conn_opts o;
    bn_conn_opts_default(&o);
    o.timeout_ms = 3000;
    int r = bn_conn_open_feedback_in(&fin, NULL, &o, &e);
    CHECK(r == 0 && !strncmp(bn_conn_endpoint(fin), "ipc://", 6) && strstr(bn_conn_endpoint(fin), "/feedback"),
          "feedback input bound at %s", r == 0 ? bn_conn_endpoint(fin) : e.msg);
    if (r) return;
    char dir[300];
    snprintf(dir, sizeof dir, "%s", bn_conn_endpoint(fin) + 6);
    *strrchr(dir, '/') = 0;
    struct stat st;
    CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700, "feedback socket directory is 0700");
    /* the hello announces the endpoint; the sampler connects to it */
    bn_frame h;
    bn_frame_init(&h, BN_FRAME_HELLO);
    snprintf(h.hello.feedback, sizeof h.hello.feedback, "%s", bn_conn_endpoint(fin));
    r = bn_conn_open_feedback_out(&fout, h.hello.feedback, &o, &e);
    CHECK(r == 0, "sampler connects to hello.feedback (%s)", r ? e.msg : "ok");
    int n = 0;
    if (r == 0) {
        r = send_tokens(fout, 16, 100, &e);
        r = r ? r : recv_tokens(fin, 100, &n, &e);
        bn_conn_close(fout);
    }
    CHECK(r == 0 && n == 16, "16 tokens back over feedback, END ends it (%s)", r ? e.msg : "ok");
    bn_conn_close(fin);
    CHECK(access(dir, F_OK) != 0, "feedback temp directory removed on close");
    /* a full-vocabulary logits frame (128256 x f32 = 513 KB) in one message */
    if (bn_conn_open_feedback_in(&fin, NULL, &o, &e) == 0) {
        r = bn_conn_open_feedback_out(&fout, bn_conn_endpoint(fin), &o, &e);
        float *lg = malloc(128256 * sizeof *lg);
        for (int i = 0; i < 128256; i++) lg[i] = (float)i * 0.25f - 7.0f;
        bn_frame lf, got;
        bn_frame_init(&lf, BN_FRAME_LOGITS);
        lf.logits = lg; lf.n_rows = 1; lf.n_vocab = 128256; lf.pos = 77;
        if (r == 0) { r = bn_conn_write(fout, &lf, &e); bn_conn_close(fout); }
        r = r ? r : bn_conn_read(fin, &got, &e) == 1 ? 0 : -1;
        CHECK(r == 0 && got.kind == BN_FRAME_LOGITS && got.n_vocab == 128256 && got.pos == 77 &&
              !memcmp(got.logits, lg, 128256 * sizeof *lg), "513 KB logits frame over ipc intact (%s)", r ? e.msg : "ok");
        if (r == 0) bn_frame_free(&got);
        bn_conn_stats cs;
        bn_conn_get_stats(fin, &cs);
        CHECK(cs.frames == 1 && cs.bytes > 128256 * 4, "input stats: %llu frame, %llu bytes, wait %llu ns, codec %llu ns",
              (unsigned long long)cs.frames, (unsigned long long)cs.bytes, (unsigned long long)cs.wait_ns,
              (unsigned long long)cs.codec_ns);
        free(lg);
        bn_conn_close(fin);
    }
    CHECK(bn_conn_open_feedback_out(&fout, "", &o, &e) < 0 && strstr(e.msg, "no endpoint"), "no feedback endpoint: %s", e.msg);
    CHECK(bn_conn_open_feedback_in(&fin, "/tmp/file", &o, &e) < 0 && strstr(e.msg, "tcp:// or ipc://"), "feedback must be zmq: %s", e.msg);
}

/* Collects log lines from the ZAP handler thread. */
typedef struct logbuf {
    char text[2048];
} logbuf;
static void log_line(void *ud, const char *line) {
    logbuf *b = ud;
    size_t n = strlen(b->text);
    snprintf(b->text + n, sizeof b->text - n, "%s\n", line);
}

static void test_curve(void) {
    if (!bn_curve_available()) {
        CHECK(1, "# SKIP libzmq without CURVE");
        return;
    }
    char good[300], bad[300];
    snprintf(good, sizeof good, "%s/keys", tmpdir);
    snprintf(bad, sizeof bad, "%s/badkeys", tmpdir);
    bn_err e;
    int r = bn_curve_keygen(good, "server", false, false, &e);
    r = r ? r : bn_curve_keygen(good, "client", true, false, &e);
    CHECK(r == 0, "keygen server + authorized client (%s)", r ? e.msg : "ok");
    char p[400];
    struct stat st;
    snprintf(p, sizeof p, "%s/client.key", good);
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600, "secret key mode 0600");
    CHECK(bn_curve_keygen(good, "client", true, false, &e) < 0 && strstr(e.msg, "exists"), "keygen refuses to overwrite");
    /* the bad dir: same server public key, an unauthorized client pair */
    r = bn_curve_keygen(bad, "client", false, false, &e);
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "cp %s/server.pub %s/", good, bad);
    r = r ? r : system(cmd);

    bn_conn_opts srv, cli;
    logbuf lb = {{0}};
    bn_conn_opts_default(&srv);
    srv.timeout_ms = 5000;
    srv.curve_dir = good;
    srv.log = log_line;
    srv.log_ud = &lb;
    cli = srv;
    cli.log = NULL;
    int got;
    r = zmq_pair("@tcp://127.0.0.1:*", ">%s", &srv, &cli, 20, &got, &e);
    CHECK(r == 0 && got == 20, "CURVE: authorized client gets 20 tokens through (%s)", r ? e.msg : "ok");
    CHECK(lb.text[0] == 0, "no refusal logged for the good key");

    srv.timeout_ms = 1500;
    cli.curve_dir = bad;
    cli.timeout_ms = 1000;
    r = zmq_pair("@tcp://127.0.0.1:*", ">%s", &srv, &cli, 5, &got, &e);
    CHECK(r < 0 && got == 0 && strstr(e.msg, "within"), "CURVE: wrong client key gets nothing through: %s", e.msg);
    /* and the refused writer itself fails instead of queueing forever */
    bn_conn *w;
    bn_conn *rd;
    bn_conn_opts quiet = srv;
    quiet.log = NULL;
    r = bn_conn_open_in(&rd, "@tcp://127.0.0.1:*", &quiet, &e);
    if (r == 0) {
        char ep[600];
        snprintf(ep, sizeof ep, ">%s", bn_conn_endpoint(rd));
        r = bn_conn_open_out(&w, ep, &cli, &e);
        int32_t id = 1;
        bn_frame tf;
        bn_frame_token(&tf, &id, 0);
        if (r == 0) { r = bn_conn_write(w, &tf, &e); bn_conn_close(w); }
        bn_conn_close(rd);
        CHECK(r < 0 && strstr(e.msg, "did not take a frame"), "CURVE: refused writer gets a send timeout: %s", e.msg);
    }
    char *nl = strchr(lb.text, '\n');
    CHECK(strstr(lb.text, "refused a client") != NULL && nl && strstr(nl + 1, "refused") == NULL,
          "refusal logged once, not once per retry");

    /* plaintext client against a CURVE server: refused too */
    lb.text[0] = 0;
    cli.curve_dir = NULL;
    r = zmq_pair("@tcp://127.0.0.1:*", ">%s", &srv, &cli, 5, &got, &e);
    CHECK(r < 0 && got == 0, "CURVE: plaintext client gets nothing through");

    /* CURVE makes a non-loopback bind acceptable */
    bn_conn *c;
    r = bn_conn_open_in(&c, "@tcp://0.0.0.0:*", &srv, &e);
    CHECK(r == 0, "CURVE bind on 0.0.0.0 allowed (%s)", r ? e.msg : "ok");
    if (r == 0) bn_conn_close(c);
    /* missing key files are named */
    srv.curve_dir = bad; /* has no authorized/ */
    r = bn_conn_open_in(&c, "@tcp://127.0.0.1:*", &srv, &e);
    CHECK(r < 0 && strstr(e.msg, "authorized"), "server without allow list refused: %s", e.msg);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/bn-test-transport-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_pipe();
    test_file();
    test_fifo();
    test_epipe_and_timeout();
    test_zmq();
    test_feedback();
    test_watch();
    test_curve();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) return 1;
    return tap_done();
}
