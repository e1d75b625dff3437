// Package lease holds the Redis side of the fleet's camera leases: the key
// names, and the Lua scripts that acquire, renew and release a lease, and
// the one that writes a frame only while the writer holds it. Keeping the
// lease check in one Lua function here, used by every script, is what
// makes "the lease checked atomically with XADD" mean the same thing in the
// publisher (internal/publish) and the coordinator (internal/fleet).
//
// It imports go-redis and nothing of gstcapture.
package lease
