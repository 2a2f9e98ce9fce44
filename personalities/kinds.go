package personalities

import (
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Every string field of the Spec has a kind, named by its `check:` tag:
// what the value is (a path, a name, an address, free text, ...). The
// schema walk checks each value against its kind in the file that wrote it,
// so a mistake — or a value crafted to become code in a shell script or a
// config — is refused at load with file:line:col, before any generator
// sees it. Generators still quote for their language; the kinds make sure
// there is nothing left for quoting to get wrong.
//
// A kind's check returns what the value should be ("want ..."); the caller
// adds the field's path and the value, quoted.
type kindCheck func(string) string

var kinds = map[string]kindCheck{
	// text is one line of free text: anything printable.
	"text": func(v string) string { return printable(v, false, 1024) },
	// lines is multi-line free text (motd, issue, a first-boot script):
	// newlines and tabs, nothing else below the space.
	"lines": func(v string) string { return printable(v, true, 64*1024) },
	// label is a product name shown in consoles, configs and shell
	// scripts: words, no quoting or shell characters.
	"label":    pattern(labelRE, "letters, digits, spaces and ._,:+()/@- (at most 64)"),
	"name":     pattern(nameRE, "lower-case letters, digits and dashes, starting with a letter (at most 31)"),
	"id":       pattern(idRE, "letters, digits, _ and -, starting with a letter (at most 63)"),
	"hostname": hostname,
	"address": func(v string) string {
		if _, err := netip.ParseAddr(v); err != nil {
			return "want an IP address"
		}
		return ""
	},
	"cidr": func(v string) string {
		if _, err := netip.ParsePrefix(v); err != nil {
			return "want a CIDR such as 192.168.224.0/24"
		}
		return ""
	},
	// host is where a connection may come from or go to: a host name, an
	// address, a CIDR or a glob of them (rsync hosts allow, nfs clients).
	"host":     pattern(hostRE, "a host name, an address, a CIDR or a * glob"),
	"hostport": hostport,
	// path is a directory or file applbuild creates, mounts, owns or
	// serves: clean, absolute, and not a system directory.
	"path": func(v string) string {
		if w := cleanPath(v); w != "" {
			return w
		}
		return systemPath(v)
	},
	// file is a path only read (a pidfile): clean and absolute.
	"file":     cleanPath,
	"ifname":   pattern(ifnameRE, "an interface name: lower-case letters, digits, _ and -, starting with a letter (at most 10, so that .<vlan id> fits)"),
	"bridge":   pattern(bridgeRE, "a bridge name: letters, digits, _ and -, starting with a letter (at most 15)"),
	"package":  pattern(packageRE, "a Debian package name"),
	"unit":     pattern(unitRE, "a systemd unit name: letters, digits and :_.@-"),
	"agent":    pattern(unitRE, "a Pacemaker agent such as systemd:nginx or ocf:heartbeat:IPaddr2"),
	"process":  pattern(processRE, "a process name: letters, digits and _.+- (at most 64)"),
	"sshkey":   sshKey,
	"crypt":    pattern(cryptRE, "a crypt(3) hash such as $y$j9T$... (letters, digits and . / $ = , ! *)"),
	"glob":     pattern(allowRE, "addresses or * globs separated by commas, e.g. 192.168.224.*"),
	"nfsopts":  pattern(nfsOptsRE, "export options separated by commas, e.g. rw,sync,no_subtree_check"),
	"calendar": pattern(calendarRE, "a systemd OnCalendar value such as hourly or *-*-* 02:00:00"),
	"ionice":   pattern(ioniceRE, "ionice options: -c N and optionally -n N"),
	"fs":       pattern(fsRE, "a filesystem type such as ext4"),
	"url":      mirrorURL,
	"vg":       volumeGroup,
	"repo":     pattern(repoRE, "a repository name: letters, digits and ._-, starting with a letter or digit"),
	"user":     userName,
}

var (
	labelRE    = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N} ._,:+()/@-]{0,63}$`)
	hostRE     = regexp.MustCompile(`^[A-Za-z0-9*?][A-Za-z0-9*?.:/-]{0,252}$`)
	ifnameRE   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,9}$`)
	bridgeRE   = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_-]{0,14}$`)
	packageRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]{1,127}(:[a-z0-9]{1,16})?$`)
	unitRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9:_.@-]{0,127}$`)
	processRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$`)
	cryptRE    = regexp.MustCompile(`^[A-Za-z0-9./$=,!*]{1,512}$`)
	allowRE    = regexp.MustCompile(`^[A-Za-z0-9*?.:/-]+(,[A-Za-z0-9*?.:/-]+)*$`)
	nfsOptsRE  = regexp.MustCompile(`^[a-z0-9_]+(=[A-Za-z0-9_:.@/-]+)?(,[a-z0-9_]+(=[A-Za-z0-9_:.@/-]+)?)*$`)
	calendarRE = regexp.MustCompile(`^[A-Za-z0-9*][A-Za-z0-9 *:.,/~-]{0,127}$`)
	ioniceRE   = regexp.MustCompile(`^-c ?[0-3]( -n ?[0-7])?$`)
	fsRE       = regexp.MustCompile(`^[a-z0-9]{1,16}$`)
	repoRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	pathSegRE  = regexp.MustCompile(`^[A-Za-z0-9._+@%=,:][A-Za-z0-9._+@%=,:-]*$`)
	sshTypeRE  = regexp.MustCompile(`^(ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$`)
	base64RE   = regexp.MustCompile(`^[A-Za-z0-9+/]+={0,3}$`)
	urlRE      = regexp.MustCompile(`^[A-Za-z0-9._~:/?#@%+=,-]+$`)
)

