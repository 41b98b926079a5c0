/* fuzz_gguf.c - libFuzzer harness for the GGUF reader: parse arbitrary bytes
 * with bn_gguf_open_mem, then touch everything a consumer would (every kv
 * through every getter and iterator and renderer, every tensor's bytes, the
 * model-level validator, a re-write through the writer's copy path), so
 * ASan/UBSan see any read the structural checks failed to bound. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"

/* Walk an array value, recursing into nested arrays. */
static uint64_t walk_array(const bn_gguf_kv *kv, int depth) {
    uint64_t acc = 0;
    bn_gguf_arr_iter it;
    bn_gguf_arr_iter_init(&it, kv);
    bn_gguf_str s;
    int64_t i;
    double f;
    bn_gguf_kv sub;
    for (uint64_t n = 0; n < kv->arr_n; n++) {
        if (kv->arr_type == BN_GGUF_STR) {
            if (!bn_gguf_arr_next_str(&it, &s)) break;
            acc += s.len ? (uint8_t)s.ptr[s.len - 1] : 0;
        } else if (kv->arr_type == BN_GGUF_ARR) {
            if (!bn_gguf_arr_next_arr(&it, &sub) || depth > 16) break;
            acc += walk_array(&sub, depth + 1);
        } else if (kv->arr_type == BN_GGUF_F32 || kv->arr_type == BN_GGUF_F64) {
            if (!bn_gguf_arr_next_f64(&it, &f)) break;
            acc += f > 0;
        } else {
            if (!bn_gguf_arr_next_i64(&it, &i)) {
                if (it.i < it.n && it.type == BN_GGUF_U64) { it.p += 8; it.i++; continue; }
                break;
            }
            acc += (uint64_t)i;
        }
    }
    return acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bn_gguf *g;
    bn_err e;
    if (bn_gguf_open_mem(&g, data, size, "fuzz.gguf", &e) != 0) {
        if (strncmp(e.msg, "fuzz.gguf: ", 11) != 0) abort(); /* every error names the file */
        return 0;
    }
    volatile uint64_t acc = 0;
    for (uint64_t k = 0; k < bn_gguf_n_kv(g); k++) {
        const bn_gguf_kv *kv = bn_gguf_kv_at(g, k);
        char key[256];
        size_t kl = kv->key.len < sizeof key - 1 ? (size_t)kv->key.len : sizeof key - 1;
        memcpy(key, kv->key.ptr, kl);
        key[kl] = 0;
        uint32_t u32; int32_t i32; uint64_t u64; float f; bool b; bn_gguf_str s;
        const bn_gguf_kv *akv; uint64_t an;
        acc += (uint64_t)bn_gguf_get_u32(g, key, &u32, &e) + (uint64_t)bn_gguf_get_i32(g, key, &i32, &e) +
               (uint64_t)bn_gguf_get_u64(g, key, &u64, &e) + (uint64_t)bn_gguf_get_f32(g, key, &f, &e) +
               (uint64_t)bn_gguf_get_bool(g, key, &b, &e) + (uint64_t)bn_gguf_get_str(g, key, &s, &e) +
               (uint64_t)bn_gguf_get_arr(g, key, kv->arr_type, &akv, &an, &e);
        if (kv->type == BN_GGUF_ARR) acc += walk_array(kv, 0);
        for (int fmt = 0; fmt < 3; fmt++) {
            char *v = bn_gguf_value_str(kv, (bn_gguf_fmt)fmt, fmt == 0 ? 0 : 16);
            acc += v ? strlen(v) : 0;
            free(v);
        }
        char ty[64];
        bn_gguf_type_str(kv, ty, sizeof ty);
    }
    for (uint64_t t = 0; t < bn_gguf_n_tensors(g); t++) {
        const bn_gguf_tensor *ti = bn_gguf_tensor_at(g, t);
        if (ti->nbytes) acc += ti->data[0] + ti->data[ti->nbytes - 1];
        if (bn_gguf_find_tensor(g, ti->name) != ti) abort();
    }
    char *rep = NULL;
    acc += (uint64_t)bn_gguf_validate_model(g, &rep);
    free(rep);
    bn_gguf_summary sm;
    bn_gguf_summarize(g, &sm);
    acc += sm.n_params;

    /* Re-encode the metadata: what was accepted must be writable and read
     * back with the same number of pairs (small files only, to stay fast). */
    if (size < 4096) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/fuzz_gguf.%d.gguf", (int)getpid());
        bn_gguf_writer *w;
        if (bn_gguf_writer_new(&w, path, &e) == 0) {
            int rc = 0;
            for (uint64_t k = 0; k < bn_gguf_n_kv(g) && rc == 0; k++) rc = bn_gguf_w_copy_kv(w, bn_gguf_kv_at(g, k), &e);
            if (rc == 0 && bn_gguf_writer_finish(w, &e) == 0) {
                bn_gguf *g2;
                if (bn_gguf_open(&g2, path, &e) != 0 || bn_gguf_n_kv(g2) != bn_gguf_n_kv(g)) abort();
                bn_gguf_close(g2);
            } else if (rc != 0) {
                bn_gguf_writer_abort(w);
            }
            remove(path);
        }
    }
    bn_gguf_close(g);
    (void)acc;
    return 0;
}
