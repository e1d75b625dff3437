package config

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// readCAFile resolves name (relative to baseDir) and checks that it holds
// at least one PEM certificate and nothing that fails to parse, so that a
// wrong file is a configuration problem at start rather than every rtsps
// connection failing as "certificate not trusted". It returns the path and
// a message for the problem, "" when there is none.
func readCAFile(baseDir, name string) (string, string) {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return path, fmt.Sprintf("cannot read: %v", err)
	}
	certs := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return path, fmt.Sprintf("%s: a %q block; want only CERTIFICATE blocks (the CA's certificates, never a key)", name, blk.Type)
		}
		// A CA's certificate, or a camera's own self-signed one (pinned).
		if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
			return path, fmt.Sprintf("%s: certificate %d: %v", name, certs+1, err)
		}
		certs++
	}
	if certs == 0 {
		return path, fmt.Sprintf("%s: no PEM certificate in the file", name)
	}
	return path, ""
}
