/* chat.c - built-in chat formats and template recognition. */
#include "chat.h"

#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = true; return; }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void puts_(sbuf *b, const char *s) { put(b, s, strlen(s)); }

/* Jinja's trim / Python's strip: ASCII whitespace at both ends. */
static void put_trim(sbuf *b, const char *s) {
    size_t n = strlen(s);
    while (n && strchr(" \t\n\r\f\v", s[0])) { s++; n--; }
    while (n && strchr(" \t\n\r\f\v", s[n - 1])) n--;
    put(b, s, n);
}

/* Text of a special token of v, "" when absent. */
static void put_tok(sbuf *b, const bn_vocab *v, int32_t id) {
    if (id < 0) return;
    size_t n;
    const char *t = bn_vocab_text(v, id, &n);
    put(b, t, n);
}

static const char *names[] = {NULL, "llama3", "bitnet", "bitnet-gguf", "llama2"};

const char *bn_chat_name(bn_chat_kind k) {
    return k >= BN_CHAT_LLAMA3 && k <= BN_CHAT_LLAMA2 ? names[k] : "?";
}

int bn_chat_from_name(const char *name, bn_chat_kind *out, bn_err *e) {
    for (int k = BN_CHAT_LLAMA3; k <= BN_CHAT_LLAMA2; k++)
        if (!strcmp(name, names[k])) { *out = (bn_chat_kind)k; return 0; }
    return bn_errf(e, "chat template: unknown name \"%s\" (llama3, bitnet, bitnet-gguf, llama2)", name);
}

/* Substring tests in the order llama.cpp's llm_chat_detect_template would
 * distinguish these families. */
int bn_chat_detect(const char *t, bn_chat_kind *out, bn_err *e) {
    if (!t)
        return bn_errf(e, "chat template: the model has no tokenizer.chat_template; "
                          "choose one with --chat-template (llama3, bitnet, bitnet-gguf, llama2)");
    if (strstr(t, "<|start_header_id|>") && strstr(t, "<|end_header_id|>")) *out = BN_CHAT_LLAMA3;
    else if (strstr(t, "BITNETAssistant")) *out = BN_CHAT_BITNET_GGUF;
    else if (strstr(t, "<|eot_id|>") && strstr(t, "Assistant: ")) *out = BN_CHAT_BITNET;
    else if (strstr(t, "[INST]")) *out = BN_CHAT_LLAMA2;
    else
        return bn_errf(e, "chat template: unsupported template \"%.48s...\"; choose one with "
                          "--chat-template (llama3, bitnet, bitnet-gguf, llama2)", t);
    return 0;
}

int bn_chat_apply(bn_chat_kind k, const bn_vocab *v, const bn_chat_msg *m, size_t n,
                  bool add_gen, char **out, bn_err *e) {
    sbuf b = {0};
    puts_(&b, "");
    if (k == BN_CHAT_LLAMA3) {
        for (size_t i = 0; i < n; i++) {
            puts_(&b, "<|start_header_id|>");
            puts_(&b, m[i].role);
            puts_(&b, "<|end_header_id|>\n\n");
            put_trim(&b, m[i].content);
            puts_(&b, "<|eot_id|>");
        }
        if (add_gen) puts_(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    } else if (k == BN_CHAT_BITNET) {
        for (size_t i = 0; i < n; i++) {
            const char *r = m[i].role;
            if (*r) {
                char c = r[0] >= 'a' && r[0] <= 'z' ? (char)(r[0] - 32) : r[0];
                put(&b, &c, 1);
                for (const char *p = r + 1; *p; p++) {
                    char l = *p >= 'A' && *p <= 'Z' ? (char)(*p + 32) : *p;
                    put(&b, &l, 1);
                }
            }
            puts_(&b, ": ");
            put_trim(&b, m[i].content);
            puts_(&b, "<|eot_id|>");
        }
        if (add_gen) puts_(&b, "Assistant: ");
    } else if (k == BN_CHAT_BITNET_GGUF) {
        for (size_t i = 0; i < n; i++) {
            if (i == 0) put_tok(&b, v, v->bos);
            if (!strcmp(m[i].role, "user")) {
                puts_(&b, "Human: ");
                puts_(&b, m[i].content);
                puts_(&b, "\n\nBITNETAssistant: ");
                put_tok(&b, v, v->eos);
            } else if (!strcmp(m[i].role, "assistant")) {
                puts_(&b, m[i].content);
                put_tok(&b, v, v->eos);
            }
        }
    } else if (k == BN_CHAT_LLAMA2) {
        bool inside = true;
        puts_(&b, "[INST] ");
        for (size_t i = 0; i < n; i++) {
            if (!inside) {
                inside = true;
                put_tok(&b, v, v->bos);
                puts_(&b, "[INST] ");
            }
            if (!strcmp(m[i].role, "system")) {
                puts_(&b, "<<SYS>>\n");
                put_trim(&b, m[i].content);
                puts_(&b, "\n<</SYS>>\n\n");
            } else if (!strcmp(m[i].role, "user")) {
                put_trim(&b, m[i].content);
                puts_(&b, " [/INST]");
            } else {
                put_trim(&b, m[i].content);
                put_tok(&b, v, v->eos);
                inside = false;
            }
        }
    } else {
        free(b.s);
        return bn_errf(e, "chat template: bad kind %d", (int)k);
    }
    if (b.oom) {
        free(b.s);
        return bn_errf(e, "chat template: out of memory");
    }
    *out = b.s;
    return 0;
}

/* See the header. */
size_t bn_unescape(char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) { s[o++] = s[i]; continue; }
        char c = s[i + 1];
        char r = 0;
        switch (c) {
        case 'n': r = '\n'; break;
        case 'r': r = '\r'; break;
        case 't': r = '\t'; break;
        case '\'': r = '\''; break;
        case '"': r = '"'; break;
        case '\\': r = '\\'; break;
        case 'x': {
            int v = 0, k = 0;
            while (k < 2 && i + 2 + k < n) {
                char h = s[i + 2 + k];
                int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                      : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (d < 0) break;
                v = v * 16 + d;
                k++;
            }
            if (k == 2) {
                s[o++] = (char)v;
                i += 3;
                continue;
            }
            break;
        }
        default: break;
        }
        if (r) { s[o++] = r; i++; }
        else s[o++] = s[i];
    }
    return o;
}
