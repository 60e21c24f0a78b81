#!/usr/bin/env bash
# Upload web/ to the deployed stack's private web bucket (served by its CloudFront distribution) and write
# config.json with the stack's API and WebSocket URLs, as `capturestream up` does locally.
#
# Usage:
#   scripts/deploy_web.sh [stack-name]      # default: $STACK_NAME, else "capturestream" (samconfig.toml)
#
# Needs the AWS CLI and credentials for the stack's account, and the project venv (./dev setup): the file types
# come from devstack/cdn_edge.py WEB_TYPES, the allowlist the local edge serves, so both origins agree. Every
# file gets that explicit Content-Type (the distribution sends nosniff); anything else (dotfiles, extensionless
# LICENSE/VERSION files) stays local. Cache-Control no-cache: CloudFront revalidates with S3 by ETag, so a
# deploy is visible at once and needs no invalidation.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${1:-${STACK_NAME:-capturestream}}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
cd "$ROOT"

output() {
  aws cloudformation describe-stacks --stack-name "$STACK" --output text \
    --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue"
}

BUCKET="$(output WebBucket)"
WEB_URL="$(output WebUrl)"
API_URL="$(output HttpApiUrl)"
WS_URL="$(output WebSocketUrl)"
if [[ -z "$BUCKET" || "$BUCKET" == None ]]; then
  echo "stack $STACK has no WebBucket output: deploy template.yaml first (scripts/sam-tools.sh deploy)" >&2
  exit 1
fi

# One sync per extension, so each carries its type; --delete removes files of that extension gone from web/.
"$PYTHON" -c 'from devstack.cdn_edge import WEB_TYPES
for ext, content_type in WEB_TYPES.items():
    print(ext, content_type, sep="\t")' |
  while IFS=$'\t' read -r ext content_type; do
    aws s3 sync web/ "s3://$BUCKET/" --delete --only-show-errors \
      --exclude "*" --include "*$ext" --exclude ".*" --exclude "*/.*" --exclude "config.json" \
      --content-type "$content_type" --cache-control "no-cache"
  done

"$PYTHON" -c 'import json, sys; print(json.dumps({"apiUrl": sys.argv[1], "wsUrl": sys.argv[2]}))' \
  "$API_URL" "$WS_URL" |
  aws s3 cp - "s3://$BUCKET/config.json" --content-type application/json --cache-control no-cache --only-show-errors

echo "web app: $WEB_URL (API $API_URL, WebSocket $WS_URL)"
ORIGINS="$(aws cloudformation describe-stacks --stack-name "$STACK" --output text \
  --query "Stacks[0].Parameters[?ParameterKey=='CorsAllowOrigins'].ParameterValue")"
if [[ ",$ORIGINS," != *",$WEB_URL,"* ]]; then
  echo "note: the REST API does not allow $WEB_URL yet; deploy again with" \
    "--parameter-overrides CorsAllowOrigins=$WEB_URL (keep the other overrides)" >&2
fi
