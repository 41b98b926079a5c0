#!/usr/bin/env bats
# bench/bwprobe: the read ceiling bench/run divides by, as the best pass of
# the best way and as the best way's median pass (the sustained read).
load helpers

setup() {
    PROBE="$BN_TESTBIN/../bench/bwprobe"
    [ -x "$PROBE" ] || skip "bench/bwprobe not built"
}

# field NAME JSON -> the number after "NAME":
field() { printf '%s' "$2" | sed -nE "s/.*\"$1\":([0-9.]+).*/\1/p"; }

@test "bench/bwprobe: the median pass is reported and never above the best one" {
    run "$PROBE" -t 2 -m 64 -r 5
    assert_success
    peak=$(field gb_per_s "$output")
    med=$(field median_gb_per_s "$output")
    [ -n "$peak" ] && [ -n "$med" ]
    assert_output --partial '"by_way_median":{"plain":'
    assert_output --regexp '"median_way":"[a-z0-9-]+"'
    # every way's median is at most its best pass, and the peak is the best of all
    awk -v p="$peak" -v m="$med" 'BEGIN { exit !(m > 0 && m <= p) }'
}

@test "bench/bwprobe: repeats outside 1..101 are refused" {
    run "$PROBE" -r 0
    assert_failure 2
    assert_output --partial 'bad arguments'
    run "$PROBE" -r 102
    assert_failure 2
    run "$PROBE" -m 8
    assert_failure 2
}
