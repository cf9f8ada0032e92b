#!/usr/bin/env bats
load helpers/common

setup() {
	setup_mq
	cd "$top"
}

# Every program: the mq-*.c files in cmd/.
programs() {
	local f
	for f in cmd/mq-*.c; do
		f=${f##*/}
		echo "${f%.c}"
	done
}

# Words of the SYNOPSIS of man page $1 as rendered, on one line.
synopsis_of_page() {
	mandoc -Tutf8 "$1" | col -b |
	    awk '/^SYNOPSIS$/ { on = 1; next } /^[A-Z]/ { on = 0 } on' |
	    tr -s ' \t\n' '   ' | sed 's/^ //; s/ $//'
}

# Words of the usage of program $1 (--help up to the first blank line,
# without "usage:"), on one line.
synopsis_of_usage() {
	"$1" --help | sed '/^$/,$d' | sed '1s/^usage: //' |
	    tr -s ' \t\n' '   ' | sed 's/^ //; s/ $//'
}

# The lines of section $2 of mdoc page $1.
section() {
	awk -v sh=".Sh $2" '$0 == sh { on = 1; next } /^\.Sh / { on = 0 } on' "$1"
}

@test "man: every program in cmd/ has its page in man/, named in NAME and .Dt" {
	missing=""
	for p in $(programs); do
		page="man/$p.1"
		if [ ! -f "$page" ]; then
			missing+=" $p"
			continue
		fi
		upper=$(tr '[:lower:]' '[:upper:]' <<<"$p")
		grep -qx ".Dt $upper 1" "$page" || missing+=" $p(.Dt)"
		section "$page" NAME | grep -qx ".Nm $p" || missing+=" $p(.Nm)"
	done
	assert_equal "$missing" ""
	assert [ "$(programs | wc -l)" -ge 11 ]
}

@test "man: mq-queue.5 and mq.7 exist" {
	assert [ -f man/mq-queue.5 ]
	assert [ -f man/mq.7 ]
	grep -qx '.Dt MQ-QUEUE 5' man/mq-queue.5
	grep -qx '.Dt MQ 7' man/mq.7
}

@test "man: mandoc -Tlint -Wwarning finds nothing on any page" {
	command -v mandoc >/dev/null || skip "mandoc is not installed"
	pages=(man/*.[157])
	assert [ "${#pages[@]}" -ge 13 ]
	run mandoc -Tlint -Wwarning "${pages[@]}"
	assert_output ""
	assert_success
}

@test "man: each page's SYNOPSIS is its program's usage" {
	command -v mandoc >/dev/null || skip "mandoc is not installed"
	command -v col >/dev/null || skip "col is not installed"
	diffs=""
	for p in $(programs); do
		[ -f "man/$p.1" ] || continue
		page=$(synopsis_of_page "man/$p.1")
		usage=$(synopsis_of_usage "$p")
		[ -n "$usage" ] && [[ $usage == "$p "* ]] ||
		    { diffs+=$'\n'"$p: no usage line"; continue; }
		[ "$page" = "$usage" ] ||
		    diffs+=$'\n'"$p:"$'\n'"  page:  $page"$'\n'"  usage: $usage"
	done
	assert_equal "$diffs" ""
}

@test "man: each program's page has EXIT STATUS and EXAMPLES, with at least two examples" {
	bad=""
	for p in $(programs); do
		page="man/$p.1"
		[ -f "$page" ] || { bad+=" $p(no page)"; continue; }
		grep -qx '.Sh EXIT STATUS' "$page" || bad+=" $p(EXIT STATUS)"
		grep -qx '.Sh EXAMPLES' "$page" || bad+=" $p(EXAMPLES)"
		n=$(section "$page" EXAMPLES | grep -c '^\.Bd' || true)
		[ "$n" -ge 2 ] || bad+=" $p(examples: $n)"
		# A usage error is 64 in every program.
		section "$page" "EXIT STATUS" | grep -qx '\.It 64' || bad+=" $p(64)"
	done
	assert_equal "$bad" ""
}

@test "man: mq.7 and mq-queue.5 have EXAMPLES; mq.7 names every program" {
	grep -qx '.Sh EXAMPLES' man/mq.7
	grep -qx '.Sh EXAMPLES' man/mq-queue.5
	missing=""
	for p in $(programs); do
		grep -q "^\\.Xr $p 1" man/mq.7 || missing+=" $p"
	done
	assert_equal "$missing" ""
}

@test "man: every option in a program's --help is documented in its page" {
	missing=""
	for p in $(programs); do
		[ -f "man/$p.1" ] || continue
		for o in $("$p" --help |
		    sed -n 's/^ \{1,\}\(-[[:alnum:]], \)\{0,1\}\(--[a-z][a-z-]*\).*/\2/p'); do
			grep -q -- "Fl -${o#--}\\b" "man/$p.1" || missing+=" $p:$o"
		done
	done
	assert_equal "$missing" ""
}
