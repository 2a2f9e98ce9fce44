package overlays

// Generators of the application services: apache2, MariaDB, pound, and the
// scm personality's subversion and cvs.

func apache(in Input) ([]File, error)  { return nil, nil }
func mariadb(in Input) ([]File, error) { return nil, nil }
func pound(in Input) ([]File, error)   { return nil, nil }
func scm(in Input) ([]File, error)     { return nil, nil }
