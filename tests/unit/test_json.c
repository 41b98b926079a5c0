/* test_json: the strict JSON parser accepts RFC 8259 and nothing else. */
#include <math.h>
#include <string.h>

#include "json.h"
#include "tap.h"

/* Parse s; returns the doc or NULL (and the error in e). */
static bn_json_doc *P(const char *s, bn_err *e) {
    bn_json_doc *d = NULL;
    if (bn_json_parse(&d, s, strlen(s), 0, "t", e)) return NULL;
    return d;
}

static int rejects(const char *s) {
    bn_err e;
    bn_json_doc *d = P(s, &e);
    bn_json_free(d);
    return d == NULL;
}

int main(void) {
    bn_err e;
    bn_json_doc *d = P(" {\"a\": [1, -2.5e3, true, false, null, \"x\\u00e9\\ud83d\\ude00\\n\"], \"b\": {\"c\": 18446744073709551615},"
                       " \"neg\": -9223372036854775808, \"big\": 1e300, \"z\": 0, \"s\": \"\\u0000ok\"} ", &e);
    CHECK(d != NULL, "valid document parses");
    const bn_json *r = bn_json_root(d);
    CHECK(bn_json_type_of(r) == BN_JSON_OBJ && bn_json_len(r) == 6, "root object with 6 members");
    const bn_json *a = bn_json_get(r, "a");
    CHECK(bn_json_len(a) == 6, "array length");
    int64_t i;
    double x;
    bool b;
    CHECK(bn_json_i64(bn_json_at(a, 0), &i) && i == 1, "integer 1");
    CHECK(!bn_json_i64(bn_json_at(a, 1), &i) && bn_json_num(bn_json_at(a, 1), &x) && x == -2500.0, "float not integer, value -2500");
    CHECK(bn_json_bool(bn_json_at(a, 2), &b) && b, "true");
    CHECK(bn_json_bool(bn_json_at(a, 3), &b) && !b, "false");
    CHECK(bn_json_type_of(bn_json_at(a, 4)) == BN_JSON_NULL, "null");
    size_t l;
    const char *s = bn_json_str(bn_json_at(a, 5), &l);
    CHECK(s && l == 8 && memcmp(s, "x\xc3\xa9\xf0\x9f\x98\x80\n", 8) == 0, "escapes and surrogate pair decoded to UTF-8");
    uint64_t u;
    CHECK(bn_json_u64(bn_json_get(bn_json_get(r, "b"), "c"), &u) && u == UINT64_MAX, "u64 max exact");
    CHECK(bn_json_i64(bn_json_get(r, "neg"), &i) && i == INT64_MIN, "i64 min exact");
    CHECK(!bn_json_u64(bn_json_get(r, "neg"), &u), "negative is not u64");
    CHECK(bn_json_num(bn_json_get(r, "big"), &x) && x == 1e300, "1e300");
    s = bn_json_str(bn_json_get(r, "s"), &l);
    CHECK(s && l == 3 && s[0] == 0 && strcmp(s + 1, "ok") == 0, "embedded NUL kept with length");
    size_t kl;
    CHECK(strcmp(bn_json_key_at(r, 1, &kl), "b") == 0 && kl == 1, "keys in file order");
    CHECK(bn_json_get(r, "missing") == NULL && bn_json_get(a, "a") == NULL, "absent key / not an object");
    bn_json_free(d);

    const char *bad[] = {
        "", " ", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "[01]", "[1.]", "[.5]", "[1e]", "[-]", "[+1]",
        "[NaN]", "[Infinity]", "[tru]", "[nul]", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"",
        "\"\\ud800\\u0041\"", "\"a\x01\"", "\"\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xf5\x80\x80\x80\"",
        "{\"a\":1,\"a\":2}", "[1] [2]", "// c\n1", "[1e999]", "{1:2}", "['a']",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) CHECK(rejects(bad[k]), "rejects bad input #%zu", k);
    CHECK(P("[1,]", &e) == NULL && strstr(e.msg, "t: offset 3:") != NULL, "error names the offset: %s", e.msg);

    /* depth limit: default 64 levels */
    char deep[300];
    memset(deep, '[', 200);
    deep[200] = 0;
    CHECK(rejects(deep), "unterminated deep nesting rejected");
    char nest[140];
    memset(nest, '[', 64);
    memset(nest + 64, ']', 64);
    d = NULL;
    CHECK(bn_json_parse(&d, nest, 128, 0, "t", &e) == 0, "64 levels accepted");
    bn_json_free(d);
    memset(nest, '[', 65);
    memset(nest + 65, ']', 65);
    CHECK(bn_json_parse(&d, nest, 130, 0, "t", &e) != 0 && strstr(e.msg, "too deep"), "65 levels rejected: %s", e.msg);
    CHECK(bn_json_parse(&d, nest, 10, 3, "t", &e) != 0 && strstr(e.msg, "too deep"), "custom depth 3");

    /* large object duplicate detection (sorted path) */
    char big[20000];
    size_t n = 0;
    n += (size_t)snprintf(big + n, sizeof big - n, "{");
    for (int k = 0; k < 500; k++) n += (size_t)snprintf(big + n, sizeof big - n, "%s\"k%d\":%d", k ? "," : "", k, k);
    n += (size_t)snprintf(big + n, sizeof big - n, "}");
    d = P(big, &e);
    CHECK(d && bn_json_len(bn_json_root(d)) == 500, "500-member object");
    CHECK(d && bn_json_i64(bn_json_get(bn_json_root(d), "k499"), &i) && i == 499, "lookup in large object");
    bn_json_free(d);
    big[n - 1] = 0;
    strcat(big, ",\"k250\":1}");
    CHECK(rejects(big), "duplicate key among 501 rejected");
    return tap_done();
}
