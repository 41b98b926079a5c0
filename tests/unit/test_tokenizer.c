/* test_tokenizer.c - unit tests for lib/unicode, vocab, spm, bpe, detok,
 * chat and spm_model on small hand-built vocabularies, plus the small
 * vocabulary files in tests/data/tokenizer (run from the repository root). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "detok.h"
#include "gguf.h"
#include "spm_model.h"
#include "tap.h"
#include "unicode.h"
#include "vocab.h"

#define DATA "tests/data/tokenizer/"

static bool ids_eq(const bn_ids *a, const int32_t *want, size_t n) {
    return a->n == n && (n == 0 || memcmp(a->ids, want, n * sizeof *want) == 0);
}

/* Tokenize without specials and compare. */
static bool tok_is(const bn_vocab *v, const char *text, const int32_t *want, size_t n) {
    bn_ids a = {0};
    bn_err e;
    bool ok = bn_tokenize(v, text, strlen(text), false, false, &a, &e) == 0 && ids_eq(&a, want, n);
    bn_ids_free(&a);
    return ok;
}

static void test_unicode(void) {
    CHECK(bn_unicode_flags('a') == BN_UCAT_LETTER, "ascii letter");
    CHECK(bn_unicode_flags('7') == BN_UCAT_NUMBER, "ascii digit");
    CHECK(bn_unicode_flags(' ') == BN_UCAT_SPACE && bn_unicode_flags('\n') == BN_UCAT_SPACE, "ascii space");
    CHECK(bn_unicode_flags('!') == 0, "ascii punctuation has no flag");
    CHECK(bn_unicode_flags(0xE9) == BN_UCAT_LETTER, "U+00E9 is a letter");
    CHECK(bn_unicode_flags(0x0661) == BN_UCAT_NUMBER, "Arabic-Indic one is a number");
    CHECK(bn_unicode_flags(0x00BD) == BN_UCAT_NUMBER, "one half is \\p{N} (No)");
    CHECK(bn_unicode_flags(0x3000) == BN_UCAT_SPACE && bn_unicode_flags(0xA0) == BN_UCAT_SPACE, "ideographic/nbsp spaces");
    CHECK(bn_unicode_flags(0x1F680) == 0, "emoji has no flag");
    CHECK(bn_unicode_flags(0x65E5) == BN_UCAT_LETTER, "CJK ideograph is a letter");
    CHECK(bn_unicode_flags(0x1C) == 0, "U+001C is not White_Space");
    uint32_t cp;
    CHECK(bn_utf8_decode((const uint8_t *)"\xE2\x82\xAC", 3, &cp) == 3 && cp == 0x20AC, "decode euro");
    CHECK(bn_utf8_decode((const uint8_t *)"\xC0\x80", 2, &cp) == 0, "overlong rejected");
    CHECK(bn_utf8_decode((const uint8_t *)"\xED\xA0\x80", 3, &cp) == 0, "surrogate rejected");
    CHECK(bn_utf8_decode((const uint8_t *)"\xF4\x90\x80\x80", 4, &cp) == 0, "above U+10FFFF rejected");
    CHECK(bn_utf8_decode((const uint8_t *)"\xE2\x82", 2, &cp) == 0, "truncated rejected");
    size_t bad = 0;
    CHECK(!bn_utf8_valid("ok\x80zz", 5, &bad) && bad == 2, "first bad offset reported (%zu)", bad);
    char buf[4];
    CHECK(bn_utf8_encode(0x1F999, buf) == 4 && memcmp(buf, "\xF0\x9F\xA6\x99", 4) == 0, "encode 4 bytes");
}

