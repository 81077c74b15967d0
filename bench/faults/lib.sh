# Shared by the bench/faults scripts (sourced).
# serve_port ERR_FILE PID TRIES: the port `adebert serve --port 0` (PID, stderr in
# ERR_FILE) says it listens on, polled every 0.25 s up to TRIES times; empty when PID
# exits first or the tries run out.
serve_port() {
  local port="" _
  for _ in $(seq 1 "$3"); do
    port=$(sed -n 's/.*listening on https\?:\/\/[^ ]*:\([0-9]*\) .*/\1/p' "$1" | head -1)
    [ -n "$port" ] && break
    kill -0 "$2" 2>/dev/null || break
    sleep 0.25
  done
  echo "$port"
}
