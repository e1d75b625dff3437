package config

import (
	"errors"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// cameraURL is a camera URL split into the credential-free location and
// the credentials.
type cameraURL struct {
	loc         *url.URL // no user-info
	user        string
	password    string
	hasPassword bool
	vars        []urlVar // ${VAR} used outside the host, see Camera.urlVars
}

// urlVar is one ${NAME} of a camera URL and the value it expanded to.
type urlVar struct{ name, value string }

// parseCameraURL expands ${VAR} in raw and splits off the user-info.
//
// The user-info is cut out of the template before expansion, so a password
// from the environment may hold any character (@ : / # %) without being
// escaped; literal user-info text in the file is percent-decoded as usual.
// Variables that are not set are returned in missing and nothing else is
// checked. Errors never quote the URL.
func parseCameraURL(raw string, lookup func(string) (string, bool)) (cu cameraURL, missing []string, err error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return cu, nil, errors.New("must be an absolute URL: rtsp://[user[:password]@]host[:port]/path")
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	// A '/', '?' or '#' inside a password ends the authority early and
	// leaves the rest of the password, and the '@', in the path, where it
	// would be logged as part of Location.
	if strings.Contains(tail, "@") {
		return cu, nil, errors.New("has '@' after the host: percent-encode / ? # in the password (%2F %3F %23) or use ${VAR}, password_env or password_file")
	}
	hostport, userinfo, hasUserinfo := authority, "", false
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hostport, hasUserinfo = authority[:i], authority[i+1:], true
	}

	var miss []string
	lookupRec := func(name string) (string, bool) {
		v, ok := lookup(name)
		if !ok {
			miss = append(miss, name)
		}
		return v, ok
	}
	// A value in the user-info, path or query is a credential (a token
	// camera: rtsp://cam/stream?token=${CAM1_TOKEN}); one in the host is an
	// address, which logs must keep showing.
	lookupSecret := func(name string) (string, bool) {
		v, ok := lookupRec(name)
		if ok {
			cu.vars = append(cu.vars, urlVar{name, v})
		}
		return v, ok
	}
	if hasUserinfo {
		userT, passT, hasPass := strings.Cut(userinfo, ":")
		if cu.user, err = expand(userT, lookupSecret, url.PathUnescape); err != nil {
			return cu, nil, err
		}
		if hasPass {
			if cu.password, err = expand(passT, lookupSecret, url.PathUnescape); err != nil {
				return cu, nil, err
			}
			cu.hasPassword = true
		}
	}
	plain := func(s string) (string, error) { return s, nil }
	// No ${NAME} spans the split: a name holds no '/', '?' or '#'.
	head, err := expand(scheme+"://"+hostport, lookupRec, plain)
	if err != nil {
		return cu, nil, err
	}
	expandedTail, err := expand(tail, lookupSecret, plain)
	if err != nil {
		return cu, nil, err
	}
	expanded := head + expandedTail
	if len(miss) > 0 {
		return cameraURL{}, dedupe(miss), nil
	}

	u, err := url.Parse(expanded)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return cu, nil, errors.New("cannot parse: " + ue.Err.Error())
		}
		return cu, nil, errors.New("cannot parse")
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return cu, nil, errors.New("scheme must be rtsp or rtsps")
	}
	if u.User != nil {
		// Only possible when a ${VAR} in the host part brought an '@'.
		return cu, nil, errors.New("user-info must be written before the host, not inside a ${VAR} there")
	}
	if u.Hostname() == "" {
		return cu, nil, errors.New("has no host")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return cu, nil, errors.New("port must be 1-65535")
		}
	}
	cu.loc = u
	return cu, nil, nil
}

var errMalformedVar = errors.New("malformed ${...}: write ${NAME}, NAME made of letters, digits and _")

// expand replaces each ${NAME} in s by its value. Text between variables
// goes through lit (percent-decoding for user-info); values go in as they are.
func expand(s string, lookup func(string) (string, bool), lit func(string) (string, error)) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			break
		}
		t, err := lit(s[:i])
		if err != nil {
			return "", errors.New("bad percent-encoding in the user-info")
		}
		b.WriteString(t)
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", errMalformedVar
		}
		name := s[i+2 : i+end]
		if !envNameRe.MatchString(name) {
			return "", errMalformedVar
		}
		v, _ := lookup(name)
		b.WriteString(v)
		s = s[i+end+1:]
	}
	t, err := lit(s)
	if err != nil {
		return "", errors.New("bad percent-encoding in the user-info")
	}
	b.WriteString(t)
	return b.String(), nil
}

func dedupe(names []string) []string {
	seen := map[string]bool{}
	out := names[:0]
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// userinfoRe matches "scheme://user:pass@" up to the last '@' before the
// first '/' or space, so an unescaped '@' in a password is covered too.
var userinfoRe = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://)[^\s/]*@`)

// Redact makes s safe to log: every non-empty secret (and its
// percent-encoded forms) becomes "***", and the user-info of every URL
// (rtsp://user:pass@host -> rtsp://host) is removed.
func Redact(s string, secrets ...string) string {
	return userinfoRe.ReplaceAllString(replaceForms(s, secrets, func(int) string { return "***" }), "$1")
}

// replaceForms replaces in s every form (see encodedForms) of each
// non-empty secrets[i] by with(i), longest form first so that a secret
// containing another is replaced whole.
func replaceForms(s string, secrets []string, with func(i int) string) string {
	type form struct {
		text string
		i    int
	}
	var forms []form
	for i, sec := range secrets {
		if sec == "" {
			continue
		}
		for _, f := range encodedForms(sec) {
			forms = append(forms, form{f, i})
		}
	}
	sort.SliceStable(forms, func(a, b int) bool { return len(forms[a].text) > len(forms[b].text) })
	for _, f := range forms {
		s = strings.ReplaceAll(s, f.text, with(f.i))
	}
	return s
}

// encodedForms returns sec as it is and as each URL encoder may write it:
// PathEscape and QueryEscape, and the path and fragment escaping that
// url.URL.String applies to a value placed there.
func encodedForms(sec string) []string {
	forms := []string{sec}
	for _, f := range []string{
		url.PathEscape(sec),
		url.QueryEscape(sec),
		(&url.URL{Path: sec}).EscapedPath(),
		(&url.URL{Fragment: sec}).EscapedFragment(),
	} {
		if !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	return forms
}

// SecretSet is the secrets in force, for Redact from any goroutine; a
// reload adds those of new cameras. A secret is never taken out: a line
// about a camera removed a moment ago must still be redacted.
type SecretSet struct {
	mu  sync.Mutex
	all atomic.Pointer[[]string]
}

// Add adds secrets to the set.
func (s *SecretSet) Add(secrets ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var cur []string
	if p := s.all.Load(); p != nil {
		cur = *p
	}
	next := dedupe(append(slices.Clone(cur), secrets...))
	if len(next) != len(cur) {
		s.all.Store(&next)
	}
}

// Redact is Redact with the set's secrets.
func (s *SecretSet) Redact(text string) string {
	if p := s.all.Load(); p != nil {
		return Redact(text, *p...)
	}
	return Redact(text)
}
