module github.com/applbuild/applbuild

go 1.26.8