func pattern(re *regexp.Regexp, want string) kindCheck {
	return func(v string) string {
		if !re.MatchString(v) {
			return "want " + want
		}
		return ""
	}
}

// printable refuses control characters (newline, NUL, ESC, DEL, ...), the
// Unicode line and paragraph separators and invalid UTF-8: a value that
// holds one can end a line of the config or script it is written into.
func printable(v string, multiline bool, max int) string {
	if len(v) > max {
		return fmt.Sprintf("want at most %d bytes of text", max)
	}
	if !utf8.ValidString(v) {
		return "want UTF-8 text"
	}
	for _, r := range v {
		if multiline && (r == '\n' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == '\ufeff' {
			if multiline {
				return fmt.Sprintf("want text without control characters (found %U)", r)
			}
			return fmt.Sprintf("want one line of text without control characters (found %U)", r)
		}
	}
	return ""
}

func hostname(v string) string {
	if len(v) > 253 || !domainRE.MatchString(v) {
		return "want a host name (lower-case letters, digits, dashes and dots)"
	}
	return ""
}

func hostport(v string) string {
	h, p, err := splitHostPort(v)
	if err != "" {
		return err
	}
	if _, aerr := netip.ParseAddr(h); aerr != nil && hostname(h) != "" {
		return "want host:port with a host name or an address"
	}
	if n, perr := strconv.Atoi(p); perr != nil || n < 1 || n > 65535 {
		return "want host:port with a port from 1 to 65535"
	}
	return ""
}

func splitHostPort(v string) (host, port, want string) {
	i := strings.LastIndexByte(v, ':')
	if i <= 0 {
		return "", "", "want host:port"
	}
	host, port = v[:i], v[i+1:]
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	return host, port, ""
}

func sshKey(v string) string {
	if w := printable(v, false, 16*1024); w != "" {
		return w
	}
	f := strings.SplitN(v, " ", 3)
	if len(f) < 2 || !sshTypeRE.MatchString(f[0]) || !base64RE.MatchString(f[1]) {
		return "want an ssh public key: type, base64 key, optional comment (no options)"
	}
	return ""
}

func mirrorURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || !urlRE.MatchString(v) || u.Scheme == "" {
		return "want an http(s):// or file:/ URL"
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return "want an http(s):// URL with a host"
		}
	case "file":
	default:
		return "want an http(s):// or file:/ URL"
	}
	return ""
}

// volumeGroup is an LVM VG name, where {node} stands for the node name.
func volumeGroup(v string) string {
	n := strings.ReplaceAll(v, "{node}", "n1")
	if !lvmNameRE.MatchString(n) || n == "." || n == ".." {
		return "want an LVM volume group name: letters, digits and +_.-, {node} for the node name"
	}
	return ""
}

