module github.com/hyperos/hyperos

go 1.26