/* A tiny SentencePiece vocabulary: <unk> <s> </s>, 256 byte tokens, pieces. */
static void build_spm(bn_vocab *v) {
    bn_err e;
    static const struct { const char *t; float s; } p[] = {
        {"\xE2\x96\x81", -1e9f}, {"a", -1}, {"b", -2}, {"c", -3}, {"ab", -4}, {"bc", -4},
        {"\xE2\x96\x81" "a", -5}, {"\xE2\x96\x81" "ab", -6}, {"abc", -7},
    };
    size_t np = sizeof p / sizeof p[0];
    bn_vocab_init(v, BN_VOCAB_SPM, (uint32_t)(3 + 256 + np), &e);
    bn_vocab_set_token(v, 0, "<unk>", 5, 0, BN_TOK_UNKNOWN, &e);
    bn_vocab_set_token(v, 1, "<s>", 3, 0, BN_TOK_CONTROL, &e);
    bn_vocab_set_token(v, 2, "</s>", 4, 0, BN_TOK_CONTROL, &e);
    for (int b = 0; b < 256; b++) {
        char t[8];
        snprintf(t, sizeof t, "<0x%02X>", b);
        bn_vocab_set_token(v, (uint32_t)(3 + b), t, 6, 0, BN_TOK_BYTE, &e);
    }
    for (size_t i = 0; i < np; i++)
        bn_vocab_set_token(v, (uint32_t)(259 + i), p[i].t, strlen(p[i].t), p[i].s, BN_TOK_NORMAL, &e);
    v->bos = 1; v->eos = 2; v->unk = 0; v->add_bos = true;
    CHECK(bn_vocab_finish(v, &e) == 0, "spm vocab builds");
}

static void test_spm(void) {
    bn_vocab v;
    build_spm(&v);
    enum { SP = 259, A = 260, B = 261, C = 262, AB = 263, BC = 264, SPA = 265, SPAB = 266, ABC = 267 };
    CHECK(tok_is(&v, "ab", (int32_t[]){SPAB}, 1), "ab -> \xE2\x96\x81" "ab (dummy prefix, best-score merges)");
    /* "abc": _ a b c; best pair a+b (-4) ties b+c (-4): leftmost wins -> _ ab c, then _ab (-6) c */
    CHECK(tok_is(&v, "abc", (int32_t[]){SPAB, C}, 2), "equal scores: leftmost pair merges first");
    CHECK(tok_is(&v, "a  b", (int32_t[]){SPA, SP, SP, B}, 4), "space runs stay U+2581 pieces");
    CHECK(tok_is(&v, "\xC3\xA9", (int32_t[]){SP, 3 + 0xC3, 3 + 0xA9}, 3), "byte fallback for an unknown character");
    CHECK(tok_is(&v, "", NULL, 0), "empty input gives nothing");
    bn_ids a = {0};
    bn_err e;
    CHECK(bn_tokenize(&v, "ab", 2, true, false, &a, &e) == 0 && ids_eq(&a, (int32_t[]){1, SPAB}, 2), "BOS added");
    a.n = 0;
    CHECK(bn_tokenize(&v, "a<s>b", 5, false, true, &a, &e) == 0 && ids_eq(&a, (int32_t[]){SPA, 1, SP, B}, 4),
          "parse_special splits at <s>, space prefix after it");
    a.n = 0;
    CHECK(bn_tokenize(&v, "a\xFF", 2, false, false, &a, &e) < 0 && strstr(e.msg, "byte offset 1"),
          "invalid UTF-8 rejected with offset: %s", e.msg);
    bn_ids_free(&a);
    char *s;
    size_t n;
    int32_t ids[] = {1, SPAB, C, 3 + 0xC3, 3 + 0xA9, 2};
    CHECK(bn_detokenize(&v, ids, 6, false, false, &s, &n, &e) == 0 && !strcmp(s, " abc\xC3\xA9"),
          "llama.cpp detok keeps the space after a hidden BOS");
    free(s);
    CHECK(bn_detokenize(&v, ids + 1, 4, false, true, &s, &n, &e) == 0 && !strcmp(s, "abc\xC3\xA9"),
          "llama.cpp detok strips the first space without BOS");
    free(s);
    CHECK(bn_detokenize(&v, ids, 6, false, true, &s, &n, &e) == 0 && !strcmp(s, "<s> abc\xC3\xA9</s>"),
          "unparse_special shows control tokens");
    free(s);
    /* streaming: bytes of é arrive in two tokens */
    bn_detok d;
    const char *t;
    size_t tl;
    CHECK(bn_detok_init(&d, &v, false, &e) == 0, "detok init");
    bn_detok_push(&d, 1, &t, &tl, &e);
    CHECK(tl == 0, "BOS hidden");
    bn_detok_push(&d, SPAB, &t, &tl, &e);
    CHECK(tl == 2 && !memcmp(t, "ab", 2), "first piece loses its space in streaming");
    bn_detok_push(&d, 3 + 0xC3, &t, &tl, &e);
    CHECK(tl == 0, "lead byte held back");
    bn_detok_push(&d, 3 + 0xA9, &t, &tl, &e);
    CHECK(tl == 2 && !memcmp(t, "\xC3\xA9", 2), "character completed");
    bn_detok_push(&d, 3 + 0xFF, &t, &tl, &e);
    CHECK(tl == 3 && !memcmp(t, "\xEF\xBF\xBD", 3), "invalid byte becomes U+FFFD");
    bn_detok_push(&d, 3 + 0xE2, &t, &tl, &e);
    bn_detok_push(&d, A, &t, &tl, &e);
    CHECK(tl == 4 && !memcmp(t, "\xEF\xBF\xBD" "a", 4), "interrupted sequence becomes U+FFFD then the text");
    bn_detok_push(&d, 3 + 0xF0, &t, &tl, &e);
    bn_detok_finish(&d, &t, &tl);
    CHECK(tl == 3, "unfinished character at the end becomes U+FFFD");
    CHECK(bn_detok_push(&d, 99999, &t, &tl, &e) < 0 && strstr(e.msg, "out of range"), "bad id: %s", e.msg);
    bn_detok_free(&d);
    char fp[65];
    memcpy(fp, v.fingerprint, 65);
    CHECK(strlen(fp) == 64, "fingerprint is 64 hex digits");
    bn_vocab_free(&v);
    build_spm(&v);
    CHECK(!strcmp(fp, v.fingerprint), "fingerprint is deterministic");
    bn_vocab_free(&v);
}

