# The density run: host memory in use and time as clones start, one panel
# each. Columns: clones, elapsed ms, host memory bytes, reply ms (NaN where
# the bench gives no reply time per step; then its p50 and p99 are drawn
# flat). Variables: data, plot_title, reply_curve (1 if column 4 has
# figures), reply_p50, reply_p99 (ms, NaN if unknown).
load dir."/common.gp"
set multiplot layout 2,1 title plot_title
set key top left
set xlabel "clones running"
set ylabel "host memory in use (MiB)"
set yrange [0:*]
plot data using 1:($3/1048576) with linespoints lw 2 pt 7 ps 0.6 lc rgb "#1f77b4" \
	title "host memory"
set ylabel "milliseconds (log scale)"
set logscale y
set yrange [*:*]
set format y "%g"
set key right center
if (reply_curve) {
	plot data using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb "#ff7f0e" \
		title "since the first clone started", \
		data using 1:4 with linespoints lw 2 pt 5 ps 0.6 lc rgb "#2ca02c" \
		title "time to reply"
} else {
	plot data using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb "#ff7f0e" \
		title "since the first clone started", \
		reply_p50 with lines dt 2 lw 2 lc rgb "#2ca02c" \
		title sprintf("time to reply, p50 (%.2f ms)", reply_p50), \
		reply_p99 with lines dt 3 lw 2 lc rgb "#d62728" \
		title sprintf("time to reply, p99 (%.2f ms)", reply_p99)
}
unset multiplot
