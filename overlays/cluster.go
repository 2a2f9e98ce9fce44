package overlays

// Generators of the HA stack: corosync, the Pacemaker CIB, DRBD, NFS.

func corosync(in Input) ([]File, error)  { return nil, nil }
func pacemaker(in Input) ([]File, error) { return nil, nil }
func drbd(in Input) ([]File, error)      { return nil, nil }
func nfs(in Input) ([]File, error)       { return nil, nil }
