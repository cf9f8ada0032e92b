#!/usr/bin/env bats
load helpers/common

setup() {
	setup_mq
	mq-init "$MQ_ROOT/orders" "$MQ_ROOT/events"
	# shellcheck source=/dev/null
	source "$top/completions/mq.bash"
}

# complete WORDS...: run the completion function as bash would for the
# command line WORDS (the last word is the one being completed).
complete_words() {
	COMP_WORDS=("$@")
	COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
	COMPREPLY=()
	_mq
	printf '%s\n' "${COMPREPLY[@]}"
}

@test "completion: options of mq-send" {
	run complete_words mq-send --s
	assert_output --partial "--sign"
	assert_output --partial "--seal-to"
}

@test "completion: queue names under MQ_ROOT" {
	run complete_words mq-recv or
	assert_line orders
	refute_line events
}

@test "completion: receipts for mq-ack come from the queue's leases" {
	echo hi | mq-send -q orders
	r=$(mq-recv -L 60 -o /dev/null orders)
	run complete_words mq-ack orders ""
	assert_line "$r"
}

@test "completion: mq-purge states" {
	run complete_words mq-purge --state d
	assert_output "$(printf 'delayed\ndead')"
}

@test "completion: every program is completed" {
	for p in "$top"/cmd/mq-*.c; do
		p=${p##*/}
		p=${p%.c}
		run complete -p "$p"
		assert_success
	done
}

@test "completion: every long option in a program's --help is completed by bash, zsh and fish" {
	missing=""
	for p in "$top"/cmd/mq-*.c; do
		p=${p##*/}
		p=${p%.c}
		bash_opts=$(complete_words "$p" --)
		# The program's branch of the zsh case; its fish lines, and
		# those of the loop over programs it is in.
		zsh=$(awk -v p="$p)" '$0 == p { on = 1; next } /^mq-[a-z]*\)$/ { on = 0 } on' "$top/completions/_mq")
		c=$p
		[[ " $(sed -n 's/^for c in //p' "$top/completions/mq.fish") " == *" $p "* ]] && c="$p|\\\$c"
		fish=$(grep -E "^ *complete -c ($c) " "$top/completions/mq.fish")
		for o in $("$p" --help |
		    sed -n 's/^ \{1,\}\(-[[:alnum:]], \)\{0,1\}\(--[a-z][a-z-]*\).*/\2/p'); do
			grep -qx -- "$o" <<<"$bash_opts" || missing+=" bash:$p:$o"
			grep -qE -- "[{,')*]$o[[}]" <<<"$zsh" || missing+=" zsh:$p:$o"
			grep -qE -- "-l ${o#--}( |\$)" <<<"$fish" || missing+=" fish:$p:$o"
		done
	done
	assert_equal "$missing" ""
}
