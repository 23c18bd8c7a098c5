#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for a trial run or the tests, and print
# its URL. Needs Debian's postgresql package (apt-get install -y postgresql).
#   scripts/start_postgres.sh [DATA_DIR] [PORT]
#   export SEARCH_TEST_POSTGRES_URL=$(scripts/start_postgres.sh)
set -euo pipefail
data_dir=${1:-/tmp/search-postgres}
port=${2:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
run_as=()
# PostgreSQL refuses to run as root; use the postgres account the package creates.
if [ "$(id -u)" = 0 ]; then run_as=(runuser -u postgres --); fi

if [ ! -f "$data_dir/PG_VERSION" ]; then
  mkdir -p "$data_dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$data_dir"
  "${run_as[@]}" "$bin/initdb" -D "$data_dir" -U postgres --auth=trust >/dev/null
fi
if ! "${run_as[@]}" "$bin/pg_ctl" -D "$data_dir" status >/dev/null 2>&1; then
  "${run_as[@]}" "$bin/pg_ctl" -D "$data_dir" -l "$data_dir/server.log" -w \
    -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
fi
"${run_as[@]}" "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc \
  "SELECT 1 FROM pg_database WHERE datname = 'search'" | grep -q 1 ||
  "${run_as[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres search
echo "postgresql+psycopg://postgres@127.0.0.1:$port/search"
