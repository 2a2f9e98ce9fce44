package overlays

// Generators of the node's own system: network, fstab, ssh and access,
// dsh, accounts, branding, cockpit, monit, first boot.

func network(in Input) ([]File, error)   { return nil, nil }
func fstab(in Input) ([]File, error)     { return nil, nil }
func sshAccess(in Input) ([]File, error) { return nil, nil }
func dsh(in Input) ([]File, error)       { return nil, nil }
func accounts(in Input) ([]File, error)  { return nil, nil }
func branding(in Input) ([]File, error)  { return nil, nil }
func cockpit(in Input) ([]File, error)   { return nil, nil }
func monit(in Input) ([]File, error)     { return nil, nil }
func firstboot(in Input) ([]File, error) { return nil, nil }
