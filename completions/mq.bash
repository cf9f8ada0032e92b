# bash completion for the mq programs.
# Queue operands complete to queue names under $MQ_ROOT and to paths;
# mq-ack receipts complete to the leases in the queue's cur/ folder, and
# mq-redrive ids to its dead letters.

_mq_root() {
	if [ -n "${MQ_ROOT:-}" ]; then
		printf '%s\n' "$MQ_ROOT"
	elif [ "$(id -u)" = 0 ]; then
		printf '%s\n' /var/spool/mq
	else
		printf '%s\n' "${XDG_DATA_HOME:-$HOME/.local/share}/mq"
	fi
}

_mq_queues() {
	local root d
	root=$(_mq_root)
	for d in "$root"/*/new; do
		[ -d "$d" ] || continue
		d=${d%/new}
		printf '%s\n' "${d##*/}"
	done
}

_mq_queue_path() {
	case $1 in
	*/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$(_mq_root)" "$1" ;;
	esac
}

_mq_receipts() {
	local f
	for f in "$(_mq_queue_path "$1")"/cur/*; do
		[ -e "$f" ] || continue
		f=${f##*/}
		printf '%s\n' "${f%.*}"
	done
}

_mq_ids() {
	local f
	for f in "$(_mq_queue_path "$1")"/dead/*; do
		[ -e "$f" ] || continue
		f=${f##*/}
		printf '%s\n' "${f%%.*}"
	done
}

_mq() {
	local cur prev cmd opts argopts i queue=""
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	cmd=${COMP_WORDS[0]##*/}
	case $cmd in
	mq-init)
		opts="-m --mode -g --group --lease --max-attempts --backoff --compress --max-size --require-signature --trusted-keys --key --ttl --expired --dedup-window --subscribe --unsubscribe"
		argopts="-m --mode -g --group --lease --max-attempts --backoff --compress --max-size --trusted-keys --key --ttl --expired --dedup-window --subscribe --unsubscribe" ;;
	mq-send)
		opts="-q --quiet -l --lines -0 --null -z --compress -H --header -s --sign --seal-to -p --priority -g --group -k --key -d --delay --at --ttl"
		argopts="-H --header -s --sign --seal-to -p --priority -g --group -k --key -d --delay --at --ttl" ;;
	mq-recv)
		opts="-w --wait -t --timeout -L --lease -o --output -H --headers --verify --key"
		argopts="-t --timeout -L --lease -o --output --verify --key" ;;
	mq-ack)
		opts="-r --retry -d --delay -f --fail -e --extend"
		argopts="-d --delay -e --extend" ;;
	mq-watch)
		opts="-j --jobs -d --drain -T --timeout -0 --null --verify --key"
		argopts="-j --jobs -T --timeout --verify --key" ;;
	mq-keygen) opts=""; argopts="" ;;
	mq-stat) opts="-b --bytes -j --json -p --prom"; argopts="" ;;
	mq-ls)
		opts="-s --state -j --json -S --show -k --key"
		argopts="-s --state -S --show -k --key" ;;
	mq-redrive)
		opts="-r --reset -o --min-age -n --max-age"
		argopts="-o --min-age -n --max-age" ;;
	mq-purge)
		opts="-s --state -y --yes"
		argopts="-s --state" ;;
	mq-fsck) opts="-f --fix"; argopts="" ;;
	*) return 0 ;;
	esac
	opts="$opts --help --version"
	case $prev in
	-g|--group)
		# mq-send's group is a message group, named freely.
		[ "$cmd" = mq-init ] && mapfile -t COMPREPLY < <(compgen -g -- "$cur")
		return 0 ;;
	--compress)
		[ "$cmd" = mq-init ] && mapfile -t COMPREPLY < <(compgen -W "auto no" -- "$cur")
		return 0 ;;
	--expired)
		mapfile -t COMPREPLY < <(compgen -W "dead drop" -- "$cur"); return 0 ;;
	--subscribe|--unsubscribe)
		mapfile -t COMPREPLY < <(compgen -W "$(_mq_queues)" -- "$cur"; compgen -d -- "$cur")
		return 0 ;;
	-s|--state)
		if [ "$cmd" = mq-ls ]; then
			mapfile -t COMPREPLY < <(compgen -W "ready delayed inflight dead quarantine" -- "$cur"); return 0
		elif [ "$cmd" = mq-purge ]; then
			mapfile -t COMPREPLY < <(compgen -W "ready delayed dead quarantine all" -- "$cur"); return 0
		fi ;;
	esac
	case " $argopts " in
	*" $prev "*)
		case $cmd:$prev in
		mq-send:-k|mq-send:--key) ;;	# an idempotency key, not a file
		*:-o|*:--output|*:--verify|*:--key|*:-k|*:--trusted-keys|*:-s|*:--sign|*:--seal-to)
			mapfile -t COMPREPLY < <(compgen -f -- "$cur") ;;
		esac
		return 0 ;;
	esac
	# The queue operand is the first word that is neither an option nor
	# an option's argument.
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--) break ;;
		-*)
			case " $argopts " in
			*" ${COMP_WORDS[i]} "*) i=$((i + 1)) ;;
			esac ;;
		*) queue=${COMP_WORDS[i]}; break ;;
		esac
	done
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
	elif [ "$cmd" = mq-keygen ]; then
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	elif [ -z "$queue" ] || [ "$cmd" = mq-init ] || [ "$cmd" = mq-stat ] || [ "$cmd" = mq-fsck ]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_mq_queues)" -- "$cur"; compgen -d -- "$cur")
	elif [ "$cmd" = mq-ack ]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_mq_receipts "$queue")" -- "$cur")
	elif [ "$cmd" = mq-redrive ]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_mq_ids "$queue")" -- "$cur")
	elif [ "$cmd" = mq-send ]; then
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	fi
	return 0
}

complete -F _mq mq-init mq-send mq-recv mq-ack mq-watch mq-keygen mq-stat mq-ls mq-redrive mq-purge mq-fsck
