#!/bin/sh
# PID 1 of the VM test's guest (busybox sh). Loads vsock with its loopback transport, starts
# sigil-enclave on AF_VSOCK and sigil-host connecting to it over AF_VSOCK (CID 1), runs the
# client's checks over HTTPS, proves from the kernel's own socket tables that the two talk
# over vsock and not a Unix socket, and ends with exactly one verdict line:
#   SIGIL-VM: PASS             or   SIGIL-VM: FAIL <what>
# The host script decides on that line only; anything else (a panic, a hang) is a failure.

/bin/busybox mkdir -p /proc /sys /dev /tmp /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
export PATH=/sigil:/usr/bin:/bin:/usr/sbin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "SIGIL-VM: $*"; }
section() { echo; echo "----- $* -----"; }

ENCLAVE_PID=
HOST_PID=
finish() {
    # Logs first, so a failure shows what the services said; then the verdict, then off.
    for svc in enclave host; do
        if [ -f "/tmp/$svc.log" ]; then
            section "sigil-$svc log"
            cat "/tmp/$svc.log"
        fi
    done
    echo
    say "guest uptime at the verdict: $(cut -d' ' -f1 /proc/uptime) s"
    say "$1"
    sync
    poweroff -f
    sleep 60 # poweroff -f does not return; never let PID 1 exit (a panic would hide the verdict)
}
die() { finish "FAIL $*"; }
# Running, not a zombie (PID 1 reaps its children only when it waits for them).
alive() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$1/stat" 2>/dev/null; }
stop_services() {
    # SIGTERM: both shut down gracefully (draining requests, closing connections).
    kill "$HOST_PID" "$ENCLAVE_PID" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
        alive "$HOST_PID" || alive "$ENCLAVE_PID" || return 0
        sleep 1
    done
}

say "guest /init started at uptime $(cut -d' ' -f1 /proc/uptime) s, kernel $(uname -r)"

# ---- the clock: JWTs and attestation documents are checked against it ------------------
host_time=$(sed -n 's/.*sigil\.hosttime=\([0-9]*\).*/\1/p' /proc/cmdline)
guest_time=$(date +%s)
echo "guest clock: $(date -u '+%Y-%m-%d %H:%M:%S UTC') (host at launch: $host_time)"
if [ -z "$host_time" ] || [ $((guest_time - host_time)) -lt -5 ] || [ $((guest_time - host_time)) -gt 240 ]; then
    die "guest clock $guest_time is not within [-5 s, +240 s] of the host's launch time $host_time"
fi
echo "check: guest clock within $((guest_time - host_time)) s of the host's ok"

ip link set lo up || die "cannot bring up lo"

# ---- AF_VSOCK from the Debian kernel's own modules -------------------------------------
section "vsock modules"
while read -r mod; do
    insmod "/lib/modules/$mod.ko" || die "insmod $mod failed"
    echo "insmod $mod"
done </lib/modules/order
grep -E '^(vsock|vsock_loopback|vmw_vsock_virtio_transport_common|vsock_diag|unix_diag) ' /proc/modules
grep -q '^vsock_loopback ' /proc/modules || die "vsock_loopback is not loaded"
ls -l /dev/vsock || die "no /dev/vsock"
# No virtio-vsock device and no vhost: the only transport is the in-kernel loopback (CID 1).
echo "vsock transports loaded: $(grep -oE '^(vsock_loopback|vmw_vsock_virtio_transport|vmw_vsock_vmci_transport|hv_sock) ' /proc/modules | tr -d '\n')"
echo "check: AF_VSOCK with the vsock_loopback transport ok"

# ---- the enclave on vsock, the host connecting to it over vsock ------------------------
section "services"
cd /tmp || die "no /tmp"
# debug for the host client, which logs each vsock connection with its addresses (the enclave
# logs its accepts at info)
export RUST_LOG=info,sigil_host::client=debug
ENCLAVE_CMD="sigil-enclave --listen vsock://ANY:5000 --broker-pubkey /state/broker.pem --attester sim --sim-ca /state --k3-file /k3.hex"
HOST_CMD="sigil-host --listen 127.0.0.1:8443 --tls-cert /state/tls-cert.pem --tls-key /state/tls-key.pem --broker-pubkey /state/broker.pem --enclave vsock://1:5000"
t0=$(cut -d' ' -f1 /proc/uptime)
echo "\$ $ENCLAVE_CMD"
$ENCLAVE_CMD >/tmp/enclave.log 2>&1 &
ENCLAVE_PID=$!
# The host would retry until the enclave listens; waiting keeps the log free of retries.
i=0
until grep -q 'sigil-enclave listening' /tmp/enclave.log; do
    alive "$ENCLAVE_PID" || die "sigil-enclave exited: $(cat /tmp/enclave.log)"
    i=$((i + 1))
    [ "$i" -le 600 ] || die "sigil-enclave did not listen within 60 s"
    sleep 0.1
done
echo "\$ $HOST_CMD"
$HOST_CMD >/tmp/host.log 2>&1 &
HOST_PID=$!

# ---- the client: attested session, derive, sign, KEK, compat routes --------------------
section "vm_client https://127.0.0.1:8443 /state"
vm_client https://127.0.0.1:8443 /state
rc=$?
t1=$(cut -d' ' -f1 /proc/uptime)
echo "services started at uptime $t0 s; client finished at $t1 s"
alive "$ENCLAVE_PID" || die "sigil-enclave exited"
alive "$HOST_PID" || die "sigil-host exited"
[ "$rc" -eq 0 ] || die "vm_client exit code $rc (see its FAIL line above)"

