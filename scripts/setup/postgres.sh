#!/usr/bin/env bash
# A real PostgreSQL server for the sheet tests on PostgreSQL (tests/sheets_postgres.rs):
# Debian's `postgresql` package. The tests start a throw-away cluster themselves
# (tests/common/postgres_server.rs): initdb in a new temporary directory, `postgres` on a
# free loopback port with its socket in that directory, trust authentication, as the
# package's unprivileged `postgres` user when they run as root; it is stopped and removed
# when the tests end. The package's own cluster (`main`, port 5432) is not used.
#
# By hand (not as root):
#   d=$(mktemp -d); /usr/lib/postgresql/15/bin/initdb -D "$d/data" -U postgres --auth=trust
#   /usr/lib/postgresql/15/bin/postgres -D "$d/data" -h 127.0.0.1 -p 55432 -k "$d"
#   DAGGR_SHEETS_URL=postgres://postgres@127.0.0.1:55432/postgres cargo run …
set -euo pipefail

# Run alone (not from setup-test-env.sh): the same installer.
if ! declare -F apt_install >/dev/null; then
    apt_install() {
        local missing=()
        for pkg in "$@"; do
            dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
        done
        ((${#missing[@]})) || return 0
        echo "postgres.sh: apt-get install ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        export DEBIAN_FRONTEND=noninteractive
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    }
fi

installed_before=true
dpkg -s postgresql >/dev/null 2>&1 || installed_before=false
apt_install postgresql

bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/postgres" ] || [ ! -x "$bin/psql" ]; then
    echo "postgres.sh: PostgreSQL's programs not found in /usr/lib/postgresql/*/bin" >&2
    exit 1
fi
# The package may have started its default cluster: the tests start their own, so a fresh
# install leaves nothing running (a cluster that was there before is left alone).
if ! $installed_before && command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header 2>/dev/null | while read -r version cluster _port status _rest; do
        if [ "$status" = online ]; then
            pg_ctlcluster "$version" "$cluster" stop >/dev/null 2>&1 || true
        fi
    done
fi
getent passwd postgres >/dev/null || echo "postgres.sh: no \`postgres\` user: tests run as root will use \`nobody\`"
echo "postgres.sh: $("$bin/postgres" --version) ready ($bin)"