/* A byte-level BPE vocabulary: 256 mapped bytes, a few merges. */
static void build_bpe(bn_vocab *v, bn_vocab_pre pre) {
    bn_err e;
    static const char *extra[] = {"he", "ll", "hell", "hello", "\xC4\xA0" "w", "\xC4\xA0" "wo", "lo"};
    size_t nx = sizeof extra / sizeof extra[0];
    bn_vocab_init(v, BN_VOCAB_BPE, (uint32_t)(256 + nx + 1), &e);
    for (int b = 0; b < 256; b++) {
        uint32_t cp = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE ? (uint32_t)b : 0;
        if (!cp) {
            int k = 0;
            for (int x = 0; x < b; x++)
                if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE)) k++;
            cp = 0x100 + (uint32_t)k;
        }
        char t[4];
        size_t l = bn_utf8_encode(cp, t);
        bn_vocab_set_token(v, (uint32_t)b, t, l, 0, BN_TOK_NORMAL, &e);
    }
    for (size_t i = 0; i < nx; i++) bn_vocab_set_token(v, (uint32_t)(256 + i), extra[i], strlen(extra[i]), 0, BN_TOK_NORMAL, &e);
    bn_vocab_set_token(v, (uint32_t)(256 + nx), "<|end|>", 7, 0, BN_TOK_CONTROL, &e);
    v->pre = pre;
    /* ranks: l+l before h+e: "hello" -> h e ll o -> he ll o -> hell o -> (no hello merge) */
    bn_vocab_add_merge(v, "l", 1, "l", 1, &e);
    bn_vocab_add_merge(v, "h", 1, "e", 1, &e);
    bn_vocab_add_merge(v, "he", 2, "ll", 2, &e);
    bn_vocab_add_merge(v, "\xC4\xA0", 2, "w", 1, &e);
    bn_vocab_add_merge(v, "\xC4\xA0" "w", 3, "o", 1, &e);
    bn_vocab_add_merge(v, "x", 1, "zz", 2, &e); /* "zz" is not a token: dropped */
    v->eos = (int32_t)(256 + nx);
    CHECK(bn_vocab_finish(v, &e) == 0, "bpe vocab builds");
    CHECK(v->n_merges == 5 && v->n_merges_dropped == 1, "merges kept %u dropped %u", v->n_merges, v->n_merges_dropped);
}

