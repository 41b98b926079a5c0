/* validate_model FILE.gguf... : open each file with the GGUF reader and run
 * bn_gguf_validate_model on it (what `bn-gguf validate` does), printing the
 * problems. Exit 0 when every file is valid, 1 otherwise. Used by the
 * bn-quantize tests so they do not depend on another tool being built. */
#include <stdio.h>
#include <stdlib.h>

#include "gguf.h"

int main(int argc, char **argv) {
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        bn_gguf *g;
        bn_err e;
        if (bn_gguf_open(&g, argv[i], &e)) {
            printf("%s\n", e.msg);
            bad++;
            continue;
        }
        char *rep = NULL;
        int n = bn_gguf_validate_model(g, &rep);
        if (n) printf("%s: %d problems\n%s", argv[i], n, rep ? rep : "");
        else printf("%s: valid\n", argv[i]);
        bad += n != 0;
        free(rep);
        bn_gguf_close(g);
    }
    return argc < 2 ? 2 : bad ? 1 : 0;
}
