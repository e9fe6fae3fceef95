#!/usr/bin/env bash
# Integration tests of the Responses API (POST /v1/responses and its
# stored state) through the official openai npm SDK: runs
# tests/integration/openai/responses*.test.mjs with `node --test`. Each
# test file starts its own `nuage serve` on loopback with a temporary
# database and configuration (two tenants with keys, a router deployment)
# and stops it. Exit 77 (skipped) when node or the SDK are missing.
# Env (set by ctest): NUAGE_BIN, NUAGE_SHARED_DEFAULT, NUAGE_SOURCE_DIR;
# NUAGE_SHARED overrides the data folder.
set -u
source "$(cd "$(dirname "$0")" && pwd)/node_suite.sh"
nuage_node_suite "responses*.test.mjs" NUAGE_RESPONSES_TESTS
