package fakeapi_test

import (
	"bytes"
	"image"
	"testing"

	"github.com/stretchr/testify/require"

	"reverify/liveness/fakeapi"
)

func TestGenerateImages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		gen    func(int64, int, int) []byte
		format string
	}{
		{"jpeg", fakeapi.GenerateJPEG, "jpeg"},
		{"png", fakeapi.GeneratePNG, "png"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := tc.gen(1, 320, 240)
			require.Equal(t, a, tc.gen(1, 320, 240), "deterministic")
			require.NotEqual(t, a, tc.gen(2, 320, 240), "seed changes the image")
			cfg, format, err := image.DecodeConfig(bytes.NewReader(a))
			require.NoError(t, err)
			require.Equal(t, tc.format, format)
			require.Equal(t, 320, cfg.Width)
			require.Equal(t, 240, cfg.Height)

			cfg, _, err = image.DecodeConfig(bytes.NewReader(tc.gen(3, 0, -5)))
			require.NoError(t, err)
			require.Equal(t, image.Config{ColorModel: cfg.ColorModel, Width: 1, Height: 1}, cfg)
		})
	}
}
