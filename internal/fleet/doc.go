// Package fleet makes one gstcapture process a replica of a fleet that
// shares the camera set through Redis (fleet.enabled): it places every
// camera on one live replica (Place), holds the leases of the cameras
// placed here, renewing them, and hands the capture service only those
// cameras. The lease scripts are internal/lease's; the publisher writes
// each frame under the lease (publish.Fence), so a replica that lost a
// lease cannot add entries after the new owner's first.
//
// It imports config, capture (for its Changes), health (the shapes of
// /api/v1/fleet), lease, publish (FenceToken) and go-redis.
package fleet
