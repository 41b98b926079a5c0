/* fetch.c - resolve hf:OWNER/REPO[:FILE] model specs to cached local files. */
#include "fetch.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef BN_PREFIX
#define BN_PREFIX "/usr/local"
#endif

#define BN_FETCH_OUT_MAX 65536 /* what we keep of the script's stdout */

/* Copy s into buf, failing instead of truncating: a cut path is a wrong path. */
static int copy_str(char *buf, size_t n, const char *s, const char *what, bn_err *e) {
    size_t len = strlen(s);
    if (len >= n) return bn_errf(e, "%s: path too long (%zu bytes)", what, len);
    memcpy(buf, s, len + 1);
    return 0;
}

/* Environment variables set to "" count as unset, as in the script. */
static const char *env_nonempty(const char *name) {
    const char *v = getenv(name);
    return (v && *v) ? v : NULL;
}

/* Same rule as fetch-model.sh so the C lookup and the script share one cache. */
int bn_cache_dir(char *buf, size_t n, bn_err *e) {
    const char *v;
    int r;
    if ((v = env_nonempty("BN_CACHE")))
        r = snprintf(buf, n, "%s", v);
    else if ((v = env_nonempty("XDG_CACHE_HOME")))
        r = snprintf(buf, n, "%s/bn", v);
    else if ((v = env_nonempty("HOME")))
        r = snprintf(buf, n, "%s/.cache/bn", v);
    else
        return bn_errf(e, "cache: no cache directory: set BN_CACHE or HOME");
    if (r < 0 || (size_t)r >= n) return bn_errf(e, "cache: directory name too long");
    return 0;
}

/* A hit is the last index line "SPEC\tHEX" for spec whose blob exists; the
 * script writes the index by atomic rename, so a read sees a whole version. */
int bn_cache_lookup(const char *spec, char *path, size_t n, bn_err *e) {
    char dir[PATH_MAX], file[PATH_MAX + 16], hex[65] = "";
    if (bn_cache_dir(dir, sizeof dir, e) < 0) return -1;
    int r = snprintf(file, sizeof file, "%s/index", dir);
    if (r < 0 || (size_t)r >= sizeof file) return bn_errf(e, "cache: index path too long");
    FILE *f = fopen(file, "r");
    if (!f) {
        if (errno == ENOENT) return 0;
        return bn_errf(e, "%s: %s", file, strerror(errno));
    }
    size_t slen = strlen(spec);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n') line[--len] = '\0';
        if ((size_t)len == slen + 1 + 64 && memcmp(line, spec, slen) == 0 && line[slen] == '\t') {
            const char *h = line + slen + 1;
            bool ok = true;
            for (int i = 0; i < 64; i++)
                if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) ok = false;
            if (ok) memcpy(hex, h, 65);
        }
    }
    bool rerr = ferror(f);
    free(line);
    fclose(f);
    if (rerr) return bn_errf(e, "%s: read error", file);
    if (!hex[0]) return 0;
    char blob[PATH_MAX + 96];
    r = snprintf(blob, sizeof blob, "%s/blobs/sha256-%s", dir, hex);
    if (r < 0 || (size_t)r >= sizeof blob) return bn_errf(e, "cache: blob path too long");
    struct stat st;
    if (stat(blob, &st) != 0 || !S_ISREG(st.st_mode)) return 0; /* stale entry: a miss */
    if (copy_str(path, n, blob, spec, e) < 0) return -1;
    return 1;
}

/* Where the fetch step lives: an explicit override, then next to the build
 * tree or the install tree of the running executable. */
