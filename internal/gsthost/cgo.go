package gsthost

/*
#cgo pkg-config: gstreamer-1.0 gstreamer-video-1.0 libswscale libavutil gio-2.0
#include <gst/gst.h>
#include <gio/gio.h>
#include "swsconvert.h"

// gh_set_tls_anchors makes el (an rtspsrc) check the server's certificate
// against the PEM certificates in file instead of the system's trust store.
// NULL on success, else a newly allocated message.
static gchar *gh_set_tls_anchors(GstElement *el, const char *file)
{
	GError *err = NULL;
	GTlsDatabase *db = g_tls_file_database_new(file, &err);
	gchar *msg;
	if (db == NULL) {
		msg = g_strdup(err ? err->message : "cannot load the file");
		g_clear_error(&err);
		return msg;
	}
	g_object_set(el, "tls-database", db, NULL);
	g_object_unref(db);
	return NULL;
}

// gh_weak_new returns a cell that holds o until o is finalized, then NULL:
// how a test sees whether a C object outlived its Go wrapper.
static gpointer *gh_weak_new(GObject *o)
{
	gpointer *cell = g_new(gpointer, 1);
	*cell = o;
	g_object_add_weak_pointer(o, cell);
	return cell;
}

static int gh_weak_alive(gpointer *cell) { return *cell != NULL; }

static gchar *gh_version(void) { return gst_version_string(); }

static int gh_has_factory(const char *name)
{
	GstElementFactory *f = gst_element_factory_find(name);
	if (f == NULL)
		return 0;
	gst_object_unref(f);
	return 1;
}

// gh_parse_error extracts domain, code, message, debug text and source
// name of an ERROR or WARNING message. Strings are newly allocated.
static void gh_parse_error(GstMessage *m, gchar **domain, int *code, gchar **text, gchar **debug, gchar **src)
{
	GError *err = NULL;
	*debug = NULL;
	if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR)
		gst_message_parse_error(m, &err, debug);
	else
		gst_message_parse_warning(m, &err, debug);
	*domain = g_strdup(err ? g_quark_to_string(err->domain) : "");
	*code = err ? err->code : 0;
	*text = g_strdup(err ? err->message : "");
	*src = g_strdup(GST_MESSAGE_SRC_NAME(m) ? GST_MESSAGE_SRC_NAME(m) : "");
	if (err)
		g_error_free(err);
}

static void gh_set_default_threshold(int level) { gst_debug_set_default_threshold((GstDebugLevel)level); }
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/go-gst/go-gst/gst"
)

// setTLSAnchors makes rtspsrc src trust the certificates in file (PEM) for
// rtsps, in place of the system's trust store.
func setTLSAnchors(src *gst.Element, file string) error {
	cs := C.CString(file)
	defer C.free(unsafe.Pointer(cs))
	if msg := C.gh_set_tls_anchors((*C.GstElement)(unsafe.Pointer(src.Instance())), cs); msg != nil {
		defer C.g_free(C.gpointer(msg))
		return fmt.Errorf("tls_ca_file: %s", C.GoString(msg))
	}
	return nil
}

// weakRef reports, once o's wrapper is gone, whether o still exists. The
// cell is leaked on purpose (a test helper: a few bytes).
type weakRef struct{ cell *C.gpointer }

func newWeakRef(o *gst.Object) weakRef {
	return weakRef{cell: C.gh_weak_new((*C.GObject)(unsafe.Pointer(o.Unsafe())))}
}

func (w weakRef) alive() bool { return C.gh_weak_alive(w.cell) != 0 }

// Version returns GStreamer's version string, e.g. "GStreamer 1.22.0".
func Version() string {
	p := C.gh_version()
	defer C.g_free(C.gpointer(p))
	return C.GoString(p)
}

// HasElement reports whether an element factory named name is registered.
// The nvcodec plugin registers its decoders only when an NVIDIA driver is
// usable, so this is also the GPU test.
func HasElement(name string) bool {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	return C.gh_has_factory(cs) != 0
}

// busError is an ERROR or WARNING message taken apart.
type busError struct {
	Domain string // "gst-resource-error-quark", ...
	Code   int
	Text   string
	Debug  string
	Source string // element name
}

func parseBusError(m *gst.Message) busError {
	var dom, text, dbg, src *C.gchar
	var code C.int
	C.gh_parse_error((*C.GstMessage)(unsafe.Pointer(m.Instance())), &dom, &code, &text, &dbg, &src)
	defer func() {
		for _, p := range []*C.gchar{dom, text, dbg, src} {
			C.g_free(C.gpointer(p))
		}
	}()
	return busError{Domain: C.GoString(dom), Code: int(code), Text: C.GoString(text), Debug: C.GoString(dbg), Source: C.GoString(src)}
}

func (e busError) unauthorized() bool {
	return e.Domain == "gst-resource-error-quark" && e.Code == int(C.GST_RESOURCE_ERROR_NOT_AUTHORIZED)
}

func setDefaultThreshold(l gst.DebugLevel) { C.gh_set_default_threshold(C.int(l)) }

// registerSwsConvert makes the swsconvert element (swsconvert.c) available
// to every pipeline of this process. A plugin file built from the same
// source (make build: bin/gst-plugins) gives it to gst-launch-1.0.
func registerSwsConvert() {
	if C.gh_register_swsconvert() == 0 {
		panic("gsthost: registering the swsconvert element failed")
	}
}
