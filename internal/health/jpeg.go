package health

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"

	"gstcapture/internal/frame"
)

// EncodeJPEG turns a raw picture in any format gstcapture emits into a
// JPEG. A JPEG picture (format JPEG) is one already: its bytes are served
// as they are, not decoded and encoded again.
func EncodeJPEG(p *frame.Picture, quality int) ([]byte, error) {
	if p.Format == frame.JPEG {
		return p.Data, nil
	}
	img, err := toImage(p)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: quality}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func toImage(p *frame.Picture) (image.Image, error) {
	stride, size, err := frame.Layout(p.Format, p.Width, p.Height)
	if err != nil {
		return nil, err
	}
	if p.Stride > 0 {
		stride = p.Stride
	}
	if len(p.Data) < size {
		return nil, fmt.Errorf("picture of %d bytes is smaller than %dx%d %s needs (%d)", len(p.Data), p.Width, p.Height, p.Format, size)
	}
	w, h := p.Width, p.Height
	switch p.Format {
	case frame.BGR, frame.RGB:
		// Straight to 4:2:0 YCbCr, which the JPEG encoder takes as it is:
		// 1.5 bytes a pixel instead of an RGBA copy's 4 (12 MB less for a
		// 1080p snapshot), and no per-pixel conversion in the encoder.
		img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
		r, b := 0, 2
		if p.Format == frame.BGR {
			r, b = 2, 0
		}
		for y := 0; y < h; y++ {
			src := p.Data[y*stride:]
			yrow := img.Y[y*img.YStride:]
			crow := (y / 2) * img.CStride
			for x := 0; x < w; x++ {
				R, G, B := src[3*x+r], src[3*x+1], src[3*x+b]
				yy, cb, cr := color.RGBToYCbCr(R, G, B)
				yrow[x] = yy
				if y%2 == 0 && x%2 == 0 {
					// Top-left sample of each 2x2 block: cheap, and a
					// snapshot is for looking at.
					img.Cb[crow+x/2], img.Cr[crow+x/2] = cb, cr
				}
			}
		}
		return img, nil
	case frame.GRAY8:
		return &image.Gray{Pix: p.Data, Stride: stride, Rect: image.Rect(0, 0, w, h)}, nil
	case frame.I420, frame.NV12:
		img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
		for y := 0; y < h; y++ {
			copy(img.Y[y*img.YStride:y*img.YStride+w], p.Data[y*stride:])
		}
		cw, ch := (w+1)/2, (h+1)/2
		chroma := p.Data[stride*h:]
		if p.Format == frame.I420 {
			cstride := (cw + 3) &^ 3
			v := chroma[cstride*ch:]
			for y := 0; y < ch; y++ {
				copy(img.Cb[y*img.CStride:y*img.CStride+cw], chroma[y*cstride:])
				copy(img.Cr[y*img.CStride:y*img.CStride+cw], v[y*cstride:])
			}
		} else {
			for y := 0; y < ch; y++ {
				row := chroma[y*stride:]
				for x := 0; x < cw; x++ {
					img.Cb[y*img.CStride+x], img.Cr[y*img.CStride+x] = row[2*x], row[2*x+1]
				}
			}
		}
		return img, nil
	}
	return nil, fmt.Errorf("unsupported format %q", p.Format)
}
