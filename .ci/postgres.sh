#!/usr/bin/env bash
# Source this (as root) before the tests: installs Debian's PostgreSQL, chromium and
# chromium-driver when missing, starts a private PostgreSQL cluster on 127.0.0.1:55432 and
# exports GENLAB_TEST_PG_DSN (and GENLAB_TEST_CHROMIUM when the browser is there). Anything that
# cannot be done is said on stderr; the tests that need it then skip, saying why.

genlab_ci_services() {
    local need=()
    command -v chromium >/dev/null || need+=(chromium)
    command -v chromedriver >/dev/null || need+=(chromium-driver)
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
    if [ "${#need[@]}" -gt 0 ]; then
        if [ "$(id -u)" != 0 ]; then
            echo "ci: not root: cannot install ${need[*]}; their tests will skip" >&2
        else
            echo "ci: installing ${need[*]} from Debian's packages" >&2
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq "${need[@]}") >/tmp/genlab-ci-apt.log 2>&1 \
                || echo "ci: apt-get install ${need[*]} failed (see /tmp/genlab-ci-apt.log)" >&2
        fi
    fi
    if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
        export GENLAB_TEST_CHROMIUM=1
    fi

    local bin dir=/tmp/genlab-ci-pg port=55432
    bin=$( (ls -d /usr/lib/postgresql/*/bin 2>/dev/null || true) | sort -V | tail -1)
    if [ -z "$bin" ] || ! id postgres >/dev/null 2>&1; then
        echo "ci: no PostgreSQL server installed: the PostgreSQL store tests will skip" >&2
        return 0
    fi
    if [ -f "$dir/data/postmaster.pid" ]; then
        su postgres -s /bin/sh -c "$bin/pg_ctl -D $dir/data -m fast -w stop" >/dev/null 2>&1
    fi
    rm -rf "$dir" && mkdir -p "$dir" && chown postgres "$dir"
    if su postgres -s /bin/sh -c "$bin/initdb -D $dir/data -A trust -U postgres" \
            >"$dir/initdb.log" 2>&1 \
        && su postgres -s /bin/sh -c "$bin/pg_ctl -D $dir/data -l $dir/server.log -w \
            -o '-p $port -k $dir -c listen_addresses=127.0.0.1' start" >/dev/null 2>&1 \
        && "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres genlab_test; then
        export GENLAB_TEST_PG_DSN="postgresql://postgres@127.0.0.1:$port/genlab_test"
        echo "ci: PostgreSQL running for the tests: $GENLAB_TEST_PG_DSN" >&2
    else
        echo "ci: PostgreSQL did not start (see $dir/*.log): its tests will skip" >&2
    fi
}

genlab_ci_stop() {
    local bin
    bin=$( (ls -d /usr/lib/postgresql/*/bin 2>/dev/null || true) | sort -V | tail -1)
    if [ -n "$bin" ] && [ -f /tmp/genlab-ci-pg/data/postmaster.pid ]; then
        su postgres -s /bin/sh -c "$bin/pg_ctl -D /tmp/genlab-ci-pg/data -m fast -w stop" \
            >/dev/null 2>&1 || true
    fi
}

genlab_ci_services || echo "ci: could not prepare the test services; their tests will skip" >&2
