package main

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseFlagsDefaults(t *testing.T) {
	c, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, config{
		listenHost: "127.0.0.1", listenPort: "8554", cameras: 1, codec: "h264",
		width: 1280, height: 720, fps: 25, gop: 50, bitrateKbps: 2000, clipSeconds: 4,
	}, c)
	assert.Equal(t, 100, c.clipFrames())
}

func TestParseFlagsDerived(t *testing.T) {
	tests := []struct {
		args        []string
		gop         int
		bitrate     int
		clipFrames  int
		description string
	}{
		{[]string{"--fps", "30"}, 60, 2000, 120, "gop follows fps"},
		{[]string{"--size", "1920x1080"}, 50, 4500, 100, "bitrate scales with area"},
		{[]string{"--size", "640x360"}, 50, 500, 100, "smaller frame, smaller bitrate"},
		{[]string{"--bitrate", "800"}, 50, 800, 100, "explicit bitrate wins"},
		{[]string{"--gop", "30", "--clip-seconds", "3"}, 30, 2000, 90, "clip rounds to whole GOPs (75 → 90)"},
		{[]string{"--clip-seconds", "0.1"}, 50, 2000, 50, "at least one GOP"},
	}
	for _, tt := range tests {
		t.Run(tt.description, func(t *testing.T) {
			c, err := parseFlags(tt.args, io.Discard)
			require.NoError(t, err)
			assert.Equal(t, tt.gop, c.gop)
			assert.Equal(t, tt.bitrate, c.bitrateKbps)
			assert.Equal(t, tt.clipFrames, c.clipFrames())
			assert.Zero(t, c.clipFrames()%c.gop, "clip must be whole GOPs")
		})
	}
}

func TestParseFlagsErrorsNameTheFlag(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--codec", "vp8"}, "--codec"},
		{[]string{"--size", "1280"}, "--size"},
		{[]string{"--size", "1281x720"}, "--size"},
		{[]string{"--size", "axb"}, "--size"},
		{[]string{"--cameras", "0"}, "--cameras"},
		{[]string{"--fps", "0"}, "--fps"},
		{[]string{"--gop", "-1"}, "--gop"},
		{[]string{"--bitrate", "-5"}, "--bitrate"},
		{[]string{"--clip-seconds", "0"}, "--clip-seconds"},
		{[]string{"--listen", "8554"}, "--listen"},
		{[]string{"--listen", ":8554"}, "--listen"},
		{[]string{"--listen", "127.0.0.1:99999"}, "--listen"},
		{[]string{"--control", "nope"}, "--control"},
		{[]string{"--user", "u"}, "--password"},
		{[]string{"--password", "p"}, "--user"},
		{[]string{"--user", "a:b", "--password", "p"}, "--user"},
		{[]string{"--tls-cert", "c.pem"}, "--tls-key"},
		{[]string{"--tls-key", "k.pem"}, "--tls-cert"},
		{[]string{"--fps", "x"}, "-fps"},
		{[]string{"--bframes", "5"}, "--bframes 5"},
		{[]string{"--bframes", "-1"}, "--bframes -1"},
		{[]string{"--bframes", "2", "--gop", "2"}, "less than --gop"},
		{[]string{"--nosuchflag"}, "nosuchflag"},
		{[]string{"extra"}, "extra"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			require.Error(t, err)
			assert.IsType(t, errUsage{}, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestParseFlagsStreamFaults(t *testing.T) {
	c, err := parseFlags([]string{"--size", "640x360", "--extra-sizes", "320x240, 160x120", "--tcp-only", "--audio"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, [][2]int{{640, 360}, {320, 240}, {160, 120}}, c.sizes())
	assert.True(t, c.tcpOnly)
	assert.True(t, c.audio)
	assert.Equal(t, 500, c.bitrateFor(640, 360))
	assert.Equal(t, 167, c.bitrateFor(320, 240), "scaled by area from --size's bitrate")
	assert.Equal(t, 100, c.bitrateFor(160, 120), "at least 100 kbit/s")

	c, err = parseFlags([]string{"--size", "640x360", "--bitrate", "1000", "--extra-sizes", "320x240"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 333, c.bitrateFor(320, 240), "an explicit --bitrate scales too")

	for _, bad := range []string{"320", "321x240", "320x240,320x240", "640x360"} {
		_, err := parseFlags([]string{"--size", "640x360", "--extra-sizes", bad}, io.Discard)
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "--extra-sizes", bad)
	}
}
