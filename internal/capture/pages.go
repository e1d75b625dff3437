package capture

import (
	"maps"
	"slices"

	"gstcapture/internal/stats"
)

// Pipelines returns camera id's rendered launch strings with every secret
// the service knows redacted: one, or with codec auto the SDP probe and
// one a codec.
func (s *Service) Pipelines(id string) ([]stats.Pipeline, error) {
	c := s.camera(id)
	if c == nil {
		return nil, ErrUnknownCamera
	}
	p := c.plan
	if len(p.Auto) == 0 {
		return []stats.Pipeline{{Launch: s.secrets.Redact(p.Launch)}}, nil
	}
	out := []stats.Pipeline{{Codec: "probe", Launch: s.secrets.Redact(p.ProbeLaunch)}}
	for _, codec := range slices.Sorted(maps.Keys(p.Auto)) {
		out = append(out, stats.Pipeline{Codec: codec, Launch: s.secrets.Redact(p.Auto[codec].Launch)})
	}
	return out, nil
}

// History returns camera id's history (the last minutes of fps, latency
// p99 and drops) and its newest state changes.
func (s *Service) History(id string) (stats.CameraHistory, error) {
	c := s.camera(id)
	if c == nil {
		return stats.CameraHistory{}, ErrUnknownCamera
	}
	points, _ := s.history.Points(id)
	if points == nil {
		points = []stats.HistoryPoint{} // sampled at the next tick
	}
	return stats.CameraHistory{
		ID:              id,
		IntervalSeconds: s.history.Interval().Seconds(),
		WindowSeconds:   s.history.Window().Seconds(),
		Points:          points,
		States:          c.stats.Transitions(),
	}, nil
}
