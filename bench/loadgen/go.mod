module photogram/bench/loadgen

go 1.21
