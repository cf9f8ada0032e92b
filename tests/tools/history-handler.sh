#!/bin/bash
# Handler for the history runner (history-run.sh): records one delivery
# as a line in $HLOG, "D TOKEN START END ID ATTEMPT RECEIPT BODY", and
# acks by exiting 0.  TOKEN names the consumer instance that ran it (set
# by the runner in the environment); START and END are when the handler
# began and finished ($EPOCHREALTIME, so no process is forked for a
# clock).  While it runs, $HLOG.run/PID exists, so the runner can wait
# for handlers orphaned by a killed consumer before it checks the queue.
h0=$EPOCHREALTIME
run="$HLOG.run/$$"
: >"$run"
IFS= read -r -d '' body
# Now and then take longer: 1 in 20 a fifth of a second, so that a kill
# lands while a handler runs; 1 in 100 longer than the queue's lease, so
# that the consumer must renew the lease or lose the message.
r=$((RANDOM % 100))
if [ "$r" -lt 1 ]; then
	sleep "${HSLOW:-2.5}"
elif [ "$r" -lt 6 ]; then
	sleep 0.2
fi
h1=$EPOCHREALTIME
printf 'D %s %s %s %s %s %s %s\n' "$TOKEN" "$h0" "$h1" "$MQ_ID" \
    "$MQ_ATTEMPT" "$MQ_RECEIPT" "$body" >>"$HLOG"
rm -f "$run"
exit 0
