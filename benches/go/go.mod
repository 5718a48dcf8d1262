module weftbench/go

go 1.19
