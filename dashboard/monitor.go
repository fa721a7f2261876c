package dashboard

import (
	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
)

// MonitorOptions configure the embedded asynqmon.
type MonitorOptions struct {
	ReadOnly       bool
	MaskKeys       bool
	PrometheusAddr string // asynqmon draws queue charts from this Prometheus when set
}

// MonitorPath is where asynqmon is served.
const MonitorPath = "/monitoring"

// NewMonitor returns asynqmon for redis under MonitorPath. Close it to
// release its Redis connections.
func NewMonitor(redis asynq.RedisConnOpt, o MonitorOptions) *asynqmon.HTTPHandler {
	opts := asynqmon.Options{
		RootPath:          MonitorPath,
		RedisConnOpt:      redis,
		ReadOnly:          o.ReadOnly,
		PrometheusAddress: o.PrometheusAddr,
	}
	if o.MaskKeys {
		opts.PayloadFormatter = asynqmon.PayloadFormatterFunc(MaskPayload)
		opts.ResultFormatter = asynqmon.ResultFormatterFunc(MaskResult)
	}
	return asynqmon.New(opts)
}
