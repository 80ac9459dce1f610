#!/usr/bin/env bash
# Build release binaries exactly as api/Dockerfile and fluentd/Dockerfile do (the same cargo
# command; api/tests/deploy_dockerfiles.rs keeps them in step).
#   scripts/build-release.sh            # api and logship
#   scripts/build-release.sh logship    # one binary
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "$#" -eq 0 ]; then
  set -- api logship
fi
for bin in "$@"; do
  cargo build --release --locked --bin "$bin"
done