static void test_bpe(void) {
    bn_vocab v;
    build_bpe(&v, BN_PRE_GPT2);
    CHECK(tok_is(&v, "hello", (int32_t[]){258, 'o'}, 2), "gpt-2: merges by rank (hell + o)");
    CHECK(tok_is(&v, "hello world", (int32_t[]){258, 'o', 261, 'r', 'l', 'd'}, 6), "gpt-2: space joins the word");
    CHECK(tok_is(&v, "a\n", (int32_t[]){'a', '\n'}, 2), "newline byte maps to its token");
    CHECK(tok_is(&v, "a<|end|>", (int32_t[]){'a', '<', '|', 'e', 'n', 'd', '|', '>'}, 8),
          "special text is plain text without parse_special");
    bn_ids a = {0};
    bn_err e;
    CHECK(bn_tokenize(&v, "a<|end|>", 8, false, true, &a, &e) == 0 && ids_eq(&a, (int32_t[]){'a', 263}, 2),
          "parse_special recognizes <|end|>");
    bn_ids_free(&a);
    CHECK(bn_vocab_is_eog(&v, 263) && !bn_vocab_is_eog(&v, 'a'), "EOS is end of generation");
    char *s;
    size_t n;
    int32_t ids[] = {258, 'o', 261, 'r', 'l', 'd', ' ', ','};
    CHECK(bn_detokenize(&v, ids, 8, false, false, &s, &n, &e) == 0 && !strcmp(s, "hello world,"),
          "byte-level decode with clean_spaces (\" ,\" -> \",\"): [%s]", s);
    free(s);
    int32_t bad[] = {'a', 264};
    CHECK(bn_detokenize(&v, bad, 2, false, false, &s, &n, &e) < 0 && strstr(e.msg, "out of range"), "detok: id out of range: %s", e.msg);
    bn_vocab_free(&v);
    build_bpe(&v, BN_PRE_LLAMA3);
    CHECK(v.ignore_merges, "llama3 sets ignore_merges");
    CHECK(tok_is(&v, "hello", (int32_t[]){259}, 1), "llama3: whole pre-token found in the vocab is used directly");
    CHECK(tok_is(&v, "12345", (int32_t[]){'1', '2', '3', '4', '5'}, 5), "llama3: digits in groups of three, no merges");
    bn_vocab_free(&v);
}

/* The real files shipped in tests/data: spot checks beyond the vectors. */
static void test_files(void) {
    bn_vocab v;
    bn_err e;
    CHECK(bn_vocab_load_file(&v, DATA "ggml-vocab-llama-spm.gguf", &e) == 0, "load llama-spm GGUF");
    CHECK(v.type == BN_VOCAB_SPM && v.n_tokens == 32000 && v.bos == 1 && v.eos == 2 && v.unk == 0, "spm metadata");
    CHECK(v.spm_ws_split, "llama-spm: U+2581 only starts pieces or forms runs: word-by-word encoding");
    {
        static const char t[] = "  Hello   world\n\t x  \xE2\x96\x81\xE2\x96\x81" "a  \xF0\x9F\xA6\x99 Wie geht's?   ";
        bn_ids w = {0}, x = {0};
        bn_tokenize(&v, t, strlen(t), true, false, &w, &e);
        v.spm_ws_split = false;
        bn_tokenize(&v, t, strlen(t), true, false, &x, &e);
        v.spm_ws_split = true;
        CHECK(w.n == x.n && w.n > 0 && memcmp(w.ids, x.ids, w.n * sizeof *w.ids) == 0, "llama-spm: word-by-word == whole text");
        bn_ids_free(&w);
        bn_ids_free(&x);
    }
    CHECK(tok_is(&v, "Hello world", (int32_t[]){15043, 3186}, 2), "Hello world");
    CHECK(tok_is(&v, "\xF0\x9F\xA6\x99", (int32_t[]){29871, 243, 162, 169, 156}, 5), "llama emoji bytes");
    bn_vocab_free(&v);
    CHECK(bn_vocab_load_file(&v, DATA "ggml-vocab-gpt-2.gguf", &e) == 0, "load gpt-2 GGUF");
    CHECK(v.type == BN_VOCAB_BPE && v.pre == BN_PRE_GPT2 && v.n_tokens == 50257 && v.n_merges == 50000, "gpt-2 metadata");
    CHECK(tok_is(&v, "Hello world", (int32_t[]){15496, 995}, 2), "gpt-2 Hello world");
    /* 1 MB in one fragment: finishes (quadratic behaviour would not) */
    size_t big = 1 << 20;
    char *s = malloc(big + 1);
    for (size_t i = 0; i < big; i++) s[i] = "abc de\n"[i % 7];
    s[big] = 0;
    bn_ids a = {0};
    CHECK(bn_tokenize(&v, s, big, false, false, &a, &e) == 0 && a.n > 100000, "1 MiB through gpt-2 (%zu ids)", a.n);
    bn_vocab_free(&v);
    a.n = 0;
    CHECK(bn_vocab_load_file(&v, DATA "kjv-tokenizer.model", &e) == 0, "load kjv tokenizer.model");
    CHECK(v.type == BN_VOCAB_SPM && v.n_tokens == 4096 && v.bos == 1 && v.eos == 2 && v.add_space_prefix, "kjv metadata");
    CHECK(bn_tokenize(&v, s, big, true, false, &a, &e) == 0 && a.n > 100000, "1 MiB through SPM (%zu ids)", a.n);
    CHECK(v.spm_ws_split, "kjv vocabulary allows word-by-word SPM encoding");
    {
        static const char kjv[] = "In the beginning God created the heaven and the earth.  And the earth was "
                                  "without form, and void; 1234 \xE2\x80\x9Cquoted\xE2\x80\x9D  end ";
        bn_ids w = {0}, x = {0};
        bn_tokenize(&v, kjv, strlen(kjv), true, false, &w, &e);
        v.spm_ws_split = false; /* the whole-text merge loop must agree */
        bn_tokenize(&v, kjv, strlen(kjv), true, false, &x, &e);
        CHECK(w.n == x.n && w.n > 0 && memcmp(w.ids, x.ids, w.n * sizeof *w.ids) == 0, "word-by-word == whole text (%zu ids)", w.n);
        a.n = 0;
        bn_tokenize(&v, s, 65536, true, false, &a, &e);
        bn_ids y = {0};
        v.spm_ws_split = true;
        bn_tokenize(&v, s, 65536, true, false, &y, &e);
        CHECK(a.n == y.n && memcmp(a.ids, y.ids, a.n * sizeof *a.ids) == 0, "word-by-word == whole text on 64 KiB");
        bn_ids_free(&w);
        bn_ids_free(&x);
        bn_ids_free(&y);
    }
    bn_ids_free(&a);
    free(s);
    bn_vocab_free(&v);
    CHECK(bn_vocab_load_file(&v, "tests/data/tokenizer/ggml-vocab-llama-spm.gguf.inp", &e) < 0, "text file is not a vocabulary: %s", e.msg);
    CHECK(bn_vocab_load_file(&v, "/nonexistent/x.gguf", &e) < 0 && strstr(e.msg, "cannot open"), "missing file");
    static const uint8_t trunc[] = {0x0A, 0x10, 0x0A, 0x03, 'a'};
    CHECK(bn_spm_model_load(&v, trunc, sizeof trunc, "trunc", &e) < 0, "truncated protobuf rejected: %s", e.msg);
}

