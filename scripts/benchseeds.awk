# benchseeds.awk summarises `BENCH <name> <value> <unit>` lines from several
# runs of the same benchmarks, one per radio loss seed (make sat-bench, which
# prints each seed's lines itself as they come and keeps them in a file for
# this script). A line `# loss seed N` starts a seed's lines. For each figure
# reported by two seeds or more, in the order first seen, it prints
#   BENCH <name>_median <value> <unit> # min <v> max <v>[, n of M seeds]
# The median of an even count is the mean of the two middle values. The
# first four fields keep benchfmt.awk's format; the rest is a comment. With
# a single seed it prints nothing: that seed's own lines are the figures.
function fmt(v) {
	if (v == int(v)) return sprintf("%.0f", v)
	if (v >= 1000 || v <= -1000) return sprintf("%.1f", v)
	return sprintf("%.4g", v)
}
/^# loss seed [0-9]+$/ {
	seeds = seeds (nseeds ? " " : "") $4
	nseeds++
}
/^BENCH / && NF >= 4 {
	name = $2
	if (!(name in count)) { order[++nnames] = name; unit[name] = $4 }
	val[name, ++count[name]] = $3
}
END {
	if (nseeds < 2) exit
	printf "# median across %d loss seeds (%s); min and max after the unit\n", nseeds, seeds
	for (i = 1; i <= nnames; i++) {
		name = order[i]
		n = count[name]
		if (n < 2) continue
		# insertion sort of this figure's values (n is a handful of seeds)
		for (j = 1; j <= n; j++) s[j] = val[name, j]
		for (j = 2; j <= n; j++) {
			x = s[j]
			for (k = j - 1; k >= 1 && s[k] + 0 > x + 0; k--) s[k + 1] = s[k]
			s[k + 1] = x
		}
		if (n % 2) med = s[(n + 1) / 2]
		else med = fmt((s[n / 2] + s[n / 2 + 1]) / 2)
		extra = (n == nseeds) ? "" : sprintf(", %d of %d seeds", n, nseeds)
		printf "BENCH %s_median %s %s # min %s max %s%s\n", name, med, unit[name], s[1], s[n], extra
	}
}