# ---- the kernel's socket tables: vsock on both ends, no Unix socket between them --------
# `ss` asks the kernel (vsock_diag) for every AF_VSOCK socket and its owning process.
section "ss --vsock -a -n -p  (AF_VSOCK sockets)"
ss --vsock -a -n -p >/tmp/ss-vsock.txt 2>&1 || die "ss --vsock failed: $(cat /tmp/ss-vsock.txt)"
cat /tmp/ss-vsock.txt
section "ss -x -a -n -p  (AF_UNIX sockets)"
ss -x -a -n -p >/tmp/ss-unix.txt 2>&1 || die "ss -x failed: $(cat /tmp/ss-unix.txt)"
cat /tmp/ss-unix.txt
section "ss -t -a -n -p  (TCP sockets)"
ss -t -a -n -p
section "socket file descriptors"
for p in "$ENCLAVE_PID" "$HOST_PID"; do
    echo "$(cat "/proc/$p/comm") (pid $p): $(ls -l "/proc/$p/fd" | grep -c 'socket:') sockets"
done
echo
# Pair the two ends: every connection sigil-host holds to 1:5000 must appear, with the same
# port, as a connection sigil-enclave accepted on 1:5000 (columns: local $5, peer $6).
set -- $(awk -v h="$HOST_PID" -v e="$ENCLAVE_PID" '
    $1 == "v_str" && $2 == "LISTEN" && $5 == "*:5000" && index($0, "pid=" e ",") { listening = 1 }
    $1 == "v_str" && $2 == "ESTAB" && $6 == "1:5000" && index($0, "pid=" h ",") { split($5, a, ":"); host[a[2]] = 1; nh++ }
    $1 == "v_str" && $2 == "ESTAB" && $5 == "1:5000" && index($0, "pid=" e ",") { split($6, a, ":"); encl[a[2]] = 1; ne++ }
    END { for (p in host) if (p in encl) both++; print listening + 0, nh + 0, ne + 0, both + 0 }' /tmp/ss-vsock.txt)
[ "$1" = 1 ] || die "no AF_VSOCK listener *:5000 owned by sigil-enclave"
echo "check: sigil-enclave listens on AF_VSOCK *:5000 ok"
[ "$2" -ge 1 ] || die "sigil-host holds no established AF_VSOCK connection to 1:5000"
[ "$4" -eq "$2" ] && [ "$3" -eq "$2" ] \
    || die "AF_VSOCK ends do not pair up: sigil-host $2, sigil-enclave $3, matching $4"
echo "check: $2 AF_VSOCK connections sigil-host -> 1:5000, each also seen accepted by sigil-enclave (same port) ok"
# tokio's signal handling uses an unnamed socketpair inside each process; that is the only
# AF_UNIX use allowed: nothing named, nothing listening, no peer in another process.
# (unix_diag gives ss the peers; columns: state $2, local $5 inode $6, peer inode $8.)
bad=$(awk -v h="$HOST_PID" -v e="$ENCLAVE_PID" '
    NR > 1 { pid = ""; if (match($0, /pid=[0-9]+/)) pid = substr($0, RSTART + 4, RLENGTH - 4)
             owner[$6] = pid; st[$6] = $2; name[$6] = $5; peer[$6] = $8 }
    END { for (i in owner) if (owner[i] == h || owner[i] == e)
              if (name[i] != "*" || st[i] != "ESTAB" || !(peer[i] in owner) || owner[peer[i]] != owner[i])
                  printf "inode %s (pid %s, %s %s, peer %s) ", i, owner[i], st[i], name[i], peer[i] }' /tmp/ss-unix.txt)
[ -z "$bad" ] || die "an AF_UNIX socket of sigil-enclave/sigil-host leaves its process: $bad"
echo "check: no AF_UNIX socket between sigil-host and sigil-enclave (only each process's own unnamed socketpair) ok"
grep -q 'sigil-enclave listening.*listen=vsock://ANY:5000' /tmp/enclave.log || die "the enclave did not log its vsock listener"
grep -q 'vsock connection accepted cid=1 port=' /tmp/enclave.log || die "the enclave did not log a vsock connection from CID 1"
grep -q 'vsock connection to the enclave opened.*peer_cid=1 peer_port=5000' /tmp/host.log \
    || die "the host did not log its vsock connection to CID 1 port 5000"
grep -q 'enclave connection established enclave=vsock://1:5000' /tmp/host.log || die "the host did not log the enclave connection"
echo "check: logs name the vsock endpoints (enclave: listening vsock://ANY:5000, accepted cid=1; host: opened peer_cid=1 peer_port=5000) ok"

section "SIGTERM to both"
stop_services
alive "$HOST_PID" && die "sigil-host did not stop within 20 s of SIGTERM"
alive "$ENCLAVE_PID" && die "sigil-enclave did not stop within 20 s of SIGTERM"
wait "$HOST_PID"
host_rc=$?
wait "$ENCLAVE_PID"
enclave_rc=$?
[ "$host_rc" -eq 0 ] && [ "$enclave_rc" -eq 0 ] \
    || die "exit codes after SIGTERM: sigil-host $host_rc, sigil-enclave $enclave_rc (expected 0)"
echo "check: sigil-host and sigil-enclave stopped on SIGTERM with exit code 0 ok"
finish PASS
