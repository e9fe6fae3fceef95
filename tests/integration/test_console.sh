#!/usr/bin/env bash
# The web console in a real browser: runs tests/browser/console.test.mjs
# (node:test + puppeteer-core driving Debian's Chromium headless, axe-core)
# against a real `nuage serve` that the test starts with a store, a tenant
# key and an admin key. Screenshots (each page at 1280 and 360 px) go to
# <build>/console-screenshots. Exit 77 (skipped) when node, Chromium or
# tests/browser/node_modules are missing (.ci/run installs them:
# apt chromium, `npm ci` in tests/browser).
# Env (set by ctest): NUAGE_BIN, NUAGE_SOURCE_DIR; NUAGE_CHROMIUM overrides
# the browser (default /usr/bin/chromium).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
src="${NUAGE_SOURCE_DIR:-$(cd "$here/../.." && pwd)}"
bin="${NUAGE_BIN:-$src/build/nuage}"
chromium="${NUAGE_CHROMIUM:-/usr/bin/chromium}"
tests="$src/tests/browser"
if ! command -v node >/dev/null 2>&1; then echo "node not found: skipped"; exit 77; fi
if [ ! -x "$chromium" ]; then echo "$chromium not found (apt install chromium): skipped"; exit 77; fi
if [ ! -d "$tests/node_modules/puppeteer-core" ] || [ ! -d "$tests/node_modules/axe-core" ]; then
  echo "tests/browser/node_modules missing (cd tests/browser && npm ci): skipped"; exit 77
fi
slow=1
if nm -C "$bin" 2>/dev/null | grep -q __asan_init; then slow=4; fi
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nuage-console-XXXXXX")"
# shellcheck disable=SC2064
trap "rm -rf '$tmp'" EXIT
cd "$tests" || exit 1
env XDG_DATA_HOME="$tmp" HOME="$tmp" NUAGE_DB="" NUAGE_BIN="$bin" NUAGE_SOURCE_DIR="$src" NUAGE_TEST_SLOW="$slow" \
  NUAGE_CHROMIUM="$chromium" NUAGE_CONSOLE_ARTIFACTS="${NUAGE_CONSOLE_ARTIFACTS:-$(dirname "$bin")/console-screenshots}" \
  node --test --test-concurrency=1 --test-timeout=600000 markdown.test.mjs console.test.mjs
