# benchfmt.awk turns `go test -bench` output into one line per figure:
#   BENCH <name> <value> <unit>
# Standard metrics become <benchmark>_ns (ns/op) and <benchmark>_allocs
# (allocs/op); custom metrics (b.ReportMetric) keep their own name, and their
# unit is read from the name's suffix. Everything else passes to stderr.
function snake(s,   out, i, c, prev, next_c) {
	out = ""
	for (i = 1; i <= length(s); i++) {
		c = substr(s, i, 1)
		next_c = substr(s, i + 1, 1)
		if (c ~ /[A-Z]/ && i > 1 && (prev ~ /[a-z0-9]/ || (prev ~ /[A-Z]/ && next_c ~ /[a-z]/))) out = out "_"
		out = out tolower(c)
		prev = c
	}
	return out
}
function unit_of(name) {
	if (name ~ /_ratio/) return "ratio"
	if (name ~ /_per_s/) return "1/s"
	if (name ~ /_mib/) return "MiB"
	if (name ~ /_ms/) return "ms"
	if (name ~ /_us$/) return "us"
	if (name ~ /_rtt/) return "RTT"
	if (name ~ /_s(_|$)/) return "s"
	if (name ~ /bytes/) return "bytes"
	return "count"
}
/^Benchmark/ {
	name = $1
	sub(/^Benchmark/, "", name)
	sub(/-[0-9]+$/, "", name)
	gsub(/\//, "_", name)
	base = snake(name)
	for (i = 3; i < NF; i += 2) {
		v = $i; u = $(i + 1)
		if (u == "ns/op") { if (v + 0 > 0) printf "BENCH %s_ns %s ns/op\n", base, v }
		else if (u == "allocs/op") printf "BENCH %s_allocs %s allocs/op\n", base, v
		else if (u == "B/op" || u == "MB/s") continue
		else printf "BENCH %s %s %s\n", u, v, unit_of(u)
	}
	fflush()
	next
}
{ print > "/dev/stderr" }
