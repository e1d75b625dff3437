package client

import (
	"image"
	"image/color"
)

// Packed is a 3-byte-per-pixel image over a frame's bytes: B,G,R when BGR
// is set, else R,G,B. Rows are Stride bytes apart (padding at the end).
type Packed struct {
	Pix    []byte
	Stride int
	Rect   image.Rectangle
	BGR    bool
}

// ColorModel implements image.Image.
func (p *Packed) ColorModel() color.Model { return color.RGBAModel }

// Bounds implements image.Image.
func (p *Packed) Bounds() image.Rectangle { return p.Rect }

// At implements image.Image.
func (p *Packed) At(x, y int) color.Color {
	if !(image.Point{x, y}.In(p.Rect)) {
		return color.RGBA{}
	}
	i := (y-p.Rect.Min.Y)*p.Stride + 3*(x-p.Rect.Min.X)
	c := color.RGBA{R: p.Pix[i], G: p.Pix[i+1], B: p.Pix[i+2], A: 0xff}
	if p.BGR {
		c.R, c.B = c.B, c.R
	}
	return c
}
