package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// pprofSource is added to package main of cmd/reverify with `go build
// -overlay` for the profiled run only: the tree is not changed, and the
// measured binaries have no profiling endpoint.
const pprofSource = `package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func init() {
	if addr := os.Getenv("REVERIFY_BENCH_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
`

// buildProfiled builds reverify with the pprof endpoint into e.binProf,
// once per harness run.
func (e *env) buildProfiled(ctx context.Context) error {
	if e.binProf != "" {
		return nil
	}
	bin, err := e.buildOverlay(ctx)
	if err != nil {
		return err
	}
	e.binProf = bin
	return nil
}

func (e *env) buildOverlay(ctx context.Context) (string, error) {
	src := filepath.Join(e.dir, "zz_bench_pprof.go")
	if err := os.WriteFile(src, []byte(pprofSource), 0o644); err != nil {
		return "", fmt.Errorf("overlay: %w", err)
	}
	target, err := filepath.Abs(filepath.Join("cmd", "reverify", "zz_bench_pprof.go"))
	if err != nil {
		return "", fmt.Errorf("overlay: %w", err)
	}
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {target: src}})
	if err != nil {
		return "", fmt.Errorf("overlay: %w", err)
	}
	overlayPath := filepath.Join(e.dir, "overlay.json")
	if err := os.WriteFile(overlayPath, overlay, 0o644); err != nil {
		return "", fmt.Errorf("overlay: %w", err)
	}
	bin := filepath.Join(e.dir, "reverify-pprof")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-overlay", overlayPath, "-o", bin, "./cmd/reverify")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build profiled reverify: %w\n%s", err, out)
	}
	return bin, nil
}

// fetchProfile takes a CPU profile of seconds from addr into path, or a
// heap profile when seconds is 0.
func fetchProfile(ctx context.Context, addr string, seconds int, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds+30)*time.Second)
	defer cancel()
	url := "http://" + addr + "/debug/pprof/profile?seconds=" + strconv.Itoa(seconds)
	if seconds == 0 {
		url = "http://" + addr + "/debug/pprof/heap?gc=0"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile: %w", err)
	}
	return f.Close()
}
