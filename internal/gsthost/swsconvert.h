#ifndef GSTCAPTURE_SWSCONVERT_H
#define GSTCAPTURE_SWSCONVERT_H

#include <gst/gst.h>

// gh_register_swsconvert registers the swsconvert element with GStreamer
// (statically, no plugin file). Call once, after gst_init.
gboolean gh_register_swsconvert(void);

#endif
