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

for c in mq-init mq-send mq-recv mq-ack mq-watch
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
