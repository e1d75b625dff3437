module gstcapture/e2e/tools/rtsprelay

go 1.26.8

require (
	github.com/bluenviron/gortsplib/v4 v4.16.2
	github.com/pion/rtp v1.8.21
)

require (
	github.com/bluenviron/mediacommon/v2 v2.4.1 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/pion/logging v0.2.3 // indirect
	github.com/pion/randutil v0.1.0 // indirect
	github.com/pion/rtcp v1.2.15 // indirect
	github.com/pion/sdp/v3 v3.0.15 // indirect
	github.com/pion/srtp/v3 v3.0.6 // indirect
	github.com/pion/transport/v3 v3.0.7 // indirect
	golang.org/x/net v0.43.0 // indirect
	golang.org/x/sys v0.35.0 // indirect
)
