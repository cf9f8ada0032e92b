#!/bin/sh
# The order-processing pipeline of mq(7), end to end, in a scratch spool:
# producers enqueue orders; a watcher charges each card and passes paid
# orders on to the notify and ship queues; one card is always declined,
# so its order is retried with growing backoff and ends in dead/.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
PATH="$top/build/bin:$PATH"
MQ_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/mq-demo.XXXXXX")
export PATH MQ_ROOT
trap 'rm -rf "$MQ_ROOT"' EXIT

say() { printf '\n== %s\n' "$*"; }

say "create the queues under $MQ_ROOT"
mq-init --max-attempts 3 --backoff 1 orders
mq-init notify ship
ls "$MQ_ROOT"

say "producers enqueue five orders (each prints its message id)"
for n in 1 2 3 4 5; do
	card=ok
	[ "$n" = 3 ] && card=declined
	printf '{"order":%d,"card":"%s"}\n' "$n" "$card" | mq-send orders
done

say "charge: mq-watch runs a handler per order; exit 0 acks, failure retries"
mq-watch orders -- sh -c '
	body=$(cat)
	case $body in
	*declined*) echo "  charge: order $MQ_ID attempt $MQ_ATTEMPT: card declined" >&2
		exit 1 ;;
	esac
	echo "  charge: order $MQ_ID paid"
	printf "%s\n" "$body" | mq-send -q notify
	printf "%s\n" "$body" | mq-send -q ship' &
watcher=$!
# Wait (bounded) until every order is either done or dead.
i=0
while [ -n "$(find "$MQ_ROOT/orders/new" "$MQ_ROOT/orders/cur" \
    "$MQ_ROOT/orders/delay" -type f 2>/dev/null)" ]; do
	i=$((i + 1))
	[ "$i" -gt 300 ] && { echo "demo: timed out" >&2; break; }
	sleep 0.1
done
kill -TERM "$watcher"
wait "$watcher" || true

say "notify: pop each paid order"
while body=$(mq-recv notify); do
	echo "  mail: your order $body is paid"
done

say "ship: lease, work, ack with the receipt"
while r=$(mq-recv -L 60 -o "$MQ_ROOT/body" ship); do
	echo "  ship: packing $(cat "$MQ_ROOT/body")"
	mq-ack ship "$r"
done

say "dead letters (id.attempts.reason)"
ls "$MQ_ROOT/orders/dead"
echo
echo "demo: done"
