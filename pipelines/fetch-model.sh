#!/usr/bin/env bash
# fetch-model.sh - the fetch step: bring a model file from a Hugging Face style
# hub into bn's cache, verified, once, and print its local path (last line of
# stdout). See docs/man/bn-fetch.md and docs/MODELS.md.
#
#   fetch-model.sh hf:OWNER/REPO[:FILE] [--sha256 HEX] [--quiet]
#
# Environment: BN_HUB_URL (default HF_ENDPOINT, else https://huggingface.co),
# BN_CACHE (else $XDG_CACHE_HOME/bn, else ~/.cache/bn), BN_OFFLINE=1,
# BN_FETCH_TIMEOUT (seconds, default 30), BN_FETCH_RETRIES (default 3),
# BN_GGUF (bn-gguf binary used to validate a GGUF), BN_FETCH_VALIDATE=0 (skip
# that), HF_TOKEN (gated/private repositories), BITNET_STRICT_MODE=1.
#
# Cache layout (one file system, so renames are atomic):
#   blobs/sha256-HEX        verified files, content addressed, read-only
#   partial/sha256-HEX.part downloads in progress, kept only for resuming
#   locks/                  flock files (one per blob, one for the index)
#   index                   "SPEC<TAB>HEX" lines, rewritten atomically
# Exit status: 0 ok, 1 failure, 2 usage.
set -uo pipefail

prog=fetch-model
quiet=0

die() { printf '%s: %s\n' "$prog" "$*" >&2; exit 1; }
say() { [ "$quiet" = 1 ] || printf '%s: %s\n' "$prog" "$*" >&2; }

usage() {
    cat <<'EOF'
usage: fetch-model.sh hf:OWNER/REPO[:FILE] [--sha256 HEX] [--quiet]

Download FILE (or the repository's single .gguf file) from the hub into the
bn cache, verify its sha256, and print the cached path as the last line.
Environment: BN_HUB_URL BN_CACHE BN_OFFLINE BN_FETCH_TIMEOUT BN_FETCH_RETRIES
             BN_GGUF BN_FETCH_VALIDATE HF_TOKEN
EOF
}
usage_err() { printf '%s: %s\n' "$prog" "$*" >&2; usage >&2; exit 2; }

# ---- arguments ----------------------------------------------------------
spec="" want_sha=""
while [ $# -gt 0 ]; do
    case $1 in
    -h|--help) usage; exit 0 ;;
    -q|--quiet) quiet=1 ;;
    --sha256) [ $# -ge 2 ] || usage_err "--sha256 needs a value"; want_sha=$2; shift ;;
    --sha256=*) want_sha=${1#--sha256=} ;;
    -*) usage_err "unknown option: $1" ;;
    *) [ -z "$spec" ] || usage_err "more than one model spec"; spec=$1 ;;
    esac
    shift
done
[ -n "$spec" ] || usage_err "no model spec"
if [ -n "$want_sha" ]; then
    want_sha=$(printf '%s' "$want_sha" | tr 'A-F' 'a-f')
    [[ $want_sha =~ ^[0-9a-f]{64}$ ]] || usage_err "--sha256: not 64 hex digits: $want_sha"
fi

