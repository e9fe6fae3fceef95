#!/usr/bin/env bash
# Integration tests of the hosting platform (`nuage serve` with
# deployments, API keys, quotas, metering and isolation), driven by the
# official openai npm SDK: runs every tests/integration/openai/platform*.test.mjs
# with `node --test`. Each test file starts its own servers on loopback
# with a temporary database (created with `nuage admin`) and stops them.
# Exit 77 (skipped) when node or the SDK are missing.
# Env (set by ctest): NUAGE_BIN, NUAGE_SHARED_DEFAULT, NUAGE_SOURCE_DIR;
# NUAGE_SHARED overrides the data folder.
set -u
source "$(cd "$(dirname "$0")" && pwd)/node_suite.sh"
nuage_node_suite "platform*.test.mjs" NUAGE_PLATFORM_TESTS
