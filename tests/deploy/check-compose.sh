#!/usr/bin/env bash
# ctest deploy.compose: docker/docker-compose.yml parsed and normalized by a
# real compose implementation (Debian's docker-compose, offline: `config`
# needs no Docker engine), then every kpay setting in it checked against the
# binaries' --help and the compose invariants (check.js compose).
#   tests/deploy/check-compose.sh BINDIR WORKDIR
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bindir=${1:?usage: $0 BINDIR WORKDIR}
work=${2:?usage: $0 BINDIR WORKDIR}
command -v docker-compose >/dev/null 2>&1 ||
  { echo "docker-compose is not installed (./kpay deps installs Debian's docker-compose)" >&2; exit 1; }
mkdir -p "$work"
out=$work/compose.yml
# A clean environment for the ${VAR:-default} substitutions: the file's own
# defaults are what is checked, not this shell's KPAY_* settings.
compose() { env -i PATH="$PATH" HOME="$work" docker-compose --profile tools -f "$root/docker/docker-compose.yml" "$@"; }
compose config >"$out"
echo "docker-compose config: $(wc -l <"$out") lines rendered"
exec node "$root/tests/deploy/check.js" compose "$out" "$bindir"
