#!/usr/bin/env bash
# Integration tests of the Files and Batch APIs (`nuage serve` with a
# database, and the `nuage batch` command), driven by the official openai
# npm SDK: runs tests/integration/openai/batch*.test.mjs with `node --test`.
# Each test starts its own servers on loopback with a temporary database
# (one of them is killed with SIGKILL mid-batch and restarted) and stops
# them. Exit 77 (skipped) when node or the SDK are
# missing. Env (set by ctest): NUAGE_BIN, NUAGE_SHARED_DEFAULT,
# NUAGE_SOURCE_DIR; NUAGE_SHARED overrides the data folder.
set -u
source "$(cd "$(dirname "$0")" && pwd)/node_suite.sh"
nuage_node_suite "batch*.test.mjs" NUAGE_BATCH_TESTS
