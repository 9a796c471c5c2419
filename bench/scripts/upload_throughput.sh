#!/usr/bin/env bash
# XEP-0363 upload throughput: one FILE_MB (default 100) MB file PUT, then GET, over loopback
# against a release build pinned to one core (`taskset -c ${CORE:-0}`), the server's RSS
# sampled every 20 ms during the transfers. The slot is requested over XMPP with slixmpp
# (the test venv, target/slixmpp-venv), the transfers are curl's.
#
#   cargo build --release --bin switchboard && bench/scripts/upload_throughput.sh
#
# The file and the upload folder sit on tmpfs (/dev/shm) unless UPLOAD_DIR says otherwise,
# so the figure is the server's, not the disk's.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${SWITCHBOARD_BIN:-target/release/switchboard}
py=${PYTHON:-target/slixmpp-venv/bin/python}
mb=${FILE_MB:-100}
work=$(mktemp -d)
uploads=${UPLOAD_DIR:-$(mktemp -d -p /dev/shm sb-upload-XXXXXX)}
pid=
sampler=
cleanup() {
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$work" "$uploads"
}
trap cleanup EXIT

cat > "$work/sb.toml" <<TOML
domains = ["localhost"]
[storage]
url = "sqlite://$work/sb.db"
[tls]
cert = "$work/cert.pem"
key = "$work/key.pem"
[[listen]]
kind = "c2s"
address = "127.0.0.1:0"
[[listen]]
kind = "http"
address = "127.0.0.1:0"
[log]
level = "warn"
[upload]
enabled = true
directory = "$uploads"
max_file_size = $((mb * 1048576 + 1))
quota_per_user = $((mb * 1048576 * 4))
TOML

"$bin" --config "$work/sb.toml" user add alice@localhost --password benchpass >/dev/null
taskset -c "${CORE:-0}" "$bin" --config "$work/sb.toml" serve --ports-file "$work/ports.json" &
pid=$!
for _ in $(seq 200); do [ -s "$work/ports.json" ] && break; sleep 0.05; done
c2s=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["c2s"])' "$work/ports.json")

head -c $((mb * 1048576)) /dev/urandom > "$work/file.bin"
size=$(stat -c %s "$work/file.bin")

# One slot: prints the PUT and the GET URL.
"$py" - "$c2s" "$size" > "$work/urls" <<'PY'
import asyncio, ssl, sys
import slixmpp
host, port = sys.argv[1].rsplit(":", 1)
size = int(sys.argv[2])
class C(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__("alice@localhost/bench", "benchpass")
        self.register_plugin("xep_0363")
        self.ready = asyncio.get_running_loop().create_future()
        self.add_event_handler("session_start", lambda _: self.ready.set_result(True))
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
async def main():
    c = C()
    c.connect(host, int(port))
    await asyncio.wait_for(c.ready, 20)
    iq = await c.plugin["xep_0363"].request_slot("upload.localhost", "file.bin", size, "application/octet-stream")
    print(iq["http_upload_slot"]["put"]["url"])
    print(iq["http_upload_slot"]["get"]["url"])
    c.disconnect()
asyncio.run(main())
PY
put_url=$(sed -n 1p "$work/urls")
get_url=$(sed -n 2p "$work/urls")

rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
# utime + stime of every thread, in clock ticks.
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
sample() { while :; do rss; sleep 0.02; done > "$work/rss"; }
rss_before=$(rss)
sample & sampler=$!
cpu0=$(cpu)
put=$(curl -s -o /dev/null -w '%{http_code} %{time_total} %{speed_upload}' -T "$work/file.bin" \
    -H 'Content-Type: application/octet-stream' "$put_url")
cpu1=$(cpu)
get=$(curl -s -o "$work/back.bin" -w '%{http_code} %{time_total} %{speed_download}' "$get_url")
cpu2=$(cpu)
kill "$sampler"; wait "$sampler" 2>/dev/null || true; sampler=
rss_max=$(sort -n "$work/rss" | tail -1)
cmp -s "$work/file.bin" "$work/back.bin" && same=yes || same=NO

read -r put_code put_secs put_speed <<< "$put"
read -r get_code get_secs get_speed <<< "$get"
echo "file: $mb MiB; server pinned to core ${CORE:-0}; uploads in $uploads"
mbps() { echo "$1 / 1000000" | bc -l; }
# MB the server moves per second of its own CPU time: the figure a busy machine distorts least.
per_cpu() { echo "$size / 1000000 / (($2 - $1) / $hz)" | bc -l 2>/dev/null || echo 0; }
printf 'PUT: HTTP %s, %.3f s, %.0f MB/s; server CPU %.2f s (%.0f MB per CPU second)\n' \
    "$put_code" "$put_secs" "$(mbps "$put_speed")" "$(echo "($cpu1 - $cpu0) / $hz" | bc -l)" "$(per_cpu "$cpu0" "$cpu1")"
printf 'GET: HTTP %s, %.3f s, %.0f MB/s; server CPU %.2f s (%.0f MB per CPU second); identical: %s\n' \
    "$get_code" "$get_secs" "$(mbps "$get_speed")" "$(echo "($cpu2 - $cpu1) / $hz" | bc -l)" "$(per_cpu "$cpu1" "$cpu2")" "$same"
echo "server RSS: before $((rss_before / 1024)) MiB, peak during the transfers $((rss_max / 1024)) MiB ($(wc -l < "$work/rss") samples)"