# Parse hf:OWNER/REPO[:FILE]. Names are restricted to what the hub allows, and
# no path component may be "." or "..", so nothing escapes the URL or cache.
[[ $spec == hf:* ]] || usage_err "$spec: not a hf:OWNER/REPO[:FILE] spec"
rest=${spec#hf:}
repo_part=${rest%%:*}
file=""
[[ $rest == *:* ]] && file=${rest#*:}
name_re='^[A-Za-z0-9_][A-Za-z0-9._-]*$'
owner=${repo_part%%/*}
repo=${repo_part#*/}
[[ $repo_part == */* && $owner =~ $name_re && $repo =~ $name_re ]] ||
    usage_err "$spec: bad repository name (want hf:OWNER/REPO[:FILE])"
check_file() {
    local f=$1 c
    [ -n "$f" ] || return 1
    IFS=/ read -r -a comps <<<"$f"
    for c in "${comps[@]}"; do
        [[ $c =~ $name_re && $c != . && $c != .. ]] || return 1
    done
    [[ $f != */ ]]
}
if [ -n "$file" ]; then check_file "$file" || usage_err "$spec: bad file name: $file"; fi

# ---- cache ---------------------------------------------------------------
cache=${BN_CACHE:-}
if [ -z "$cache" ]; then
    if [ -n "${XDG_CACHE_HOME:-}" ]; then cache=$XDG_CACHE_HOME/bn
    elif [ -n "${HOME:-}" ]; then cache=$HOME/.cache/bn
    else die "no cache directory: set BN_CACHE or HOME"; fi
fi
index=$cache/index

# index_lookup KEY: print the blob hex recorded for KEY (last entry wins) if
# that blob is present.
index_lookup() {
    local hex
    [ -f "$index" ] || return 1
    hex=$(awk -F'\t' -v k="$1" '$1 == k { h = $2 } END { print h }' "$index") || return 1
    [[ $hex =~ ^[0-9a-f]{64}$ ]] && [ -f "$cache/blobs/sha256-$hex" ] || return 1
    printf '%s\n' "$hex"
}

# index_put HEX KEY...: record KEY -> HEX for each key. The index is rewritten
# to a temp file and renamed under a lock, so readers never see half of it.
index_put() {
    local hex=$1 tmp keys
    shift
    keys=$(printf '%s\n' "$@")
    exec 8>"$cache/locks/index.lock" || die "$cache/locks/index.lock: cannot open"
    flock 8 || die "cannot lock the cache index"
    tmp=$index.tmp.$$
    if ! {
        if [ -f "$index" ]; then
            awk -F'\t' -v keys="$keys" 'BEGIN { n = split(keys, a, "\n"); for (i = 1; i <= n; i++) drop[a[i]] = 1 }
                                        !($1 in drop)' "$index" || exit 1
        fi
        for k in "$@"; do printf '%s\t%s\n' "$k" "$hex"; done
    } >"$tmp" || ! mv -f "$tmp" "$index"; then
        rm -f "$tmp"
        die "$index: cannot update the cache index (disk full?)"
    fi
    exec 8>&-
}

hit() { # print the cached path and stop
    printf '%s\n' "$cache/blobs/sha256-$1"
    exit 0
}

# Served from the cache without any network: by spec, or by content when the
# caller pinned the sha256.
if hex=$(index_lookup "$spec"); then
    [ -z "$want_sha" ] || [ "$hex" = "$want_sha" ] && hit "$hex"
fi
if [ -n "$want_sha" ] && [ -f "$cache/blobs/sha256-$want_sha" ]; then
    hit "$want_sha"
fi

if [ "${BN_OFFLINE:-0}" = 1 ]; then
    die "$spec: not in the cache ($cache) and BN_OFFLINE=1: fetch it once while online"
fi

mkdir -p "$cache/blobs" "$cache/partial" "$cache/locks" || die "$cache: cannot create the cache directory"

# ---- network ---------------------------------------------------------------
command -v curl >/dev/null || die "curl not found (Debian: apt-get install curl)"
base=${BN_HUB_URL:-${HF_ENDPOINT:-https://huggingface.co}}
base=${base%/}
timeout=${BN_FETCH_TIMEOUT:-30}
[[ $timeout =~ ^[1-9][0-9]*$ ]] || die "BN_FETCH_TIMEOUT: not a positive number of seconds: $timeout"
retries=${BN_FETCH_RETRIES:-3}
[[ $retries =~ ^[0-9]+$ ]] || die "BN_FETCH_RETRIES: not a number: $retries"

tmpd=$(mktemp -d "${TMPDIR:-/tmp}/bn-fetch.XXXXXX") || die "cannot create a temp directory"
trap 'rm -rf "$tmpd"' EXIT
# A stalled server (under 1 byte/s for $timeout seconds) fails the transfer.
copts=(--proto '=http,https' --proto-redir '=http,https' --connect-timeout "$timeout"
       --speed-limit 1 --speed-time "$timeout" -A "bn-fetch/0.1" -sS)
if [ -n "${HF_TOKEN:-}" ]; then
    # in a file, not argv, so the token does not show in ps
    (umask 077; printf 'Authorization: Bearer %s\n' "$HF_TOKEN" >"$tmpd/auth")
    copts+=(-H "@$tmpd/auth")
fi

# http_error CODE URL: one clear line for a failed request.
http_error() {
    case $1 in
    404) die "$spec: not found on the hub (HTTP 404 for $2)" ;;
    401|403) die "$spec: access denied (HTTP $1 for $2): gated or private repository? set HF_TOKEN" ;;
    000) die "$spec: no answer from $base (connection failed or timed out after ${timeout}s)" ;;
    *) die "$spec: HTTP $1 for $2" ;;
    esac
}

