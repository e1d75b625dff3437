package e2e

import (
	"bytes"
	"math"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// metrics is one scrape of a service's /metrics: the text as served, and
// the metric families expfmt parsed from it.
type metrics struct {
	Text string
	fams map[string]*dto.MetricFamily
}

// metrics scrapes /metrics, failing the test unless it answers 200 with
// text that parses.
func (s *service) metrics(t testing.TB) metrics {
	t.Helper()
	code, body := httpGet(t, s.HTTP+"/metrics")
	require.Equal(t, http.StatusOK, code, "GET /metrics: %s", body)
	m, err := parseMetrics(body)
	require.NoError(t, err, "parse /metrics")
	return m
}

// tryMetrics is metrics for a background goroutine, which must not fail
// the test.
func (s *service) tryMetrics() (metrics, bool) {
	code, body, err := fetch(s.HTTP + "/metrics")
	if err != nil || code != http.StatusOK {
		return metrics{}, false
	}
	m, err := parseMetrics(body)
	return m, err == nil
}

func parseMetrics(body []byte) (metrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	return metrics{Text: string(body), fams: fams}, err
}

// series returns the samples of family name whose labels include the given
// pairs ("camera_id", "a", "reason", "stall"); exact also wants no other
// label.
func (m metrics) series(name string, exact bool, labels ...string) []*dto.Metric {
	fam := m.fams[name]
	if fam == nil {
		return nil
	}
	var out []*dto.Metric
	for _, s := range fam.GetMetric() {
		have := map[string]string{}
		for _, l := range s.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		if exact && len(have) != len(labels)/2 {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			v, ok := have[labels[i]]
			match = match && ok && v == labels[i+1]
		}
		if match {
			out = append(out, s)
		}
	}
	return out
}

// sampleValue is a counter's, gauge's or untyped sample's value.
func sampleValue(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.GetCounter().GetValue()
	case s.Gauge != nil:
		return s.GetGauge().GetValue()
	default:
		return s.GetUntyped().GetValue()
	}
}

// value is the sample of name with exactly the given label pairs; -1 when
// there is none.
func (m metrics) value(name string, labels ...string) float64 {
	v, ok := m.lookup(name, labels...)
	if !ok {
		return -1
	}
	return v
}

func (m metrics) lookup(name string, labels ...string) (float64, bool) {
	s := m.series(name, true, labels...)
	if len(s) == 0 {
		return 0, false
	}
	return sampleValue(s[0]), true
}

// mustValue is value for a series that must be there.
func (m metrics) mustValue(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	v, ok := m.lookup(name, labels...)
	if !ok {
		t.Fatalf("/metrics has no series %s%v; its %s lines:\n%s", name, labels, name, strings.Join(lines(m.Text, name), "\n"))
	}
	return v
}

// sum adds the samples of name whose labels include the given pairs.
func (m metrics) sum(name string, labels ...string) float64 {
	var n float64
	for _, s := range m.series(name, false, labels...) {
		n += sampleValue(s)
	}
	return n
}

// sumBy adds the samples of name by the value of one label.
func (m metrics) sumBy(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m.series(name, false) {
		for _, l := range s.GetLabel() {
			if l.GetName() == label {
				out[l.GetValue()] += sampleValue(s)
			}
		}
	}
	return out
}

// histogram is one Prometheus histogram summed over its label sets.
type histogram map[float64]float64 // le -> cumulative count

// histogram sums the buckets of histogram name over every label set.
func (m metrics) histogram(name string) histogram {
	h := histogram{}
	for _, s := range m.series(name, false) {
		for _, b := range s.GetHistogram().GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) { // the count, below
				h[b.GetUpperBound()] += float64(b.GetCumulativeCount())
			}
		}
		h[math.Inf(1)] += float64(s.GetHistogram().GetSampleCount())
	}
	return h
}
