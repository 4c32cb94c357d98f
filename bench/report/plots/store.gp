# The store's write throughput beside a plain file's, one bar each: rows of
# label (two lines), GiB/s, colour (an RGB integer).
# Variables: data, plot_title, bars.
load dir."/common.gp"
set title plot_title
set ylabel "GiB/s of guest image, synced to disk"
set yrange [0:*]
set style fill solid 0.85 border rgb "#444444"
set boxwidth 0.6
set xtics scale 0
set bmargin 4
set xrange [-0.6:bars - 0.4]
unset key
plot data using 0:3:4:xtic(strcol(1)."\n".strcol(2)) with boxes lc rgb variable, \
	data using 0:3:(sprintf("%.2f", $3)) with labels offset 0,0.7