static void test_chat(void) {
    bn_vocab v;
    bn_err e;
    build_spm(&v);
    bn_chat_kind k;
    CHECK(bn_chat_detect(NULL, &k, &e) < 0 && strstr(e.msg, "--chat-template"), "no template: clear error");
    CHECK(bn_chat_detect("{% weird %}", &k, &e) < 0 && strstr(e.msg, "unsupported"), "unknown template rejected");
    CHECK(bn_chat_detect("{{ '<|start_header_id|>' + role + '<|end_header_id|>' }}", &k, &e) == 0 && k == BN_CHAT_LLAMA3, "llama3 detected");
    CHECK(bn_chat_detect("{{ 'Human: ' + m + '\\n\\nBITNETAssistant: ' + eos_token }}", &k, &e) == 0 && k == BN_CHAT_BITNET_GGUF, "2B-4T GGUF template detected");
    CHECK(bn_chat_detect("{% set content = message['role'] | capitalize + ': '+ message['content'] | trim + '<|eot_id|>' %}{{ 'Assistant: ' }}", &k, &e) == 0 && k == BN_CHAT_BITNET, "HF bitnet template detected");
    CHECK(bn_chat_detect("{{ bos_token + '[INST] ' + content + ' [/INST]' }}", &k, &e) == 0 && k == BN_CHAT_LLAMA2, "llama2 detected");
    bn_chat_msg m[] = {{"system", "Be brief."}, {"user", " Hi "}};
    char *s;
    bn_chat_apply(BN_CHAT_BITNET, &v, m, 2, true, &s, &e);
    CHECK(!strcmp(s, "System: Be brief.<|eot_id|>User: Hi<|eot_id|>Assistant: "), "bitnet render: %s", s);
    free(s);
    bn_chat_apply(BN_CHAT_LLAMA3, &v, m + 1, 1, true, &s, &e);
    CHECK(!strcmp(s, "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"), "llama3 render");
    free(s);
    bn_chat_apply(BN_CHAT_LLAMA2, &v, m, 2, true, &s, &e);
    CHECK(!strcmp(s, "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]"), "llama2 render: %s", s);
    free(s);
    bn_chat_apply(BN_CHAT_BITNET_GGUF, &v, m + 1, 1, true, &s, &e);
    CHECK(!strcmp(s, "<s>Human:  Hi \n\nBITNETAssistant: </s>"), "bitnet-gguf literal render: %s", s);
    free(s);
    CHECK(bn_chat_from_name("llama2", &k, &e) == 0 && k == BN_CHAT_LLAMA2 && bn_chat_from_name("x", &k, &e) < 0, "by name");
    char esc[] = "a\\nb\\t\\x41\\\\\\q";
    size_t n = bn_unescape(esc, strlen(esc));
    CHECK(n == 8 && !memcmp(esc, "a\nb\tA\\\\q", 8), "escapes processed");
    bn_vocab_free(&v);
}

