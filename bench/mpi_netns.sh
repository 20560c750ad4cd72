#!/usr/bin/env bash
# Several machines on one box: runs `qkv train` data-parallel under Open MPI with each rank in
# its own network namespace, so the ranks talk over TCP on veth links capped at a chosen rate,
# and one can see how step time depends on the network.
#
#   bench/mpi_netns.sh [--ranks N] [--rate RATE|none] [--qkv PATH] [--net A.B.C] [--measure]
#                      [-- QKV_ARGS...]
#   e.g. bench/mpi_netns.sh --ranks 2 --rate 1gbit -- train configs/tiny.toml --threads 1 \
#            --out /tmp/r --set train.max_iters=20 --set data.path=../shared/data/tinyshakespeare.txt
#        bench/mpi_netns.sh --rate 10gbit --measure          (the link's throughput only)
#
# Namespaces qkvns0..N-1 each get a veth "eth0" with address A.B.C.(i+1)/24 (default net
# 10.77.0), joined by the bridge qkvbr0 (A.B.C.254) in the root namespace. RATE (tc units:
# 100mbit, 1gbit, 10gbit) caps both directions of every link with tbf: what a namespace sends
# (egress of its eth0) and what it receives (egress of the bridge's end qkvhI), like a
# full-duplex NIC. --measure times a 2 s TCP transfer qkvns0 -> qkvns1 (python3) first.
# After the run, the bytes (and drops) each link's qdisc passed are printed. Everything is
# removed on exit, error or Ctrl-C; leftovers of an earlier run are removed at start.
# Needs root, ip and tc (iproute2), mpirun (Open MPI 4.1).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
ranks=2 rate=none qkv=$(dirname "$here")/build/release/qkv net=10.77.0 measure=0 qkv_args=()
while (($#)); do
  case $1 in
    --ranks) ranks=$2; shift ;;
    --rate) rate=$2; shift ;;
    --qkv) qkv=$2; shift ;;
    --net) net=$2; shift ;;
    --measure) measure=1 ;;
    --) shift; qkv_args=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "mpi_netns.sh: unknown argument $1 (--help)" >&2; exit 1 ;;
  esac
  shift
done

die() { echo "mpi_netns.sh: $*" >&2; exit 1; }
((EUID == 0)) || die "needs root (network namespaces, veth, tc)"
for tool in ip tc mpirun; do
  command -v $tool >/dev/null || die "$tool not found (iproute2 for ip and tc, openmpi-bin for mpirun)"
done
if ((measure)); then
  command -v python3 >/dev/null || die "--measure needs python3"
  ((ranks >= 2)) || die "--measure needs 2 ranks"
