/* fetch.h - turn a model spec given to -m into a local file path.
 *
 * A spec is either a plain path (returned unchanged) or hf:OWNER/REPO[:FILE],
 * a file on a Hugging Face style hub. hf: specs are looked up in bn's cache
 * (index + content-addressed blobs, see pipelines/fetch-model.sh); on a miss,
 * and unless BN_OFFLINE=1, the fetch step pipelines/fetch-model.sh is run to
 * download, verify and cache the file, and the path it prints is used. */
#ifndef BN_FETCH_H
#define BN_FETCH_H

#include <stddef.h>
#include "util.h"

/* Resolve spec into path (n bytes). Returns 0, or -1 with e filled.
 * The fetch script is found as $BN_FETCH, else <bindir>/../pipelines/fetch-model.sh,
 * else <bindir>/../share/bn/fetch-model.sh, else BN_PREFIX/share/bn/fetch-model.sh
 * (bindir: the directory of the running executable). It runs with stdin from
 * /dev/null and stdout captured; its stderr (progress, messages) is inherited. */
int bn_model_resolve(const char *spec, char *path, size_t n, bn_err *e);

/* The cache directory: $BN_CACHE, else $XDG_CACHE_HOME/bn, else $HOME/.cache/bn. */
int bn_cache_dir(char *buf, size_t n, bn_err *e);

/* Look spec up in the cache index only (no network, no child process):
 * 1 and path filled on a hit, 0 on a miss, -1 on error. */
int bn_cache_lookup(const char *spec, char *path, size_t n, bn_err *e);

#endif
