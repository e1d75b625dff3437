package telemetry

import "github.com/prometheus/client_golang/prometheus"

// FleetMetrics are a fleet replica's series (fleet.enabled); the fleet's
// coordinator (internal/fleet) reports to them.
type FleetMetrics struct {
	owned    prometheus.Gauge
	cameras  prometheus.Gauge
	replicas prometheus.Gauge
	handoffs *prometheus.CounterVec
	renew    prometheus.Counter
	commands prometheus.Counter
}

// Handoff labels: direction, then the reasons of each.
var fleetHandoffs = map[string][]string{
	"in":  {"new", "released", "expired"},
	"out": {"rebalance", "shutdown", "lost", "removed"},
}

// Fleet registers the fleet's series and returns them; call it once, for a
// replica of a fleet.
func (m *Metrics) Fleet() *FleetMetrics {
	f := &FleetMetrics{
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rtsp_fleet_cameras_owned",
			Help: "Cameras whose lease this replica holds.",
		}),
		cameras: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rtsp_fleet_cameras",
			Help: "Cameras of the fleet's camera set, as this replica reads it (the file and the camera API's hash); the fleet's sum of rtsp_fleet_cameras_owned should equal it.",
		}),
		replicas: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rtsp_fleet_replicas",
			Help: "Live replicas of the fleet, this one included, as of the newest heartbeat.",
		}),
		handoffs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rtsp_fleet_handoffs_total",
			Help: "Cameras this replica took (direction in: reason new, released or expired) or gave up (out: rebalance, shutdown, lost or removed).",
		}, []string{"direction", "reason"}),
		renew: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtsp_fleet_lease_renew_failures_total",
			Help: "Heartbeats and lease renewals Redis did not answer.",
		}),
		commands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rtsp_fleet_redis_commands_total",
			Help: "Redis commands the fleet's coordination sent (heartbeats, lease scripts, pub/sub); frames not included.",
		}),
	}
	for dir, reasons := range fleetHandoffs {
		for _, r := range reasons {
			f.handoffs.WithLabelValues(dir, r)
		}
	}
	m.reg.MustRegister(f.owned, f.cameras, f.replicas, f.handoffs, f.renew, f.commands)
	return f
}

// FleetOwned implements fleet.Recorder.
func (f *FleetMetrics) FleetOwned(owned, total int) {
	f.owned.Set(float64(owned))
	f.cameras.Set(float64(total))
}

// FleetReplicas implements fleet.Recorder.
func (f *FleetMetrics) FleetReplicas(n int) { f.replicas.Set(float64(n)) }

// FleetHandoff implements fleet.Recorder.
func (f *FleetMetrics) FleetHandoff(direction, reason string) {
	f.handoffs.WithLabelValues(direction, reason).Inc()
}

// FleetRenewFailure implements fleet.Recorder.
func (f *FleetMetrics) FleetRenewFailure() { f.renew.Inc() }

// FleetCommands implements fleet.Recorder.
func (f *FleetMetrics) FleetCommands(n int) { f.commands.Add(float64(n)) }