# No FILE: pick the repository's single .gguf from the API listing.
if [ -z "$file" ]; then
    api=$base/api/models/$owner/$repo
    code=$(curl "${copts[@]}" --max-time "$timeout" -o "$tmpd/api.json" -w '%{http_code}' "$api" 2>"$tmpd/err")
    [ "$code" = 200 ] || http_error "$code" "$api"
    mapfile -t names < <(grep -o '"rfilename"[[:space:]]*:[[:space:]]*"[^"\\]*"' "$tmpd/api.json" |
                          sed 's/.*"\([^"]*\)"$/\1/')
    ggufs=()
    for n in "${names[@]}"; do [[ ${n,,} == *.gguf ]] && ggufs+=("$n"); done
    if [ ${#ggufs[@]} -eq 0 ]; then
        die "$spec: no .gguf file in $owner/$repo (files: ${names[*]:-none}); name one as hf:$owner/$repo:FILE"
    elif [ ${#ggufs[@]} -gt 1 ]; then
        die "$spec: ${#ggufs[@]} .gguf files in $owner/$repo, pick one: $(printf "hf:$owner/$repo:%s " "${ggufs[@]}")"
    fi
    file=${ggufs[0]}
    check_file "$file" || die "$spec: the hub lists an unusable file name: $file"
    say "$spec -> $file"
fi
full="hf:$owner/$repo:$file"
if hex=$(index_lookup "$full"); then
    if [ -z "$want_sha" ] || [ "$hex" = "$want_sha" ]; then
        [ "$full" = "$spec" ] || index_put "$hex" "$spec" "$full"
        hit "$hex"
    fi
fi

# Metadata: the hub answers the resolve URL of an LFS file with a redirect
# carrying X-Linked-Etag (the sha256) and X-Linked-Size. A small file kept in
# git itself (config.json, tokenizer files) has its git blob sha1 as ETag
# instead; that is verified too, and the file is stored under its sha256.
url=$base/$owner/$repo/resolve/main/$file
code=$(curl "${copts[@]}" --max-time "$timeout" -I -L -o /dev/null -D "$tmpd/hdr" -w '%{http_code}' "$url" 2>"$tmpd/err")
[ "$code" = 200 ] || http_error "$code" "$url"
tr -d '\r' <"$tmpd/hdr" >"$tmpd/hdr2"
hval() { grep -i "^$1:" "$tmpd/hdr2" | head -n 1 | sed -e 's/^[^:]*:[[:space:]]*//' -e 's/^W\///' -e 's/"//g' | tr 'A-F' 'a-f'; }
hub_sha=$(hval x-linked-etag)
[[ $hub_sha =~ ^[0-9a-f]{64}$ ]] || hub_sha=$(grep -i '^etag:' "$tmpd/hdr2" | sed -e 's/^[^:]*:[[:space:]]*//' -e 's/"//g' |
                                               tr 'A-F' 'a-f' | grep -E '^[0-9a-f]{64}$' | head -n 1)
size=$(hval x-linked-size)
[[ $size =~ ^[0-9]+$ ]] || size=$(grep -i '^content-length:' "$tmpd/hdr2" | tail -n 1 | sed 's/^[^:]*:[[:space:]]*//')
[[ $size =~ ^[0-9]+$ ]] || size=""

if [ -n "$want_sha" ] && [ -n "$hub_sha" ] && [ "$want_sha" != "$hub_sha" ]; then
    die "$spec: the hub's sha256 is $hub_sha but --sha256 asks for $want_sha (file changed upstream?)"
fi
hex=${want_sha:-$hub_sha}
git_sha=""
if [ -z "$hex" ]; then
    git_sha=$(grep -i '^etag:' "$tmpd/hdr2" | sed -e 's/^[^:]*:[[:space:]]*//' -e 's/^W\///' -e 's/"//g' |
              tr 'A-F' 'a-f' | grep -E '^[0-9a-f]{40}$' | head -n 1)
    [ -n "$git_sha" ] || die "$spec: the hub gives no sha256 or git hash for $file; pass --sha256 HEX"
    key=gitsha1-$git_sha
else
    key=sha256-$hex
fi

blob=$cache/blobs/sha256-$hex
part=$cache/partial/$key.part

# One downloader per file: others wait, then find the blob there.
exec 9>"$cache/locks/$key.lock" || die "$cache/locks: cannot create a lock file"
if ! flock -n 9; then
    say "waiting for another fetch of $file"
    flock 9 || die "cannot lock $cache/locks/$key.lock"
fi
if [ -n "$hex" ] && [ -f "$blob" ]; then
    index_put "$hex" "$spec" "$full"
    hit "$hex"
fi

# ---- download (resumable) -------------------------------------------------------
progress=(-sS)
[ "$quiet" = 0 ] && [ -t 2 ] && progress=(--progress-bar)
tries=0
while :; do
    have=0
    [ -f "$part" ] && have=$(stat -c %s "$part")
    if [ -n "$size" ] && [ "$have" -ge "$size" ]; then break; fi
    [ "$have" -gt 0 ] && say "resuming $file at byte $have"
    [ "$have" -eq 0 ] && say "downloading $file${size:+ ($size bytes)}"
    code=$(curl "${copts[@]}" "${progress[@]}" -f -L -C - -o "$part" -w '%{http_code}' "$url" 2>"$tmpd/err")
    rc=$?
    [ "$rc" = 0 ] && break
    err=$(grep -v '^[[:space:]]*$' "$tmpd/err" | tail -n 1)
    case $rc in
    22) http_error "$code" "$url" ;;
    23) die "$part: cannot write the download (disk full?): ${err:-curl exit 23}; the partial file is kept for resuming" ;;
    33) rm -f "$part" ;;                        # the server refused the range: start over
    7|18|28|52|55|56|92) ;;                    # cut, stalled, reset: resume
    *) die "$spec: download failed (curl exit $rc): $err" ;;
    esac
    if [ "$tries" -ge "$retries" ]; then
        die "$spec: download interrupted (curl exit $rc: $err); ${retries} retries used, partial file kept: run again to resume"
    fi
    tries=$((tries + 1))
    say "download interrupted (curl exit $rc), retry $tries of $retries"
