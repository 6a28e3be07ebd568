/* The HTML preview's dark mode: browsers answer prefers-color-scheme
 * inside a frame from the user's setting, not from the frame, so the
 * preview rewrites the mail's own media queries instead. */
#ifndef IB_PREVIEW_H
#define IB_PREVIEW_H

#include "util/buf.h"

/* Rewrite html in place: "(prefers-color-scheme: dark)" becomes always
 * true and "(prefers-color-scheme: light)" never true, in any case and
 * spacing.  0 ok, -1 out of memory (html unchanged). */
int ib_preview_dark(se_buf *html);

#endif
