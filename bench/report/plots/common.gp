# The look shared by the report's plots. bench/report/plot.py sets out
# (the PNG), width and height, then loads the plot's own script.
set terminal pngcairo size width, height font "sans,10" noenhanced
set output out
set grid lc rgb "#dddddd"
set border lc rgb "#444444"
set key box lc rgb "#bbbbbb" opaque
set datafile missing "NaN"
