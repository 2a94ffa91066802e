#!/usr/bin/env bash
# CI: check the deployable unit — the systemd unit (systemd-analyze verify), the cloud-init
# example (YAML parse), the Dockerfile (hadolint if present) and the image build (if a container
# engine is available). A check that cannot run here says so and is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

node -e '
const { parse } = require("yaml");
const doc = parse(require("fs").readFileSync("deploy/cloud-init.yaml", "utf8"));
if (!doc || !Array.isArray(doc.runcmd) || !doc.runcmd.some((c) => String(c).includes("systemctl enable")))
  throw new Error("deploy/cloud-init.yaml: runcmd must enable the doproxy unit");
console.log("cloud-init: deploy/cloud-init.yaml parses");
'

if ! command -v systemd-analyze >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null 2>&1 || true
fi
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify resolves ExecStart; point it at this checkout's node and CLI in a scratch copy.
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  sed -e "s|/usr/bin/node|$(command -v node)|" -e "s|/opt/doproxy|$PWD|" deploy/doproxy.service \
    >"$scratch/doproxy.service"
  # verify exits 0 on lines it ignores ("Failed to parse ..., ignoring"), so any remark on the
  # unit file itself counts as a failure too.
  if out=$(systemd-analyze verify "$scratch/doproxy.service" 2>&1) && ! grep -q "doproxy.service:" <<<"$out"; then
    echo "systemd: deploy/doproxy.service verified"
  elif grep -qiE "not booted|failed to (connect|initialize)|System has not been booted" <<<"$out"; then
    echo "systemd: skipped: systemd-analyze cannot run here: $out"
  else
    echo "$out" >&2
    echo "systemd: deploy/doproxy.service failed verification" >&2
    exit 1
  fi
else
  echo "systemd: skipped: systemd-analyze not available"
fi

if command -v hadolint >/dev/null 2>&1; then
  hadolint Dockerfile && echo "Dockerfile: hadolint clean"
else
  echo "Dockerfile: hadolint skipped: not installed"
fi

engine=""
for tool in docker podman; do
  if command -v "$tool" >/dev/null 2>&1 && "$tool" info >/dev/null 2>&1; then engine=$tool; break; fi
done
if [ -n "$engine" ]; then
  "$engine" build -t doproxy:ci . && echo "image: built with $engine"
else
  echo "image: skipped: no container engine"
fi
