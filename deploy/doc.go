// Package deploy holds reverify's container and cluster files: the
// Dockerfile, the Helm chart (helm/reverify), the kustomize base rendered
// from it (kubernetes/), docker-compose.yml with its Prometheus and
// Grafana configuration (compose/), and the Grafana dashboard. It has no
// code; deploy/seed fills the compose stack's S3 with demo images.
//
// Its tests lint and render the chart with several value sets (the helm
// binary `make tools` builds), decode every object strictly into the
// Kubernetes API types (KEDA's against its CRD schemas), load the compose
// file with the compose specification's loader, and check all of it
// against the binary (commands, flags, environment variables, probe
// endpoints, ports, secret keys, metric names in alerts and dashboards)
// and the autoscaler's query against a migrated ledger, so none of it can
// drift from the binary silently.
package deploy
