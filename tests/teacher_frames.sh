# tests/teacher_frames.sh - sourced by tests/ref/forward.bats and
# tests/crossval.sh. teacher_frames "PROMPT IDS" GEN_TXT prints the frames
# (JSON, one per line, for bn-frames --from-json) that replay a reference's
# greedy continuation the way the reference produced P.gen.logits: the prompt
# as one tokens frame at position 0, then each id of GEN_TXT (comma
# separated) as its own single-token decode step, then end.
teacher_frames() {
    local ids=$1 gen=$2 pos g
    echo "{\"kind\":\"tokens\",\"pos\":0,\"ids\":[$(echo $ids | tr ' ' ',')]}"
    pos=$(echo $ids | wc -w)
    for g in $(tr ',' ' ' <"$gen"); do
        echo "{\"kind\":\"tokens\",\"pos\":$pos,\"ids\":[$g]}"
        pos=$((pos + 1))
    done
    echo '{"kind":"end"}'
}
