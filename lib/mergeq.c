/* mergeq.c - binary heap of merge candidates. */
#include "mergeq.h"

#include <stdlib.h>

static int before(const bn_merge *x, const bn_merge *y) {
    if (x->key != y->key) return x->key < y->key;
    return x->left < y->left;
}

int bn_mergeq_push(bn_mergeq *q, bn_merge m, bn_err *e) {
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        bn_merge *p = realloc(q->a, cap * sizeof *p);
        if (!p) return bn_errf(e, "tokenize: out of memory");
        q->a = p;
        q->cap = cap;
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t par = (i - 1) / 2;
        if (!before(&m, &q->a[par])) break;
        q->a[i] = q->a[par];
        i = par;
    }
    q->a[i] = m;
    return 0;
}

bn_merge bn_mergeq_pop(bn_mergeq *q) {
    bn_merge top = q->a[0], last = q->a[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && before(&q->a[c + 1], &q->a[c])) c++;
        if (!before(&q->a[c], &last)) break;
        q->a[i] = q->a[c];
        i = c;
    }
    if (q->n) q->a[i] = last;
    return top;
}

void bn_mergeq_free(bn_mergeq *q) {
    free(q->a);
    q->a = NULL;
    q->n = q->cap = 0;
}
