module ssepeer-echo

go 1.19
