package report_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/report"
	"reverify/worker/fleet"
)

func TestWriteFleetStatusRate(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		st   fleet.Status
		want string // "" = no rate line
	}{
		{"adaptive", fleet.Status{Adaptive: true, Rate: 143.24, RateReason: fleet.RateBackoff429},
			"fleet: adaptive API rate 143.2 calls/s (backed off after a 429)\n"},
		{"adaptive, probing", fleet.Status{Adaptive: true, Rate: 20, RateReason: fleet.RateProbing},
			"fleet: adaptive API rate 20.0 calls/s (probing: growing to find the API's limit)\n"},
		{"adaptive, not started", fleet.Status{Adaptive: true}, "fleet: adaptive API rate, not started yet\n"},
		{"fixed", fleet.Status{Rate: 50, RateReason: fleet.RateConfigured}, "fleet: fixed API rate 50 calls/s\n"},
		{"no limit", fleet.Status{RateReason: fleet.RateConfigured}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			report.WriteFleetStatus(&b, tt.st)
			require.Equal(t, tt.want, b.String())
			doc := report.NewFleetDoc(tt.st)
			require.Equal(t, map[bool]string{true: "adaptive", false: "fixed"}[tt.st.Adaptive], doc.RateMode)
			require.Equal(t, string(tt.st.RateReason), doc.RateReason)
		})
	}
}
