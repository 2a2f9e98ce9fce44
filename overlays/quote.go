package overlays

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Quoting: every value from the spec reaches a file in some language
// (bash run as root, an INI file, rsyncd.conf, /etc/network/interfaces,
// monit's control file, XML) through exactly one helper for that
// language, registered as a template func in quoteFuncs. A helper makes
// the value inert in its language or, when the language cannot carry a
// character (a newline in an INI value, a quote in a monit string), fails
// the render with the reason: a value is never silently changed.

// quoteError is a value a language cannot carry.
type quoteError struct {
	lang, value, why string
}

func (e *quoteError) Error() string {
	return fmt.Sprintf("%s value %q: %s", e.lang, e.value, e.why)
}

func refuse(lang, value, why string) error { return &quoteError{lang, value, why} }

// controlChar returns the first control character in s (tab allowed when
// tab), or -1.
func controlChar(s string, tab bool) rune {
	for _, r := range s {
		if (r < 0x20 && !(tab && r == '\t')) || r == 0x7f {
			return r
		}
	}
	return -1
}

func checkText(lang, s string, tab bool) error {
	if !utf8.ValidString(s) {
		return refuse(lang, s, "not valid UTF-8")
	}
	if r := controlChar(s, tab); r >= 0 {
		return refuse(lang, s, fmt.Sprintf("control character %U cannot stand in it", r))
	}
	return nil
}

// shQuote is s as one POSIX shell word: single-quoted, each quote in s
// closed, escaped and reopened. Inside single quotes bash expands nothing
// ($, `, \ and newline are literal); only NUL cannot be carried.
func shQuote(s string) (string, error) {
	if strings.ContainsRune(s, 0) {
		return "", refuse("shell", s, "a NUL byte cannot be in a shell word")
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'", nil
}

// shRecord is fields joined by sep as one shell word, for a script that
// splits it with IFS=sep read -r: a field holding sep or a newline would
// be split differently, so it is refused.
func shRecord(sep string, fields ...string) (string, error) {
	for _, f := range fields {
		if strings.Contains(f, sep) || strings.ContainsAny(f, "\n\r") {
			return "", refuse("shell record", f, fmt.Sprintf("a field cannot hold the separator %q or a newline", sep))
		}
	}
	return shQuote(strings.Join(fields, sep))
}

// line is free text on one line of any file, e.g. in a comment: no
// control character (a newline would end the comment and start code).
func line(s string) (string, error) {
	if err := checkText("one-line", s, true); err != nil {
		return "", err
	}
	return s, nil
}

// wordChars are the characters of a bare token in the line-oriented
// configs (corosync, DRBD, exports, ifupdown, monit names): names, paths,
// addresses, option lists; no space, quote, comment, escape or bracket.
const wordChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@+%=,*-"

// word is s as a bare token of a line-oriented config, or an error.
func word(s string) (string, error) {
	if s == "" {
		return "", refuse("config word", s, "empty")
	}
	if i := strings.IndexFunc(s, func(r rune) bool { return !strings.ContainsRune(wordChars, r) }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return "", refuse("config word", s, fmt.Sprintf("%q cannot stand in a bare token (allowed: letters, digits, %s)", r, wordChars[62:]))
	}
	return s, nil
}

// iniValue is s as the value of "key = value" in an INI file (MariaDB's
// option files, systemd units without specifiers): one line, kept as
// written. A newline would start a new key, a # a comment, a trailing
// backslash a continuation, and surrounding blanks are stripped by the
// readers: each is refused.
func iniValue(s string) (string, error) {
	if err := checkText("INI", s, false); err != nil {
		return "", err
	}
	switch {
	case strings.TrimSpace(s) != s:
		return "", refuse("INI", s, "leading or trailing blanks would be stripped")
	case strings.ContainsAny(s, "#;"):
		return "", refuse("INI", s, "# and ; start a comment")
	case strings.HasSuffix(s, `\`):
		return "", refuse("INI", s, "a trailing backslash continues the line")
	}
	return s, nil
}

// systemdValue is s in a systemd unit setting: an INI value with every %
// doubled, so no specifier expands.
func systemdValue(s string) (string, error) {
	if _, err := iniValue(s); err != nil {
		return "", err
	}
	return strings.ReplaceAll(s, "%", "%%"), nil
}

// rsyncValue is s as a parameter value in rsyncd.conf: one line, no
// trailing backslash (a continuation), no surrounding blanks (stripped).
// rsyncd.conf has comments only at the start of a line, so # is literal.
func rsyncValue(s string) (string, error) {
	if err := checkText("rsyncd.conf", s, false); err != nil {
		return "", err
	}
	switch {
	case strings.TrimSpace(s) != s:
		return "", refuse("rsyncd.conf", s, "leading or trailing blanks would be stripped")
	case strings.HasSuffix(s, `\`):
		return "", refuse("rsyncd.conf", s, "a trailing backslash continues the line")
	}
	return s, nil
}

// rsyncModule is s as a module name in rsyncd.conf's [name]: rsync forbids
// a slash and a closing bracket in it.
func rsyncModule(s string) (string, error) {
	if _, err := rsyncValue(s); err != nil {
		return "", err
	}
	if s == "" || strings.ContainsAny(s, "[]/") {
		return "", refuse("rsync module", s, "a module name cannot be empty or hold [, ] or /")
	}
	return s, nil
}

// ifupdown is s as a word of /etc/network/interfaces: a bare token (a
// newline there would add an option such as "up <command>").
func ifupdown(s string) (string, error) {
	if _, err := word(s); err != nil {
		return "", refuse("/etc/network/interfaces", s, err.(*quoteError).why)
	}
	return s, nil
}

// monitString is s as a double-quoted monit string. Monit has no escape
// for a quote inside one, so " and \ are refused, as is any control char.
func monitString(s string) (string, error) {
	if err := checkText("monit", s, false); err != nil {
		return "", err
	}
	if strings.ContainsAny(s, `"\`) {
		return "", refuse("monit", s, `a monit string cannot hold " or \`)
	}
	return `"` + s + `"`, nil
}

// xmlText is s escaped for XML character data or an attribute value
// (encoding/xml's escaping); characters XML 1.0 cannot hold are refused.
func xmlText(s string) (string, error) {
	if err := checkText("XML", s, true); err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := xml.EscapeText(&b, []byte(s)); err != nil {
		return "", err
	}
	return b.String(), nil
}

// quoteFuncs are the quoting helpers, one per language, for templates.
func quoteFuncs() map[string]any {
	return map[string]any{
		"sh":       shQuote,
		"shrecord": shRecord,
		"line":     line,
		"word":     word,
		"ini":      iniValue,
		"systemd":  systemdValue,
		"rsync":    rsyncValue,
		"rsyncmod": rsyncModule,
		"ifupdown": ifupdown,
		"monit":    monitString,
		"xml":      xmlText,
	}
}
