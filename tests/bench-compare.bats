#!/usr/bin/env bats
# bench/compare: figures matched by what they measure (type, threads, test,
# ctx), not by their position in the results array; regressions past the
# tolerance flagged with exit 1; across machines only ratios compared.
load helpers

setup() {
    CMP="$BN_TESTBIN/../bench/compare"
    [ -x "$CMP" ] || skip "bench/compare not built"
    T="$BATS_TEST_TMPDIR"
    cat >"$T/old.json" <<'EOF'
{"machine": {"model": "cpu A", "cores": 2},
 "results": [
  {"type": "i2_s", "threads": 1, "test": "pp128", "tok_s": 100.0},
  {"type": "i2_s", "threads": 1, "test": "tg128", "tok_s": 10.0, "roofline_frac": 0.80},
  {"type": "i2_s", "threads": 2, "test": "tg128", "tok_s": 20.0, "roofline_frac": 0.80}
 ]}
EOF
}

@test "bench/compare: results in another order and with other tests are matched by identity" {
    # the same figures, reordered, one test fewer: nothing regressed
    cat >"$T/same.json" <<'EOF'
{"machine": {"model": "cpu A", "cores": 2},
 "results": [
  {"type": "i2_s", "threads": 2, "test": "tg128", "tok_s": 20.5, "roofline_frac": 0.81},
  {"type": "i2_s", "threads": 1, "test": "tg128", "tok_s": 10.0, "roofline_frac": 0.80}
 ]}
EOF
    run "$CMP" "$T/old.json" "$T/same.json"
    assert_success
    assert_output --partial '"regressed":0'
    assert_output --partial '"compared":4'
    # by position, tg128 at 1 thread would have met pp128's 100 tok/s
    cat >"$T/worse.json" <<'EOF'
{"machine": {"model": "cpu A", "cores": 2},
 "results": [
  {"type": "i2_s", "threads": 1, "test": "tg128", "tok_s": 9.0, "roofline_frac": 0.72},
  {"type": "i2_s", "threads": 2, "test": "tg128", "tok_s": 20.0, "roofline_frac": 0.80}
 ]}
EOF
    run "$CMP" "$T/old.json" "$T/worse.json"
    assert_failure 1
    assert_output --partial '"figure":"results[i2_s/t1/tg128].tok_s","old":10,"new":9'
    assert_output --partial '"figure":"results[i2_s/t1/tg128].roofline_frac"'
    assert_output --partial '"regressed":2'
}

@test "bench/compare: another machine compares ratios only; bad input exits 2" {
    sed 's/cpu A/cpu B/' "$T/old.json" >"$T/other.json"
    sed -i 's/"tok_s": 10.0, "roofline_frac": 0.80/"tok_s": 5.0, "roofline_frac": 0.80/' "$T/other.json"
    run "$CMP" "$T/old.json" "$T/other.json"
    assert_success
    assert_output --partial '"same_machine":false'
    assert_output --partial '"compared":2'
    run "$CMP" "$T/old.json" "$T/missing.json"
    assert_failure 2
    run "$CMP" "$T/old.json"
    assert_failure 2
}
