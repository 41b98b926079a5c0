# bench/lib.sh - helpers shared by bench/run and bench/context (sourced).

# prompt_ids N: N deterministic ids in the 2b4t vocabulary, BOS first
prompt_ids() {
    awk -v n="$1" 'BEGIN { x=12345; printf "128000"; for (i=1;i<n;i++) { x=(x*1103515245+12345)%2147483648; printf " %d", 1000+x%100000 } print "" }'
}

# stats: numbers on stdin -> "median min max"
stats() {
    sort -g | awk '{ a[NR]=$1 } END { m = (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2; printf "%s %s %s", m, a[1], a[NR] }'
}

# machine_json: the "machine" member both scripts print
machine_json() {
    local cpu_model flags
    cpu_model=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
    flags=$(grep -m1 '^flags' /proc/cpuinfo)
    has() { case " $flags " in *" $1 "*) echo true ;; *) echo false ;; esac; }
    printf '"machine": {"model": "%s", "cores": %d, "avx2": %s, "avx512f": %s, "avx512_vnni": %s, "mem_kb": %d}' \
        "$cpu_model" "$(nproc)" "$(has avx2)" "$(has avx512f)" "$(has avx512_vnni)" "$(awk '/MemTotal/ {print $2}' /proc/meminfo)"
}
