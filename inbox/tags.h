/* Message tags: from an X-Tags header at delivery, or set in the UI.
 * Stored as one string ",a,b," so that a tag search is one LIKE. */
#ifndef IB_TAGS_H
#define IB_TAGS_H

#include <stddef.h>

#define IB_TAGS_MAX 20    /* tags per message */
#define IB_TAG_MAX_LEN 64 /* octets per tag */

/* 1 when s is a tag as the API accepts it: 1..64 octets, no comma, no
 * control character, no space at either end. */
int ib_tag_valid(const char *s);

/* ",a,b," from a comma-separated list (an X-Tags value): each item
 * trimmed, empty ones dropped, control characters removed, cut to 64
 * octets, duplicates (ASCII case-insensitive) dropped, at most 20.
 * "" when none.  malloc'd; NULL: out of memory. */
char *ib_tags_normalize(const char *csv);

#endif
