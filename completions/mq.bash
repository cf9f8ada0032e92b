# bash completion for mq-init, mq-send, mq-recv, mq-ack and mq-watch.
# Queue operands complete to queue names under $MQ_ROOT and to paths;
# mq-ack receipts complete to the leases in the queue's cur/ folder.

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

_mq() {
	local cur prev cmd opts i queue="" nonopt=0
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD-1]}
	cmd=${COMP_WORDS[0]##*/}
	case $cmd in
	mq-init) opts="-m --mode -g --group --lease --max-attempts --backoff --help --version" ;;
	mq-send) opts="-q --quiet -l --lines -0 --null --help --version" ;;
	mq-recv) opts="-w --wait -t --timeout -L --lease -o --output --help --version" ;;
	mq-ack) opts="-r --retry -d --delay -f --fail -e --extend --help --version" ;;
	mq-watch) opts="-j --jobs -d --drain -T --timeout -0 --null --help --version" ;;
	*) return 0 ;;
	esac
	case $prev in
	-g|--group)
		mapfile -t COMPREPLY < <(compgen -g -- "$cur"); return 0 ;;
	-o|--output)
		mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return 0 ;;
	-m|--mode|--lease|--max-attempts|--backoff|-t|--timeout|-L|--lease|-d|--delay|-e|--extend|-j|--jobs|-T)
		[ "$cmd" = mq-watch ] && [ "$prev" = -d ] || return 0 ;;
	esac
	# Find the queue operand: the first word that is not an option or an
	# option's argument.
	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--) break ;;
		-m|--mode|-g|--group|--lease|--max-attempts|--backoff|-t|--timeout|-L|-o|--output|--delay|-e|--extend|-j|--jobs|-T)
			i=$((i + 1)) ;;
		-d) [ "$cmd" = mq-ack ] && i=$((i + 1)) ;;
		-*) ;;
		*) queue=${COMP_WORDS[i]}; nonopt=$((nonopt + 1)) ;;
		esac
	done
	if [[ $cur == -* ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
	elif [ -z "$queue" ] || [ "$cmd" = mq-init ]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_mq_queues)" -- "$cur"; compgen -d -- "$cur")
	elif [ "$cmd" = mq-ack ]; then
		mapfile -t COMPREPLY < <(compgen -W "$(_mq_receipts "$queue")" -- "$cur")
	elif [ "$cmd" = mq-send ]; then
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
	fi
	return 0
}

complete -F _mq mq-init mq-send mq-recv mq-ack mq-watch
