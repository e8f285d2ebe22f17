#!/usr/bin/env bash
# ctest deploy.k8s.base / deploy.k8s.dev: k8s/ (or an overlay) rendered by
# kubectl's kustomize, offline, then every object validated against the
# Kubernetes schemas and the invariants checked (check.js k8s).
#   tests/deploy/check-k8s.sh BINDIR WORKDIR base|dev
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bindir=${1:?usage: $0 BINDIR WORKDIR base|dev}
work=${2:?usage: $0 BINDIR WORKDIR base|dev}
variant=${3:?usage: $0 BINDIR WORKDIR base|dev}
case "$variant" in
base) dir=$root/k8s ;;
dev) dir=$root/k8s/overlays/dev ;;
*) echo "variant: base or dev" >&2; exit 2 ;;
esac
command -v kubectl >/dev/null 2>&1 ||
  { echo "kubectl is not installed (./kpay deps installs kubernetes-client)" >&2; exit 1; }
mkdir -p "$work"
out=$work/k8s-$variant.yml
kubectl kustomize "$dir" >"$out"
echo "kubectl kustomize $dir: $(grep -c '^kind:' "$out") objects"
exec node "$root/tests/deploy/check.js" k8s "$out" "$bindir" "$variant"
