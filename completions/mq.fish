# fish completion for the mq programs.
function __mq_queues
    set -l root $MQ_ROOT
    if test -z "$root"
        if test (id -u) = 0
            set root /var/spool/mq
        else if set -q XDG_DATA_HOME
            set root $XDG_DATA_HOME/mq
        else
            set root ~/.local/share/mq
        end
    end
    for d in $root/*/new
        basename (dirname $d)
    end
end

for c in mq-init mq-send mq-recv mq-ack mq-watch mq-stat mq-ls mq-redrive mq-purge mq-fsck
    complete -c $c -l help -d 'show help'
    complete -c $c -l version -d 'show version'
    complete -c $c -f -a '(__mq_queues)' -d queue
end
complete -c mq-init -s m -l mode -x -d 'directory mode (octal)'
complete -c mq-init -s g -l group -x -a '(__fish_complete_groups)' -d 'owning group'
complete -c mq-init -l lease -x -d 'default lease'
complete -c mq-init -l max-attempts -x -d 'deliveries before dead'
complete -c mq-init -l backoff -x -d 'mq-watch base retry delay'
complete -c mq-send -s q -l quiet -d 'do not print ids'
complete -c mq-send -s l -l lines -d 'each line is a message'
complete -c mq-send -s 0 -l null -d 'each NUL record is a message'
complete -c mq-recv -s w -l wait -d 'wait for a message'
complete -c mq-recv -s t -l timeout -x -d 'wait at most SECS'
complete -c mq-recv -s L -l lease -x -d 'lease instead of pop'
complete -c mq-recv -s o -l output -r -d 'write body to FILE'
complete -c mq-ack -s r -l retry -d 'release for redelivery'
complete -c mq-ack -s d -l delay -x -d 'with --retry: delay'
complete -c mq-ack -s f -l fail -d 'move to dead'
complete -c mq-ack -s e -l extend -x -d 'extend the lease'
complete -c mq-watch -s j -l jobs -x -d 'handlers at once'
complete -c mq-watch -s d -l drain -d 'exit when no message is ready'
complete -c mq-watch -s T -l timeout -x -d 'kill slow handlers'
complete -c mq-watch -s 0 -l null -d 'NUL after each streamed body'
complete -c mq-keygen -l help -d 'show help'
complete -c mq-keygen -l version -d 'show version'
complete -c mq-init -l compress -x -a 'auto no' -d 'compress bodies'
complete -c mq-init -l max-size -x -d 'largest body'
complete -c mq-init -l require-signature -d 'deliver only signed messages'
complete -c mq-init -l trusted-keys -r -d 'trusted public keys'
complete -c mq-init -l key -r -d 'secret key for sealed bodies'
complete -c mq-init -l ttl -x -d 'expire messages not received in DUR'
complete -c mq-init -l expired -x -a 'dead drop' -d 'what happens to expired messages'
complete -c mq-init -l dedup-window -x -d 'how long mq-send -k keys hold'
complete -c mq-init -l subscribe -x -a '(__mq_queues)' -d 'deliver messages sent to TOPIC'
complete -c mq-init -l unsubscribe -x -a '(__mq_queues)' -d 'stop delivering TOPIC'
complete -c mq-send -s z -l compress -d 'compress the body'
complete -c mq-send -s H -l header -x -d 'attach NAME=VALUE'
complete -c mq-send -s s -l sign -r -d 'sign with secret key'
complete -c mq-send -l seal-to -r -d 'encrypt to public key'
complete -c mq-send -s p -l priority -x -a '0 1 2 3 4 5 6 7 8 9' -d '0 to 9, higher first'
complete -c mq-send -s g -l group -x -d 'message group, one at a time'
complete -c mq-send -s k -l key -x -d 'idempotency key'
complete -c mq-send -s d -l delay -x -d 'deliver no sooner than DUR'
complete -c mq-send -l at -x -d 'deliver no sooner than TIME'
complete -c mq-send -l ttl -x -d 'expire if not received within DUR'
complete -c mq-recv -s H -l headers -d 'print headers first'
complete -c mq-recv -l verify -r -d 'trusted public key'
complete -c mq-recv -l key -r -d 'secret key for sealed bodies'
complete -c mq-watch -l verify -r -d 'trusted public key'
complete -c mq-watch -l key -r -d 'secret key for sealed bodies'
complete -c mq-stat -s b -l bytes -d 'also the bytes (a stat per message)'
complete -c mq-stat -s j -l json -d 'JSON lines'
complete -c mq-stat -s p -l prom -d 'Prometheus format'
complete -c mq-ls -s s -l state -x -a 'ready delayed inflight dead quarantine' -d 'only this state'
complete -c mq-ls -s j -l json -d 'JSON lines'
complete -c mq-ls -s S -l show -x -d 'show one message'
complete -c mq-ls -s k -l key -r -d 'secret key'
complete -c mq-redrive -s r -l reset -d 'reset attempts'
complete -c mq-redrive -s o -l min-age -x -d 'dead at least DUR'
complete -c mq-redrive -s n -l max-age -x -d 'dead at most DUR'
complete -c mq-purge -s s -l state -x -a 'ready delayed dead quarantine all' -d 'what to purge'
complete -c mq-purge -s y -l yes -d 'really remove'
complete -c mq-fsck -s f -l fix -d 'repair'