done

# ---- verify: a bad download never reaches blobs/ ----------------------------------
have=$(stat -c %s "$part")
if [ -n "$size" ] && [ "$have" != "$size" ]; then
    rm -f "$part"
    die "$spec: size mismatch: got $have bytes, the hub says $size; download discarded"
fi
if [ -n "$git_sha" ]; then
    # git's blob id: sha1 of "blob SIZE\0" followed by the content
    got=$({ printf 'blob %s\0' "$have"; cat "$part"; } | sha1sum | cut -d' ' -f1) || die "$part: cannot hash the download"
    if [ "$got" != "$git_sha" ]; then
        rm -f "$part"
        die "$spec: git blob hash mismatch: expected $git_sha, got $got; download discarded"
    fi
    hex=$(sha256sum "$part" | cut -d' ' -f1) || die "$part: cannot hash the download"
    blob=$cache/blobs/sha256-$hex
else
    got=$(sha256sum "$part" | cut -d' ' -f1) || die "$part: cannot hash the download"
    if [ "$got" != "$hex" ]; then
        rm -f "$part"
        die "$spec: sha256 mismatch: expected $hex, got $got; download discarded"
    fi
fi

# A GGUF is checked by bn-gguf before its first use.
if [[ ${file,,} == *.gguf ]] && [ "${BN_FETCH_VALIDATE:-1}" != 0 ]; then
    here=$(cd "$(dirname "$0")" && pwd)
    gguf=${BN_GGUF:-}
    if [ -z "$gguf" ]; then
        for c in "$here/../bin/bn-gguf" "$here/../../bin/bn-gguf" "$(command -v bn-gguf 2>/dev/null)"; do
            [ -n "$c" ] && [ -x "$c" ] && { gguf=$c; break; }
        done
    fi
    if [ -n "$gguf" ]; then
        if ! "$gguf" validate "$part" >"$tmpd/validate" 2>&1; then
            rm -f "$part"
            die "$spec: $file is not a valid GGUF model ($gguf validate: $(head -n 3 "$tmpd/validate" | tr '\n' ' '))"
        fi
    elif [ "${BITNET_STRICT_MODE:-0}" = 1 ]; then
        rm -f "$part"
        die "$spec: bn-gguf not found, cannot validate $file (strict mode)"
    else
        say "warning: bn-gguf not found, $file not validated"
    fi
fi

if [ -f "$blob" ]; then
    rm -f "$part"          # the same content is already cached under another name
else
    chmod a-w "$part" 2>/dev/null
    mv -f "$part" "$blob" || die "$blob: cannot move the download into the cache"
fi
index_put "$hex" "$spec" "$full"
say "cached $full as $blob"
printf '%s\n' "$blob"
