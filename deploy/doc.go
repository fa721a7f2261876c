// Package deploy holds reverify's container and cluster files: the
// Dockerfile, docker-compose.yml, the Kubernetes manifests and the Grafana
// dashboard. It has no code; its tests check those files against the
// binary (commands, environment variables, probe endpoints, ports, metric
// names) and the autoscaler's query against a migrated ledger, so they
// cannot drift from it silently.
package deploy
