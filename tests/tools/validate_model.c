/* validate_model [--stats] FILE.gguf... : open each file with the GGUF reader
 * and run bn_gguf_validate_model on it (what `bn-gguf validate` does),
 * printing the problems. --stats also prints, per tensor type, "TYPE: COUNT
 * tensors, BYTES bytes" and "total: N tensors". Exit 0 when every file is
 * valid, 1 otherwise. Used by the bn-quantize tests so they do not depend on
 * another tool being built. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

int main(int argc, char **argv) {
    int bad = 0, first = 1, stats = 0;
    if (argc > 1 && strcmp(argv[1], "--stats") == 0) { stats = 1; first = 2; }
    if (argc <= first) {
        fprintf(stderr, "usage: validate_model [--stats] FILE.gguf...\n");
        return 2;
    }
    for (int i = first; i < argc; i++) {
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
        if (stats) {
            uint64_t cnt[64] = {0}, bytes[64] = {0};
            for (uint64_t k = 0; k < bn_gguf_n_tensors(g); k++) {
                const bn_gguf_tensor *t = bn_gguf_tensor_at(g, k);
                uint32_t ty = t->type < 64 ? t->type : 63;
                cnt[ty]++;
                bytes[ty] += t->nbytes;
            }
            for (int ty = 0; ty < 64; ty++)
                if (cnt[ty])
                    printf("%s: %llu tensors, %llu bytes\n", bn_type_name((uint32_t)ty), (unsigned long long)cnt[ty],
                           (unsigned long long)bytes[ty]);
            printf("total: %llu tensors\n", (unsigned long long)bn_gguf_n_tensors(g));
        }
        bn_gguf_close(g);
    }
    return bad ? 1 : 0;
}
