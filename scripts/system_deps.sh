#!/usr/bin/env bash
# Installs the servers the service and its tests use, from Debian's packages, when missing:
# one `apt-get update` and one install for everything that is absent.
#   scripts/system_deps.sh            # what `make demo` / `make serve` need (Redis)
#   scripts/system_deps.sh --test     # plus what `make test` needs (PostgreSQL, Prometheus,
#                                     # Chromium, WordNet, landscape photos)
set -euo pipefail

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
if [[ "${1:-}" == "--test" ]]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null \
    || missing+=(postgresql)
  { command -v prometheus >/dev/null && command -v promtool >/dev/null; } || missing+=(prometheus)
  command -v chromium >/dev/null || missing+=(chromium)  # the web page's browser test
  { command -v fc-list >/dev/null && fc-list :lang=zh | grep -q .; } \
    || missing+=(fonts-wqy-zenhei)  # Chinese text in the browser test's screenshots
  [[ -f /usr/share/wordnet/data.noun ]] || missing+=(wordnet-base)  # categories' derivation
  [[ -d /usr/share/wallpapers/EveningGlow ]] \
    || missing+=(plasma-workspace-wallpapers)  # landscape photos for the classifier's tests
fi
[[ ${#missing[@]} -eq 0 ]] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "missing: ${missing[*]}; install them with your package manager" >&2
  exit 1
fi
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
echo "installing from Debian's packages: ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
