/* cli.h - what every bn-* tool's main shares: exit codes, --version text,
 * one-line error printing, and checking stdout on exit (a failed write is a
 * failure, as in sbase's fshut). */
#ifndef BN_CLI_H
#define BN_CLI_H

#include <stdio.h>
#include <stdbool.h>
#include "util.h"

#define BN_VERSION "0.1.0"

enum { BN_EXIT_OK = 0, BN_EXIT_FAIL = 1, BN_EXIT_USAGE = 2 };

/* Print "tool version X" plus the compiled SIMD paths and whether CUDA is in. */
void bn_print_version(const char *tool, FILE *out);

/* Print "tool: message" on stderr (one line). */
void bn_warnx(const char *tool, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print "tool: <e->msg>" on stderr and exit 1. */
void bn_die_err(const char *tool, const bn_err *e) __attribute__((noreturn));

/* Print "tool: message" and exit with status. */
void bn_die(const char *tool, int status, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));

/* Flush and close stdout; a write error (full disk) means exit status 1.
 * EPIPE counts as a clean end: the reader went away on purpose (| head). */
int bn_close_stdout(const char *tool);

/* Parse a decimal integer in [lo, hi]; false if it is not one. */
bool bn_parse_long(const char *s, long lo, long hi, long *out);
bool bn_parse_float(const char *s, float *out);

/* Transport flags every frame-speaking tool takes, parsed in one place:
 *   --timeout MS, --curve-keys DIR, --insecure
 * Put BN_TRANSPORT_LONGOPTS in the getopt_long table, BN_TRANSPORT_USAGE in
 * the usage text, and hand unknown option codes to bn_cli_transport_opt(). */
enum { BN_OPT_TIMEOUT = 0x7f01, BN_OPT_CURVE, BN_OPT_INSECURE };
#define BN_TRANSPORT_LONGOPTS \
    {"timeout", 1, 0, BN_OPT_TIMEOUT}, {"curve-keys", 1, 0, BN_OPT_CURVE}, {"insecure", 0, 0, BN_OPT_INSECURE}
#define BN_TRANSPORT_USAGE \
    "      --timeout MS        give up on a silent peer after MS ms (-1: never; default BN_TIMEOUT_MS)\n" \
    "      --curve-keys DIR    CURVE keys (bn-keygen) for tcp:// endpoints\n" \
    "      --insecure          allow plaintext tcp binds on non-loopback addresses\n"

struct bn_conn_opts;
/* Start co from the environment defaults, with security events (CURVE
 * refusals) logged to stderr as "tool: ...". */
void bn_cli_transport_init(const char *tool, struct bn_conn_opts *co);
/* 1 if c was a transport option (applied to co), 0 if not; a bad value is a
 * usage error (exit 2). */
int bn_cli_transport_opt(const char *tool, int c, const char *arg, struct bn_conn_opts *co);

/* Ignore SIGPIPE so writes return EPIPE, which the tools handle. */
void bn_ignore_sigpipe(void);

#endif
