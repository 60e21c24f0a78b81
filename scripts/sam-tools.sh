#!/usr/bin/env bash
# Create (or reuse) a separate tools venv with a pinned AWS SAM CLI, then optionally run it.
#
# Why a separate venv: aws-sam-cli pins its own boto3/botocore (1.43.108 / 1.43.127 for 1.170.0), which
# would fight the project's boto3==1.43.117 + aiobotocore==3.10.0 pin set (../shared/LOCAL_AWS.md §1, §3).
# `.venv-tools/` is git-ignored.
#
# Usage:
#   scripts/sam-tools.sh                     # create .venv-tools if missing, print the sam version
#   scripts/sam-tools.sh validate --lint     # run `sam validate --lint` on template.yaml
#   PYENV_VERSION=3.12.1 scripts/sam-tools.sh build   # `sam build` needs a python3.12 binary on PATH
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SAM_TOOLS_VENV:-$ROOT/.venv-tools}"
SAM_CLI_VERSION="1.170.0"
PYTHON="${PYTHON:-python3}"

export SAM_CLI_TELEMETRY=0

if [[ ! -x "$VENV/bin/sam" ]]; then
  echo "creating $VENV with aws-sam-cli==$SAM_CLI_VERSION (about 40 s)" >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "aws-sam-cli==$SAM_CLI_VERSION"
fi

cd "$ROOT"
if [[ $# -eq 0 ]]; then
  exec "$VENV/bin/sam" --version
fi
# `sam validate` / `sam build` need a region but no credentials.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
exec "$VENV/bin/sam" "$@"
