package overlays

// The rsync generator: the DR daemon on the global volume, its defaults,
// the locked rsync account and the DR client's pull.

func rsync(in Input) ([]File, error) { return nil, nil }
