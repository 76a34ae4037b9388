module pushpin-origin

go 1.19