fi
if ! [[ $ranks =~ ^[0-9]+$ ]] || ((ranks < 1 || ranks > 253)); then die "--ranks must be 1..253"; fi
[[ $net =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "--net must be three octets, e.g. 10.77.0"
if ((${#qkv_args[@]})); then
  [[ -x $qkv ]] || die "no qkv binary at $qkv (build it, or --qkv PATH)"
  qkv=$(realpath "$qkv")
fi
# tbf needs a burst: 1 ms at the rate, at least 64 KiB so a GSO packet (up to 64 KiB) fits.
if [[ $rate != none ]]; then
  [[ $rate =~ ^([1-9][0-9]*)(kbit|mbit|gbit)$ ]] || die "--rate must be like 100mbit, 1gbit, 10gbit or none"
  declare -A bits=([kbit]=1000 [mbit]=1000000 [gbit]=1000000000)
  rate_bytes=$((BASH_REMATCH[1] * bits[${BASH_REMATCH[2]}] / 8))
  burst=$((rate_bytes / 1000))
  ((burst >= 65536)) || burst=65536
fi

bridge=qkvbr0 receiver=
cleanup() {
  [[ -z $receiver ]] || kill "$receiver" 2>/dev/null || true
  local ns link
  # Deleting a veth here removes both ends at once; a namespace's deletion would only
  # schedule it, and a quick rerun would find the name taken.
  for link in $(ip -o link show type veth | grep -o 'qkvh[0-9]*'); do ip link del "$link" || true; done
  for ns in $(ip netns list | awk '/^qkvns[0-9]+/ {print $1}'); do
    # Ranks outlive an interrupted mpirun for a moment (qkv saves a checkpoint on a signal):
    # the script ends only once they are gone, killed after 10 s.
    ip netns pids "$ns" | xargs -r kill 2>/dev/null || true
    for ((t = 0; t < 100; ++t)); do
      [[ -z $(ip netns pids "$ns") ]] && break
      sleep 0.1
    done
    ip netns pids "$ns" | xargs -r kill -KILL 2>/dev/null || true
    ip netns del "$ns" || true
  done
  ip link del $bridge 2>/dev/null || true
}
if ip netns list | grep -q '^qkvns' || ip link show $bridge &>/dev/null; then
  echo "removing namespaces and bridge left from an earlier run"
  cleanup
fi
if ip -4 addr | grep -q " $net\."; then die "$net.0/24 is in use on this machine: choose another with --net"; fi
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ip link add $bridge type bridge
ip addr add "$net.254/24" dev $bridge
ip link set $bridge up
for ((i = 0; i < ranks; ++i)); do
  ip netns add qkvns$i
  ip link add qkvh$i type veth peer name eth0 netns qkvns$i
  ip link set qkvh$i master $bridge up
  ip -n qkvns$i addr add "$net.$((i + 1))/24" dev eth0
  ip -n qkvns$i link set eth0 up
  # As on a real machine; MPI and PMIx need only eth0 (they ran with lo down).
  ip -n qkvns$i link set lo up
done

# (Re)installs each link's root qdisc, which also zeroes its counters. Without a cap a plain
# pfifo only counts (a veth has no qdisc of its own, so nothing to read the bytes from).
shape() {
  local i qdisc=(pfifo)
  [[ $rate != none ]] && qdisc=(tbf rate "$rate" burst "$burst" latency 50ms)
  for ((i = 0; i < ranks; ++i)); do
    ip netns exec qkvns$i tc qdisc del dev eth0 root 2>/dev/null || true
    ip netns exec qkvns$i tc qdisc add dev eth0 root "${qdisc[@]}"
    tc qdisc del dev qkvh$i root 2>/dev/null || true
    tc qdisc add dev qkvh$i root "${qdisc[@]}"
  done
}
# "Sent 123 bytes 4 pkt (dropped 0, overlimits 5 ...)": bytes and drops (a full queue).
sent() { awk '/Sent/ {sub(/,/, "", $7); printf "%14s B %6s dropped", $2, $7; exit}'; }
counters() {
  local i
  echo "bytes through each link's qdisc (rate $rate):"
  for ((i = 0; i < ranks; ++i)); do
    printf '  qkvns%d  sent %s   received %s\n' $i \
      "$(ip netns exec qkvns$i tc -s qdisc show dev eth0 | sent)" "$(tc -s qdisc show dev qkvh$i | sent)"
  done
}
shape

if ((measure)); then
  # About 2 s at the cap; as fast as python3 goes without one.
  mb=2000
  [[ $rate != none ]] && mb=$(((rate_bytes * 2 + 999999) / 1000000))
  ((mb <= 2000)) || mb=2000
  py='
import socket, sys, time
host, mb = sys.argv[1], int(sys.argv[2])
if mb == 0:  # receive
    s = socket.create_server((host, 5599)); s.settimeout(60); c, _ = s.accept(); c.settimeout(60)
    buf = bytearray(1 << 20); n = 0; t0 = None
    while k := c.recv_into(buf):
        t0 = t0 or time.perf_counter(); n += k
    dt = time.perf_counter() - t0
    print(f"measured qkvns0 -> qkvns1: {n / 1e6:.0f} MB in {dt:.2f} s, {n * 8 / dt / 1e9:.3f} Gbit/s")
else:
    for _ in range(100):  # until the receiver listens
        try: s = socket.create_connection((host, 5599)); break
        except OSError: time.sleep(0.05)
    chunk = bytes(1 << 20)
    for _ in range(mb): s.sendall(chunk)
    s.close()'
  ip netns exec qkvns1 python3 -c "$py" "$net.2" 0 &
  receiver=$!
  ip netns exec qkvns0 python3 -c "$py" "$net.2" $mb
  wait $receiver
  receiver=
  counters
  shape
fi
((${#qkv_args[@]})) || exit 0

# One rank per namespace (MPMD: "-np 1 CMD : -np 1 CMD ..."); mpirun stays in the root
# namespace and forks each rank through `ip netns exec`.
apps=()
for ((i = 0; i < ranks; ++i)); do
  ((i)) && apps+=(:)
  apps+=(-np 1 ip netns exec "qkvns$i" "$qkv" "${qkv_args[@]}")
done
# PMIx (the ranks' channel to mpirun) listens on 127.0.0.1 by default, which a rank in another
# namespace cannot reach: ptl_tcp_if_include moves it to the bridge. pml ob1 with btl tcp,self
# keeps MPI traffic on TCP over the veths: vader (shared memory) would bypass them, as would
# pml ucx if it picked itself.
rc=0
PMIX_MCA_ptl_tcp_if_include=$bridge mpirun --allow-run-as-root --oversubscribe \
  --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include "$net.0/24" "${apps[@]}" || rc=$?
counters
exit $rc
