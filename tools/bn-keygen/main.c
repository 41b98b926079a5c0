/* bn-keygen - CURVE key pairs for ZeroMQ links between bn stages.
 *   bn-keygen DIR               server + client pairs, client authorized
 *   bn-keygen --name NAME DIR   one more client pair NAME, authorized
 * Key files are z85 text (private keys mode 0600); layout in
 * docs/man/bn-keygen.md. Logic: bn_curve_keygen in lib/transport.c. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "transport.h"

static const char *tool = "bn-keygen";

static void usage(FILE *o) {
    fprintf(o,
        "usage: bn-keygen [options] DIR\n"
        "Write CURVE key pairs for --curve-keys DIR:\n"
        "  DIR/server.key, DIR/server.pub    the binding side's pair\n"
        "  DIR/client.key, DIR/client.pub    the connecting side's pair\n"
        "  DIR/authorized/client.pub         clients the binding side accepts\n"
        "options:\n"
        "  -n, --name NAME   write only a new client pair NAME.key/NAME.pub and authorize it\n"
        "  -f, --force       overwrite existing key files\n"
        "  -h, --help        this help\n"
        "      --version     version\n");
}

int main(int argc, char **argv) {
    static const struct option longopts[] = {
        {"name", required_argument, 0, 'n'}, {"force", no_argument, 0, 'f'},
        {"help", no_argument, 0, 'h'},       {"version", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    const char *name = NULL;
    bool force = false;
    int c;
    while ((c = getopt_long(argc, argv, "n:fh", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': name = optarg; break;
        case 'f': force = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': bn_print_version(tool, stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc) { usage(stderr); return 2; }
    const char *dir = argv[optind];
    bn_err e;
    if (!bn_curve_available()) bn_die(tool, 1, "this libzmq was built without CURVE (zmq_has(\"curve\") is false)");
    if (name) {
        if (!strcmp(name, "server")) bn_die(tool, 2, "--name server: that is the binding side's pair; run without --name");
        if (bn_curve_keygen(dir, name, true, force, &e) < 0) bn_die_err(tool, &e);
        fprintf(stderr, "%s: wrote %s/%s.key, %s/%s.pub and authorized it\n", tool, dir, name, dir, name);
        return 0;
    }
    if (bn_curve_keygen(dir, "server", false, force, &e) < 0) bn_die_err(tool, &e);
    if (bn_curve_keygen(dir, "client", true, force, &e) < 0) bn_die_err(tool, &e);
    fprintf(stderr, "%s: wrote server and client key pairs in %s (client authorized)\n", tool, dir);
    return 0;
}
