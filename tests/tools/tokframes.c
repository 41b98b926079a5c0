/* tokframes - test helper: read one JSON frame per line on stdin (the wire
 * field names, e.g. {"kind":"token","id":42}) and write each as a msgpack
 * frame to stdout, flushed at once, so a shell loop with sleeps produces a
 * stream whose frames arrive one at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"

int main(void) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        if (n == 0) continue;
        bn_frame f;
        bn_err e;
        uint8_t *buf;
        size_t len;
        if (bn_frame_from_json(line, (size_t)n, &f, &e) < 0 || bn_frame_encode(&f, &buf, &len, &e) < 0) {
            fprintf(stderr, "tokframes: %s\n", e.msg);
            return 1;
        }
        if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0) return 1;
        free(buf);
        bn_frame_free(&f);
    }
    free(line);
    return 0;
}
