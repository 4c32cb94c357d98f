# Restore to reply against the pages the request touches, one line per
# memory mode, with the floor (the same touches with memory already present)
# and QEMU microvm. Columns: touch, floor, qemu, then one per mode; the first
# row names them. Variables: data, plot_title, ncols, colors (one per mode).
load dir."/common.gp"
set title plot_title
set xlabel "4 KiB pages the request touches after the restore"
set ylabel "process start to reply, median (ms)"
set logscale x 2
set logscale y
set format x "%g"
set format y "%g"
set key top left
plot for [c=4:ncols] data using 1:c with linespoints lw 2 pt 7 ps 0.8 \
	lc rgb word(colors, c-3) title columnheader(c), \
	data using 1:2 with lines dt 2 lw 2 lc rgb "#000000" title columnheader(2), \
	data using 1:3 with linespoints dt 3 lw 2 pt 5 ps 0.8 lc rgb "#777777" \
	title columnheader(3)