static int find_script(char *buf, size_t n, bn_err *e) {
    const char *v = env_nonempty("BN_FETCH");
    if (v) {
        if (access(v, X_OK) != 0) return bn_errf(e, "BN_FETCH: %s: not an executable file", v);
        return copy_str(buf, n, v, "BN_FETCH", e);
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char cand[3][PATH_MAX + 64];
    int nc = 0;
    if (len > 0) {
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(cand[nc++], sizeof cand[0], "%s/../pipelines/fetch-model.sh", exe);
            snprintf(cand[nc++], sizeof cand[0], "%s/../share/bn/fetch-model.sh", exe);
        }
    }
    snprintf(cand[nc++], sizeof cand[0], "%s/share/bn/fetch-model.sh", BN_PREFIX);
    for (int i = 0; i < nc; i++)
        if (access(cand[i], X_OK) == 0) return copy_str(buf, n, cand[i], "fetch script", e);
    return bn_errf(e, "fetch: fetch-model.sh not found (looked in <bindir>/../pipelines, "
                      "<bindir>/../share/bn, %s/share/bn); set BN_FETCH", BN_PREFIX);
}

/* Run the fetch script with argv (no shell), stdin from /dev/null so it can
 * never eat the tool's input stream, stdout captured: its last line is the path. */
static int run_fetch(const char *script, const char *spec, char *path, size_t n, bn_err *e) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return bn_errf(e, "%s: pipe: %s", spec, strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    /* the child should not inherit the tool's ignored SIGPIPE */
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
    char *argv[] = { (char *)script, (char *)spec, NULL };
    pid_t pid;
    int rc = posix_spawn(&pid, script, &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return bn_errf(e, "%s: cannot run %s: %s", spec, script, strerror(rc));
    }
    char *out = malloc(BN_FETCH_OUT_MAX + 1);
    size_t used = 0;
    int ret = 0;
    if (!out) ret = bn_errf(e, "%s: out of memory", spec);
    for (;;) {
        char tmp[4096];
        ssize_t r = read(fds[0], tmp, sizeof tmp);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (!out) continue;
        /* keep the tail: only the last line matters */
        if (used + (size_t)r > BN_FETCH_OUT_MAX) {
            size_t drop = used + (size_t)r - BN_FETCH_OUT_MAX;
            if (drop > used) drop = used;
            memmove(out, out + drop, used - drop);
            used -= drop;
        }
        memcpy(out + used, tmp, (size_t)r);
        used += (size_t)r;
    }
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            free(out);
            return bn_errf(e, "%s: waitpid: %s", spec, strerror(errno));
        }
    }
    if (ret < 0) { free(out); return -1; }
    if (WIFSIGNALED(status)) {
        free(out);
        return bn_errf(e, "%s: fetch-model.sh killed by signal %d", spec, WTERMSIG(status));
    }
    if (WEXITSTATUS(status) != 0) {
        free(out);
        return bn_errf(e, "%s: fetch failed (fetch-model.sh exit %d)", spec, WEXITSTATUS(status));
    }
    while (used > 0 && (out[used - 1] == '\n' || out[used - 1] == '\r')) used--;
    out[used] = '\0';
    char *last = strrchr(out, '\n');
    last = last ? last + 1 : out;
    struct stat st;
    if (!*last || stat(last, &st) != 0 || !S_ISREG(st.st_mode)) {
        ret = bn_errf(e, "%s: fetch-model.sh printed no usable path", spec);
    } else {
        ret = copy_str(path, n, last, spec, e);
    }
    free(out);
    return ret;
}

/* Plain paths pass through; hf: specs come from the cache, fetched on a miss. */
int bn_model_resolve(const char *spec, char *path, size_t n, bn_err *e) {
    if (!spec || !*spec) return bn_errf(e, "model: empty model spec");
    if (strncmp(spec, "hf:", 3) != 0) return copy_str(path, n, spec, spec, e);
    int hit = bn_cache_lookup(spec, path, n, e);
    if (hit != 0) return hit < 0 ? -1 : 0;
    const char *off = getenv("BN_OFFLINE");
    if (off && strcmp(off, "1") == 0) {
        char dir[PATH_MAX];
        if (bn_cache_dir(dir, sizeof dir, e) < 0) return -1;
        return bn_errf(e, "%s: not in the cache (%s) and BN_OFFLINE=1: fetch it once while online", spec, dir);
    }
    char script[PATH_MAX];
    if (find_script(script, sizeof script, e) < 0) return -1;
    return run_fetch(script, spec, path, n, e);
}
