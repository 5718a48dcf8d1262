module weftbench/echo

go 1.19
