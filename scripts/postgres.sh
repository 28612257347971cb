#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store's tests, on loopback only.
#
#   scripts/postgres.sh start DIR [PORT]   # prints postgresql://loop:loop@127.0.0.1:PORT/postgres
#   scripts/postgres.sh stop DIR
#
# The cluster lives in DIR/data, its socket and log in DIR. Durability is switched off (fsync,
# synchronous_commit, full_page_writes) because the data is disposable and tests create many
# databases. The role `loop` (password `loop`) may create databases but is not a superuser, as an
# application's role would be.
set -euo pipefail

usage() { echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 2; }
die() { echo "postgres.sh: $*" >&2; exit 1; }

[[ $# -ge 2 ]] || usage
cmd=$1 dir=$2 port=${3:-54329}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[[ -n $bin && -x $bin/initdb ]] || die "no PostgreSQL binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)"

# The server refuses to run as root: as root, everything runs as the postgres system user.
if [[ $(id -u) -eq 0 ]]; then
    owner=postgres
    as_owner() { runuser -u postgres -- "$@"; }
else
    owner=$(id -un)
    as_owner() { "$@"; }
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
data=$dir/data
[[ $(id -u) -eq 0 ]] && chown "$owner" "$dir"
chmod 700 "$dir"
cd "$dir"  # the owner may not be able to read the caller's working directory
as_owner test -w "$dir" || die "$dir is not writable by $owner (is a parent folder closed to it?)"

# Running only if the pid file names a live postgres process: a pid left by a killed server may
# since belong to something else, which must never be signalled.
running() {
    [[ -f $data/postmaster.pid ]] || return 1
    local pid
    pid=$(head -n 1 "$data/postmaster.pid")
    [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == postgres ]]
}

url() { echo "postgresql://loop:loop@127.0.0.1:$1/postgres"; }

case $cmd in
start)
    [[ $port =~ ^[0-9]+$ ]] || usage
    exec 9>"$dir/start.lock"
    flock 9
    if running; then
        url "$(sed -n 4p "$data/postmaster.pid")"
        exit 0
    fi
    rm -f "$data/postmaster.pid"
    if [[ ! -f $data/PG_VERSION ]]; then
        as_owner "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=md5 \
            -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
        cat >>"$data/postgresql.conf" <<EOF

# scripts/postgres.sh: loopback only, no durability
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    fi
    # 9>&-: the server must not inherit the lock, or it would hold it for its whole life.
    as_owner "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -o "-c port=$port" -w -t 60 -s start 9>&- \
        || { tail -n 20 "$dir/postgres.log" >&2; die "the server did not start (is port $port taken?)"; }
    for _ in $(seq 60); do
        "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
        sleep 0.5
    done
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" || die "the server does not accept connections on 127.0.0.1:$port"
    as_owner "$bin/psql" -q -X -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<'EOF'
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'loop') THEN
        CREATE ROLE loop LOGIN CREATEDB PASSWORD 'loop';
    END IF;
END $$;
EOF
    url "$port"
    ;;
stop)
    if running; then
        as_owner "$bin/pg_ctl" -D "$data" -m fast -w -s stop
    fi
    ;;
*)
    usage
    ;;
esac
