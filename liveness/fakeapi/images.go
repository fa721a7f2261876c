package fakeapi

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
)

// GenerateJPEG returns a deterministic synthetic "face": a skin-toned
// ellipse with eyes and a mouth on a gradient, coloured from seed, encoded
// as a JPEG. Different seeds give different bytes and so different scores.
// w and h below 1 are taken as 1.
func GenerateJPEG(seed int64, w, h int) []byte {
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, drawFace(seed, w, h), &jpeg.Options{Quality: 85}); err != nil {
		panic("fakeapi: encoding JPEG: " + err.Error()) // writes to a bytes.Buffer cannot fail
	}
	return buf.Bytes()
}

// GeneratePNG is GenerateJPEG encoded as a PNG.
func GeneratePNG(seed int64, w, h int) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, drawFace(seed, w, h)); err != nil {
		panic("fakeapi: encoding PNG: " + err.Error())
	}
	return buf.Bytes()
}

func drawFace(seed int64, w, h int) *image.RGBA {
	w, h = max(w, 1), max(h, 1)
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed_face))
	randColor := func(lo, hi int) color.RGBA {
		c := func() uint8 { return uint8(lo + rng.IntN(hi-lo+1)) }
		return color.RGBA{c(), c(), c(), 255}
	}
	top, bottom := randColor(0, 255), randColor(0, 255)
	skin := color.RGBA{uint8(150 + rng.IntN(100)), uint8(100 + rng.IntN(90)), uint8(70 + rng.IntN(80)), 255}
	feature := randColor(0, 70)

	img := image.NewRGBA(image.Rect(0, 0, w, h))
	cx, cy := float64(w)/2, float64(h)/2
	rx, ry := float64(w)*0.30, float64(h)*0.40
	inEllipse := func(x, y, ex, ey, erx, ery float64) bool {
		dx, dy := (x-ex)/erx, (y-ey)/ery
		return dx*dx+dy*dy <= 1
	}
	eyeRX, eyeRY := max(rx*0.18, 0.5), max(ry*0.10, 0.5)
	for y := range h {
		t := float64(y) / float64(max(h-1, 1))
		bg := color.RGBA{
			uint8(float64(top.R)*(1-t) + float64(bottom.R)*t),
			uint8(float64(top.G)*(1-t) + float64(bottom.G)*t),
			uint8(float64(top.B)*(1-t) + float64(bottom.B)*t),
			255,
		}
		for x := range w {
			fx, fy := float64(x)+0.5, float64(y)+0.5
			c := bg
			if inEllipse(fx, fy, cx, cy, rx, ry) {
				c = skin
				switch {
				case inEllipse(fx, fy, cx-rx*0.4, cy-ry*0.25, eyeRX, eyeRY),
					inEllipse(fx, fy, cx+rx*0.4, cy-ry*0.25, eyeRX, eyeRY),
					inEllipse(fx, fy, cx, cy+ry*0.45, rx*0.4, max(ry*0.06, 0.5)):
					c = feature
				}
			}
			i := img.PixOffset(x, y)
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
		}
	}
	return img
}
