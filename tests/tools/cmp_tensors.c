/* cmp_tensors A.gguf B.gguf [--only-type TYPE] : compare two GGUF files
 * tensor by tensor (name set, type, shape and every data byte). Prints one
 * line per difference and "N tensors identical" at the end; exit 0 when all
 * compared tensors are identical, 1 otherwise, 2 on usage errors. Tensor
 * order and metadata are not compared (converters may order differently).
 * --only-type restricts the comparison to tensors of that type in A.
 * I2_S tensors are compared over the packed codes and the f32 scale (n/4 + 4
 * bytes): bitnet.cpp's quantize_i2_s leaves trailer bytes 4..31 as whatever
 * was in its buffer (the ../shared fixtures hold leftover code bytes there),
 * so those padding bytes carry no information; differences in them are
 * counted and reported but do not fail the comparison. */
#include <stdio.h>
#include <string.h>

#include "gguf.h"

int main(int argc, char **argv) {
    if (argc != 3 && !(argc == 5 && strcmp(argv[3], "--only-type") == 0)) {
        fprintf(stderr, "usage: cmp_tensors A.gguf B.gguf [--only-type TYPE]\n");
        return 2;
    }
    int only = argc == 5 ? bn_type_from_name(argv[4]) : -1;
    bn_gguf *a, *b;
    bn_err e;
    if (bn_gguf_open(&a, argv[1], &e) || bn_gguf_open(&b, argv[2], &e)) {
        fprintf(stderr, "cmp_tensors: %s\n", e.msg);
        return 2;
    }
    int bad = 0;
    uint64_t same = 0, na = 0, pad = 0;
    for (uint64_t i = 0; i < bn_gguf_n_tensors(a); i++) {
        const bn_gguf_tensor *ta = bn_gguf_tensor_at(a, i);
        if (only >= 0 && ta->type != (uint32_t)only) continue;
        na++;
        const bn_gguf_tensor *tb = bn_gguf_find_tensor(b, ta->name);
        if (!tb) { printf("%s: missing in B\n", ta->name); bad++; continue; }
        if (ta->type != tb->type || ta->n_dims != tb->n_dims || memcmp(ta->ne, tb->ne, sizeof ta->ne)) {
            printf("%s: type/shape differ (%s vs %s)\n", ta->name, bn_type_name(ta->type), bn_type_name(tb->type));
            bad++;
            continue;
        }
        uint64_t cmpn = ta->nbytes;
        if (ta->type == BN_TYPE_I2_S && ta->nbytes == tb->nbytes && ta->nbytes >= 32) {
            cmpn = ta->nbytes - 28;
            if (memcmp(ta->data + cmpn, tb->data + cmpn, 28)) pad++;
        }
        if (ta->nbytes != tb->nbytes || memcmp(ta->data, tb->data, cmpn)) {
            uint64_t k = 0;
            while (k < cmpn && ta->data[k] == tb->data[k]) k++;
            printf("%s: data differ (first at byte %llu of %llu)\n", ta->name, (unsigned long long)k,
                   (unsigned long long)ta->nbytes);
            bad++;
            continue;
        }
        same++;
    }
    if (only < 0)
        for (uint64_t i = 0; i < bn_gguf_n_tensors(b); i++)
            if (!bn_gguf_find_tensor(a, bn_gguf_tensor_at(b, i)->name)) {
                printf("%s: missing in A\n", bn_gguf_tensor_at(b, i)->name);
                bad++;
            }
    if (pad) printf("%llu I2_S tensors differ only in trailer padding bytes 4..31 (ignored)\n", (unsigned long long)pad);
    printf("%llu of %llu tensors identical\n", (unsigned long long)same, (unsigned long long)na);
    bn_gguf_close(a);
    bn_gguf_close(b);
    return bad || na == 0 ? 1 : 0;
}
