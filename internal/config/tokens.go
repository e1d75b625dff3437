package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// minTokenLen is the shortest API token accepted: 16 characters of a
// random token are about 95 bits.
const minTokenLen = 16

// readTokens reads http.auth.tokens_file: one token a line, "<scope>
// <token>", scope read or admin; blank lines and lines starting with # are
// skipped. Problems name the file and line, never the token.
func readTokens(baseDir, name string) ([]Token, []string) {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, []string{fmt.Sprintf("cannot read: %v", err)}
	}
	var toks []Token
	var probs []string
	seen := map[string]int{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		where := fmt.Sprintf("%s line %d", name, i+1)
		f := strings.Fields(line)
		switch {
		case len(f) != 2:
			probs = append(probs, fmt.Sprintf("%s: want \"<scope> <token>\" (scope read or admin), got %d fields", where, len(f)))
		case f[0] != ScopeRead && f[0] != ScopeAdmin:
			probs = append(probs, fmt.Sprintf("%s: scope must be read or admin, got %q", where, f[0]))
		case len(f[1]) < minTokenLen:
			probs = append(probs, fmt.Sprintf("%s: token is %d characters, want at least %d (e.g. openssl rand -hex 16)", where, len(f[1]), minTokenLen))
		default:
			if prev, dup := seen[f[1]]; dup {
				probs = append(probs, fmt.Sprintf("%s: the same token as line %d", where, prev))
				continue
			}
			seen[f[1]] = i + 1
			toks = append(toks, Token{Scope: f[0], Value: f[1]})
		}
	}
	return toks, probs
}
