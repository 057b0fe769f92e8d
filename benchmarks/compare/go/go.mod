module weft/benchmarks/compare/go

go 1.19
