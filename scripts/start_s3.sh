#!/usr/bin/env bash
# Start a throwaway S3-compatible server (moto's, objects kept in memory) on loopback for a
# trial run or the tests, and print its endpoint URL. Needs moto (pip install -e '.[dev]').
# It creates no bucket: the caller does. Credentials can be any non-empty values.
#   scripts/start_s3.sh [PORT]          start (or find running) and print the URL
#   scripts/start_s3.sh stop [PORT]     stop the server started for PORT
#   export AWS_ENDPOINT_URL=$(scripts/start_s3.sh)
set -euo pipefail
action=start
if [ "${1:-}" = stop ]; then action=stop; shift; fi
port=${1:-55480}
run_dir=${TMPDIR:-/tmp}
pid_file="$run_dir/search-s3-$port.pid"
log_file="$run_dir/search-s3-$port.log"
url="http://127.0.0.1:$port"

running() { [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; }

if [ "$action" = stop ]; then
  if running; then
    pid=$(cat "$pid_file")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$pid_file"
  exit 0
fi

if ! running; then
  # moto_server where a virtual environment is active, else the module through python.
  if command -v moto_server >/dev/null; then server=(moto_server)
  else server=("${PYTHON:-python3}" -m moto.server); fi
  # setsid: the server outlives this script and the shell's Ctrl-C.
  setsid "${server[@]}" -H 127.0.0.1 -p "$port" >"$log_file" 2>&1 </dev/null &
  echo $! >"$pid_file"
fi
# Answering means any HTTP reply (moto lists no buckets at /); without curl, an open port.
answers() {
  if command -v curl >/dev/null; then curl -s -o /dev/null "$url/"
  else (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; fi
}
for _ in $(seq 100); do
  if answers; then echo "$url"; exit 0; fi
  if ! running; then
    echo "error: moto's server exited; see $log_file (is port $port taken?)" >&2
    rm -f "$pid_file"; exit 1
  fi
  sleep 0.1
done
echo "error: moto's server on port $port did not answer within 10 s; see $log_file" >&2
exit 1
