module ssepeer-gin

go 1.19
