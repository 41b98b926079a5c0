/* cli.c - shared tool plumbing. */
#include "cli.h"
#include "cpu.h"
#include "transport.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void bn_print_version(const char *tool, FILE *out) {
    bn_cpu_info ci;
    bn_cpu_detect(&ci);
    fprintf(out, "%s (bn) %s\n", tool, BN_VERSION);
    fprintf(out, "simd compiled: %s\n", bn_isa_compiled_list());
    fprintf(out, "simd usable here:");
    for (int i = 0; i < BN_ISA_COUNT; i++)
        if (bn_isa_compiled((bn_isa)i) && bn_isa_supported(&ci, (bn_isa)i)) fprintf(out, " %s", bn_isa_name((bn_isa)i));
    fprintf(out, "%s\n", ci.avx512vnni ? " (avx512-vnni)" : "");
#ifdef BN_HAVE_CUDA
    fprintf(out, "cuda: compiled in\n");
#else
    fprintf(out, "cuda: not compiled in (build with make CUDA=1)\n");
#endif
}

/* "tool: message\n" on stderr. */
static void vwarn(const char *tool, const char *fmt, va_list ap) {
    fprintf(stderr, "%s: ", tool);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void bn_warnx(const char *tool, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwarn(tool, fmt, ap);
    va_end(ap);
}

void bn_die_err(const char *tool, const bn_err *e) {
    fprintf(stderr, "%s: %s\n", tool, e && e->msg[0] ? e->msg : "unknown error");
    exit(BN_EXIT_FAIL);
}

void bn_die(const char *tool, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vwarn(tool, fmt, ap);
    va_end(ap);
    exit(status);
}

/* Is fd a pipe or socket whose reader has gone? (poll reports POLLERR on the
 * write end of a pipe without readers.) */
static bool reader_gone(int fd) {
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP));
}

int bn_close_stdout(const char *tool) {
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        /* EPIPE now, or an earlier write's EPIPE whose errno is long gone
         * (the stream only keeps its error flag): the reader left on purpose */
        if (errno == EPIPE || reader_gone(fileno(stdout))) return BN_EXIT_OK;
        fprintf(stderr, "%s: <stdout>: write error: %s\n", tool, strerror(errno ? errno : EIO));
        return BN_EXIT_FAIL;
    }
    if (fclose(stdout) != 0 && errno != EPIPE) {
        fprintf(stderr, "%s: <stdout>: close error: %s\n", tool, strerror(errno));
        return BN_EXIT_FAIL;
    }
    return BN_EXIT_OK;
}

bool bn_parse_long(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool bn_parse_float(const char *s, float *out) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

void bn_ignore_sigpipe(void) { signal(SIGPIPE, SIG_IGN); }

/* Security log lines from the transport's helper thread, one per line. */
static void log_to_stderr(void *ud, const char *line) {
    fprintf(stderr, "%s: %s\n", (const char *)ud, line);
}

void bn_cli_transport_init(const char *tool, bn_conn_opts *co) {
    bn_conn_opts_default(co);
    co->log = log_to_stderr;
    co->log_ud = (void *)tool;
}

int bn_cli_transport_opt(const char *tool, int c, const char *arg, bn_conn_opts *co) {
    long v;
    switch (c) {
    case BN_OPT_TIMEOUT:
        if (!bn_parse_long(arg, -1, 86400000L, &v)) bn_die(tool, BN_EXIT_USAGE, "--timeout: bad value '%s' (ms, -1 = never)", arg);
        co->timeout_ms = (int)v;
        return 1;
    case BN_OPT_CURVE: co->curve_dir = arg; return 1;
    case BN_OPT_INSECURE: co->insecure = true; return 1;
    default: return 0;
    }
}
