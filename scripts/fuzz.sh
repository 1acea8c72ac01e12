#!/usr/bin/env bash
# Fuzzes every parser the server applies to client input, with libFuzzer (Swift's
# -sanitize=fuzzer) and AddressSanitizer. Not part of CI: run it after changing a parser.
#
#   scripts/fuzz.sh                      # every target, 60 s each
#   scripts/fuzz.sh content-range 600    # one target, 10 minutes
#
# Hand-written seeds live in Fuzz/corpus/<target>/ (a few each); what a run learns is kept in
# .build-fuzz/corpus/<target>/ for the next run. A crash or a hang (over 10 s) is written to
# .build-fuzz/crashes/<target>/; turn it into a case in Tests/UnitTests before fixing it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
targets=(content-range range content-type authorization digest repository-name scope form dockerignore tar manifest image-reference)
if [[ $# -ge 1 ]]; then targets=("$1"); fi
seconds=${2:-60}
out=$ROOT/.build-fuzz
mkdir -p "$out"

# The parsers, without swift-crypto (built here with swiftc alone): Digest.swift hashes only
# when Crypto can be imported, and SigV4.swift signs the server's own requests to an object
# store, which parse nothing a client sends.
sources=($(ls Sources/WireFormats/*.swift | grep -v '/SigV4.swift$') Sources/BuildContext/DockerIgnore.swift Sources/BuildContext/ContextUnpacker.swift Sources/BuildContext/Tar.swift)
failed=0
for target in "${targets[@]}"; do
    flag=FUZZ_$(echo "$target" | tr 'a-z-' 'A-Z_')
    binary=$out/fuzz-$target
    echo "==> building $target"
    if ! swiftc -sanitize=fuzzer,address -parse-as-library -O -D "$flag" -module-name DrydockFuzz \
        "${sources[@]}" Fuzz/Targets.swift -o "$binary" 2>"$out/$target.build.log"; then
        grep -v "Cannot export local symbol" "$out/$target.build.log" >&2
        echo "!! $target did not build" >&2
        exit 1
    fi
    corpus=$ROOT/Fuzz/corpus/$target
    work=$out/corpus/$target
    crashes=$out/crashes/$target
    mkdir -p "$corpus" "$work" "$crashes"
    echo "==> fuzzing $target for $seconds s"
    if ! (cd "$crashes" && "$binary" "$work" "$corpus" -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 \
            -artifact_prefix="$crashes/" 2>"$out/$target.log"); then
        echo "!! $target found a crash: see $crashes and $out/$target.log" >&2
        tail -30 "$out/$target.log" >&2
        failed=1
        continue
    fi
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$out/$target.log" | sed 's/^/   /'
    # What the fuzzer learned stays in .build-fuzz/corpus (reused by the next run); the checked-in
    # seeds stay a handful of hand-written inputs.
done
exit $failed
