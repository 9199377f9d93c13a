#!/bin/sh
# Standing checks run by make test: banned functions in our C sources.
set -eu
cd "$(dirname "$0")/.."
banned='\b(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets|rand|srand|system|gmtime|localtime)[[:space:]]*\('
if grep -rnE "$banned" src tests/unit fuzz --include='*.c' --include='*.h'; then
  echo "lint: banned function used (see STYLE.md: use snprintf, strtol, rd_random_bytes, gmtime_r...)" >&2
  exit 1
fi
echo "lint: ok"

# Static analysis (cppcheck from Debian): warnings, performance and portability.
if command -v cppcheck >/dev/null 2>&1; then
  cppcheck --quiet --enable=warning,performance,portability --std=c11 --inline-suppr -D_GNU_SOURCE -Isrc \
    --suppress=missingIncludeSystem --error-exitcode=1 src
  echo "lint: cppcheck ok"
else
  echo "lint: cppcheck not installed (scripts/install-deps.sh test installs it)" >&2
  exit 1
fi
