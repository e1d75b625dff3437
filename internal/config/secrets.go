package config

import (
	"errors"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// cameraURL is a camera URL split into the credential-free location and
// the credentials.
type cameraURL struct {
	loc         *url.URL // no user-info
	user        string
	password    string
	hasPassword bool
}

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
	if hasUserinfo {
		userT, passT, hasPass := strings.Cut(userinfo, ":")
		if cu.user, err = expand(userT, lookupRec, url.PathUnescape); err != nil {
			return cu, nil, err
		}
		if hasPass {
			if cu.password, err = expand(passT, lookupRec, url.PathUnescape); err != nil {
				return cu, nil, err
			}
			cu.hasPassword = true
		}
	}
	plain := func(s string) (string, error) { return s, nil }
	expanded, err := expand(scheme+"://"+hostport+tail, lookupRec, plain)
	if err != nil {
		return cu, nil, err
	}
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
	var forms []string
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		forms = append(forms, sec, url.PathEscape(sec), url.QueryEscape(sec))
	}
	// Longest first, so a secret that contains another is replaced whole.
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	for _, f := range forms {
		s = strings.ReplaceAll(s, f, "***")
	}
	return userinfoRe.ReplaceAllString(s, "$1")
}
