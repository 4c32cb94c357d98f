# A latency distribution: for each series (a data block whose first line is
# its title), the fraction of runs at or below each time. Log time axis, so
# that snapvm's milliseconds and QEMU's tens of milliseconds both read.
# Variables: data, plot_title, xlabel, series (count), colors (one per series).
load dir."/common.gp"
set title plot_title
set xlabel xlabel
set ylabel "fraction of runs at or below"
set logscale x
set format x "%g"
set yrange [0:1.02]
set key bottom right
plot for [i=0:series-1] data index i using 1:2 with steps lw 2 \
	lc rgb word(colors, i+1) title columnheader(1)
