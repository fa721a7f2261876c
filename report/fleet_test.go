package report_test

import (
	"bytes"
	"reverify"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"reverify/report"
	"reverify/worker/fleet"
)

func TestWriteFleetStatusRate(t *testing.T) {
	t.Parallel()
	sch, err := reverify.ParseRateSchedule("TZ=Europe/Berlin 08:00-20:00=40, 20:00-08:00=120")
	require.NoError(t, err)
	stop, err := reverify.ParseRateSchedule("00:00-12:00=0")
	require.NoError(t, err)
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
		{"fixed, scheduled", fleet.Status{Rate: 40, RateReason: fleet.RateSchedule, Schedule: sch,
			RateChangesAt: time.Date(2026, 11, 29, 19, 0, 0, 0, time.UTC)},
			"fleet: fixed API rate 40 calls/s (schedule); changes at Sun 20:00 CET\n" +
				"fleet: rate schedule TZ=Europe/Berlin 08:00-20:00=40, 20:00-08:00=120\n"},
		{"scheduled stop", fleet.Status{RateReason: fleet.RateSchedule, Schedule: stop, RateChangesAt: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)},
			"fleet: no API calls now (schedule); changes at Mon 12:00 UTC\n" +
				"fleet: rate schedule TZ=UTC 00:00-12:00=0\n"},
		{"adaptive at the schedule's ceiling", fleet.Status{Adaptive: true, Rate: 40, RateReason: fleet.RateSchedule, Schedule: sch},
			"fleet: adaptive API rate 40.0 calls/s (held at the rate schedule's ceiling)\n" +
				"fleet: rate schedule TZ=Europe/Berlin 08:00-20:00=40, 20:00-08:00=120\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			report.WriteFleetStatus(&b, tt.st)
			require.Equal(t, tt.want, b.String())
			doc := report.NewFleetDoc(tt.st)
			require.Equal(t, map[bool]string{true: "adaptive", false: "fixed"}[tt.st.Adaptive], doc.RateMode)
			require.Equal(t, string(tt.st.RateReason), doc.RateReason)
			require.Equal(t, tt.st.Schedule.String(), doc.RateSchedule)
		})
	}
}