var lvmNameRE = regexp.MustCompile(`^[A-Za-z0-9+_.][A-Za-z0-9+_.-]{0,62}$`)

// cleanPath wants an absolute path that path.Clean leaves as it is (no
// "..", "//", "/./" or trailing "/"), of safe characters only: no blanks,
// quotes, $, backslash or a segment that starts with a dash.
func cleanPath(v string) string {
	if len(v) > 1024 {
		return "want a path of at most 1024 bytes"
	}
	if !strings.HasPrefix(v, "/") || path.Clean(v) != v {
		return "want a clean absolute path (no .., //, /./ or trailing /)"
	}
	if v == "/" {
		return ""
	}
	for _, seg := range strings.Split(v[1:], "/") {
		if !pathSegRE.MatchString(seg) {
			return "want a path of letters, digits and ._+@%=,:- (no segment starting with -)"
		}
	}
	return ""
}

// systemDirs may not themselves be a mount point, a brick, a home or an
// export: mounting over /etc or chowning /var hides or breaks the system.
// What lies below them is the personalities' business (gluster volumes
// live at /etc/apache2, /var/www, /var/lib/mysql, /usr/global).
var systemDirs = []string{
	"/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
	"/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",
	"/usr", "/usr/bin", "/usr/lib", "/usr/lib64", "/usr/libexec", "/usr/local", "/usr/sbin",
	"/usr/share", "/var", "/var/backups", "/var/cache", "/var/lib", "/var/log", "/var/mail",
	"/var/spool", "/var/tmp",
}

// protectedDirs may not hold anything a spec places: they decide who logs
// in and what runs as root, or belong to the kernel and the package manager.
var protectedDirs = []string{
	"/bin", "/boot", "/dev", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root", "/run",
	"/sbin", "/sys", "/usr/bin", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec",
	"/usr/libx32", "/usr/sbin",
	"/etc/apt", "/etc/cron.d", "/etc/crontab", "/etc/environment", "/etc/group", "/etc/gshadow",
	"/etc/init.d", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ld.so.preload", "/etc/pam.d",
	"/etc/passwd", "/etc/profile", "/etc/profile.d", "/etc/security", "/etc/shadow", "/etc/ssh",
	"/etc/sudoers", "/etc/sudoers.d", "/etc/systemd", "/var/lib/apt", "/var/lib/dpkg",
}

func systemPath(v string) string {
	for _, d := range protectedDirs {
		if v == d || strings.HasPrefix(v, d+"/") {
			return fmt.Sprintf("want a path outside %s, which belongs to the system", d)
		}
	}
	for _, d := range systemDirs {
		if v == d {
			return fmt.Sprintf("%s is a system directory: want a directory of its own below it", d)
		}
	}
	return ""
}

// systemUsers are the accounts a Debian system or the packages the
// personalities install already have (base-passwd's static ones, then the
// daemons'): an admin of that name would hand sudo to a system account.
var systemUsers = wordSet(`root daemon bin sys sync games man lp mail news uucp proxy
	www-data backup list irc gnats nobody nogroup adm tty disk kmem dialout fax voice cdrom
	floppy tape sudo audio dip video plugdev staff users netdev operator shadow utmp src
	input kvm render sgx messagebus sshd systemd-network systemd-resolve systemd-timesync
	systemd-coredump polkitd tss uuidd tcpdump dnsmasq avahi statd rpc ntp chrony
	hacluster haclient mysql gluster rsync monit puppet pound svn cvs ftp vsftpd
	cockpit-ws cockpit-wsinstance postfix debian-exim nginx`)

func wordSet(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

func userName(v string) string {
	if !nameRE.MatchString(v) {
		return "want a user name: lower-case letters, digits and dashes, starting with a letter"
	}
	if systemUsers[v] || strings.HasPrefix(v, "systemd-") {
		return "want a user of your own, not a system account"
	}
	return ""
}

// CheckSSHKey says what is wrong with an authorized_keys line as a spec
// key ("" when nothing): the rule admin.keys values follow, for keys that
// come from elsewhere (the invoking user's own, say).
func CheckSSHKey(v string) string { return sshKey(v) }
