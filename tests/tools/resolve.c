/* resolve.c - test driver for bn_model_resolve: `resolve SPEC` prints the
 * local path the spec resolves to (what a tool's -m would open), or
 * "resolve: <error>" on stderr and exits 1. Used by tests/fetch.bats until
 * the tools call bn_model_resolve themselves. */
#include <limits.h>
#include <stdio.h>
#include "cli.h"
#include "fetch.h"

int main(int argc, char **argv) {
    if (argc != 2) bn_die("resolve", BN_EXIT_USAGE, "usage: resolve SPEC");
    char path[PATH_MAX];
    bn_err e;
    if (bn_model_resolve(argv[1], path, sizeof path, &e) < 0) bn_die_err("resolve", &e);
    printf("%s\n", path);
    return bn_close_stdout("resolve");
}