/* Write a small GGUF vocabulary with the project's writer; `variant`
 * breaks one thing at a time. Returns the path. */
static const char *write_vocab(int variant) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/bn_test_vocab_%d_%d.gguf", (int)getpid(), variant);
    bn_gguf_writer *w;
    bn_err e;
    if (bn_gguf_writer_new(&w, path, &e) < 0) return NULL;
    bn_gguf_str toks[] = {{"<unk>", 5}, {"<s>", 3}, {"</s>", 4}, {"\xE2\x96\x81", 3}, {"a", 1}, {"\xE2\x96\x81" "a", 4},
                          {"<x>", 3}};
    float scores[] = {0, 0, 0, -1e9f, -1, -2, 0};
    int32_t types[] = {2, 3, 3, 1, 1, 1, 4};
    bn_gguf_w_str(w, "tokenizer.ggml.model", variant == 1 ? "bert" : "llama", &e);
    if (variant == 2) bn_gguf_w_str(w, "general.name", "no tokens", &e);
    else bn_gguf_w_arr_str(w, "tokenizer.ggml.tokens", toks, 7, &e);
    bn_gguf_w_arr_f32(w, "tokenizer.ggml.scores", scores, variant == 3 ? 6 : 7, &e);
    bn_gguf_w_arr_i32(w, "tokenizer.ggml.token_type", types, 7, &e);
    bn_gguf_w_u32(w, "tokenizer.ggml.bos_token_id", variant == 4 ? 70 : 1, &e);
    bn_gguf_w_bool(w, "tokenizer.ggml.add_space_prefix", variant != 5, &e);
    bn_gguf_w_str(w, "tokenizer.chat_template", "[INST] {{ m }} [/INST]", &e);
    if (bn_gguf_writer_finish(w, &e) < 0) return NULL;
    return path;
}

static void test_gguf_loading(void) {
    bn_vocab v;
    bn_err e;
    const char *p = write_vocab(0);
    CHECK(p && bn_vocab_load_file(&v, p, &e) == 0, "load a written GGUF vocabulary");
    CHECK(v.n_tokens == 7 && v.bos == 1 && v.eos == 2 && v.unk == 0 && v.add_bos && v.chat_template, "metadata and SPM defaults");
    CHECK(tok_is(&v, "a a", (int32_t[]){5, 5}, 2), "encodes with the file's scores");
    CHECK(tok_is(&v, "a<x>a", (int32_t[]){5, 6, 5}, 3), "user-defined token parsed even without parse_special (space prefix after it)");
    bn_chat_kind k;
    CHECK(bn_chat_detect(v.chat_template, &k, &e) == 0 && k == BN_CHAT_LLAMA2, "chat template read");
    bn_vocab_free(&v);
    unlink(p);
    p = write_vocab(5);
    CHECK(p && bn_vocab_load_file(&v, p, &e) == 0 && !v.add_space_prefix && tok_is(&v, "a", (int32_t[]){4}, 1),
          "add_space_prefix=false honoured");
    bn_vocab_free(&v);
    unlink(p);
    static const char *want[] = {NULL, "unsupported tokenizer", "tokens: missing", "scores", "out of range"};
    for (int i = 1; i <= 4; i++) {
        p = write_vocab(i);
        CHECK(p && bn_vocab_load_file(&v, p, &e) < 0 && strstr(e.msg, want[i]), "broken vocabulary %d: %s", i, e.msg);
        unlink(p);
    }
}

int main(void) {
    test_unicode();
    test_spm();
    test_bpe();
    test_files();
    test_chat();
    test_gguf_loading();
    return tap_done();
}
