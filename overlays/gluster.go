package overlays

// The GlusterFS generator: managed volumes (first boot creates them) or the
// seed's legacy hand-written volfiles.

func gluster(in Input) ([]File, error) { return nil, nil }
