package config

import (
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Problem is one thing wrong with the configuration, at a config path such
// as "cameras[2].url" or "defaults.latency". Msg never contains a secret.
type Problem struct {
	Path string
	Msg  string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Msg
	}
	return p.Path + ": " + p.Msg
}

// Problems is every problem found in one Load; Load returns it as *Problems.
type Problems []Problem

// Error returns one line per problem.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// As lets errors.As find the Problems of the *Problems that Load returns
// with a Problems target too.
func (ps *Problems) As(target any) bool {
	if t, ok := target.(*Problems); ok {
		*t = *ps
		return true
	}
	return false
}

// sort orders problems as a file is read: environment variables and
// unknown top-level keys first, then the sections in the order Config
// declares them, cameras by index; the order within a path stays.
func (ps Problems) sort() {
	sections := keysOf(reflect.TypeFor[fileConfig]())
	rank := func(path string) [2]int {
		first := path[:strings.IndexAny(path+".[", ".[")]
		i := slices.Index(sections, first)
		if i < 0 {
			return [2]int{-1, 0}
		}
		cam := 0
		if rest, ok := strings.CutPrefix(path, first+"["); ok {
			cam, _ = strconv.Atoi(rest[:strings.IndexByte(rest+"]", ']')])
		}
		return [2]int{i, cam}
	}
	sort.SliceStable(ps, func(a, b int) bool {
		ra, rb := rank(ps[a].Path), rank(ps[b].Path)
		return ra[0] < rb[0] || ra[0] == rb[0] && ra[1] < rb[1]
	})
}
